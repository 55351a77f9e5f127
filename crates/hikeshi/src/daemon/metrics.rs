//! The optional Prometheus endpoint of `hikeshi watch`: the daemon's
//! status in the text exposition format, at `GET /metrics`.
//!
//! The server is deliberately small: one thread, one connection at a
//! time, a two-second deadline per request, requests of at most 8 KiB.
//! A scraper needs nothing more, and a hostile client can hold it for two
//! seconds at most. It binds where `[watch] metrics_listen` says (loopback
//! in the example configuration) and serves the text the daemon last
//! rendered, so a scrape never touches the daemon's state.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use super::status::DaemonStatus;

const REQUEST_DEADLINE: Duration = Duration::from_secs(2);
const MAX_REQUEST_BYTES: usize = 8 * 1024;

/// Renders `status` in the Prometheus text format (version 0.0.4).
pub fn render(status: &DaemonStatus) -> String {
    let mut out = String::with_capacity(4096);
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    let one = |value: f64| vec![(String::new(), value)];
    family("hikeshi_up", "gauge", "1 while hikeshi watch runs.", &one(f64::from(status.running)));
    family(
        "hikeshi_start_time_seconds",
        "gauge",
        "When the daemon started (Unix time).",
        &one(status.started_at.as_second() as f64),
    );
    family(
        "hikeshi_reloads_total",
        "counter",
        "Configuration reloads that took effect.",
        &one(status.reloads as f64),
    );
    type SourceField = fn(&super::status::SourceStatus) -> u64;
    let sources: [(&str, &str, SourceField); 5] = [
        ("hikeshi_source_lines_total", "Lines or messages read.", |s| s.lines),
        ("hikeshi_source_bytes_total", "Bytes read.", |s| s.bytes),
        (
            "hikeshi_source_dropped_total",
            "Messages dropped because the daemon could not keep up.",
            |s| s.dropped,
        ),
        (
            "hikeshi_source_rejected_total",
            "Messages refused (oversized, sender not allowed, bad framing).",
            |s| s.rejected,
        ),
        ("hikeshi_source_errors_total", "Read errors.", |s| s.errors),
    ];
    for (name, help, field) in sources {
        let samples: Vec<(String, f64)> = status
            .sources
            .iter()
            .map(|s| (labels(&[("source", &s.name), ("kind", &s.kind)]), field(s) as f64))
            .collect();
        family(name, "counter", help, &samples);
    }
    let samples: Vec<(String, f64)> = status
        .sources
        .iter()
        .filter_map(|s| {
            let at = s.last_read?;
            Some((labels(&[("source", &s.name), ("kind", &s.kind)]), at.as_second() as f64))
        })
        .collect();
    family(
        "hikeshi_source_last_read_timestamp_seconds",
        "gauge",
        "When the source last read something (Unix time).",
        &samples,
    );
    type StreamField = fn(&super::status::StreamStatus) -> u64;
    let streams: [(&str, &str, StreamField); 6] = [
        ("hikeshi_stream_lines_total", "Lines parsed.", |s| s.lines),
        ("hikeshi_stream_sshd_lines_total", "Lines of sshd's programs.", |s| s.sshd_lines),
        ("hikeshi_stream_matched_total", "sshd lines of a known shape.", |s| s.matched),
        (
            "hikeshi_stream_unrecognised_total",
            "Lines that look like sshd's but matched no known shape.",
            |s| s.unrecognised,
        ),
        ("hikeshi_stream_failures_total", "Authentication failures.", |s| s.failures),
        ("hikeshi_stream_successes_total", "Successful logins.", |s| s.successes),
    ];
    for (name, help, field) in streams {
        let samples: Vec<(String, f64)> = status
            .streams
            .iter()
            .map(|s| (labels(&[("stream", &s.name)]), field(s) as f64))
            .collect();
        family(name, "counter", help, &samples);
    }
    let t = &status.totals;
    let totals: [(&str, &str, u64); 10] = [
        ("hikeshi_lines_handled_total", "Lines and records detected and recorded.", t.handled),
        ("hikeshi_events_total", "Failures and successes that reached detection.", t.events),
        ("hikeshi_store_errors_total", "Store transactions that failed (retried).", t.batch_errors),
        ("hikeshi_incidents_opened_total", "Incidents opened.", t.incidents_opened),
        ("hikeshi_incidents_escalated_total", "Incident escalations.", t.incidents_escalated),
        ("hikeshi_ban_requests_total", "Bans asked for by detection.", t.ban_requests),
        ("hikeshi_alerts_enqueued_total", "Alerts put in the outbox.", t.alerts_enqueued),
        ("hikeshi_alerts_sent_total", "Alert messages delivered.", t.alerts_sent),
        ("hikeshi_alerts_failed_total", "Alert delivery attempts that failed.", t.alerts_failed),
        (
            "hikeshi_reconcile_errors_total",
            "Firewall reconciliations that failed.",
            t.reconcile_errors,
        ),
    ];
    for (name, help, value) in totals {
        family(name, "counter", help, &one(value as f64));
    }
    let bans =
        [("applied", t.bans_applied), ("failed", t.bans_failed), ("refused", t.bans_refused)];
    let samples: Vec<(String, f64)> =
        bans.iter().map(|(result, n)| (labels(&[("result", result)]), *n as f64)).collect();
    family("hikeshi_bans_total", "counter", "Bans carried out, by result.", &samples);
    family(
        "hikeshi_lag_lines",
        "gauge",
        "Lines read by the sources and not handled yet.",
        &one(t.lag as f64),
    );
    let m = &status.memory;
    if let Some(rss) = m.rss_bytes {
        family("hikeshi_resident_memory_bytes", "gauge", "VmRSS of the daemon.", &one(rss as f64));
    }
    let state = |used: u64, max: u64| {
        vec![(labels(&[("bound", "used")]), used as f64), (labels(&[("bound", "max")]), max as f64)]
    };
    // Each piece of state that grows with the attack, against its cap.
    let bounded = [
        (
            "hikeshi_detector_subjects",
            "Sources, prefixes and accounts the detector tracks, and its cap.",
            m.detector_subjects,
            m.detector_subjects_max,
        ),
        (
            "hikeshi_ban_requests_remembered",
            "Addresses and networks whose ban request is remembered while the ban runs, and the cap.",
            m.ban_requests,
            m.ban_requests_max,
        ),
        (
            "hikeshi_pending_bytes",
            "Memory of the lines buffered for campaigns without an incident, and its cap.",
            m.pending_bytes,
            m.pending_bytes_max,
        ),
        (
            "hikeshi_incident_cache",
            "Incidents kept in memory between batches, and the cap.",
            m.incident_cache,
            m.incident_cache_max,
        ),
        (
            "hikeshi_incident_cache_name_bytes",
            "Estimated memory of the cached incidents' names, and the cap.",
            m.incident_cache_name_bytes,
            m.incident_cache_name_bytes_max,
        ),
    ];
    for (name, help, used, max) in bounded {
        family(name, "gauge", help, &state(used, max));
    }
    let evicted = [("any", m.detector_evicted), ("hot", m.detector_hot_evicted)];
    let samples: Vec<(String, f64)> =
        evicted.iter().map(|(kind, n)| (labels(&[("kind", kind)]), *n as f64)).collect();
    family(
        "hikeshi_detector_evictions_total",
        "counter",
        "Subjects evicted at the cap with failures in a window (hot: in an episode).",
        &samples,
    );
    family(
        "hikeshi_ban_requests_forgotten_total",
        "counter",
        "Ban requests forgotten at the cap before their ban ended.",
        &one(m.ban_requests_forgotten as f64),
    );
    family(
        "hikeshi_pending_dropped_total",
        "counter",
        "Buffered lines dropped for memory (still counted by detection).",
        &one(m.pending_dropped as f64),
    );
    out
}

/// `{a="x",b="y"}` with values escaped as the format requires (file
/// names come from globs: they may hold quotes, backslashes, newlines).
fn labels(pairs: &[(&str, &str)]) -> String {
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(name);
        out.push_str("=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The running endpoint. Dropping it stops the thread.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Binds `addr` and serves the text in `page` (which the daemon
    /// replaces as its status changes).
    pub fn start(addr: SocketAddr, page: Arc<Mutex<String>>) -> Result<MetricsServer> {
        let listener = TcpListener::bind(addr)
            .with_context(|| format!("[watch] metrics_listen: cannot listen on {addr}"))?;
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("hikeshi-metrics".into())
            .spawn(move || serve(listener, page, thread_stop))?;
        Ok(MetricsServer { addr, stop, thread: Some(thread) })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: TcpListener, page: Arc<Mutex<String>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((stream, _)) => {
                if let Err(err) = answer(stream, &page) {
                    tracing::debug!("metrics request: {err}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(err) => {
                tracing::warn!("metrics endpoint: {err}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    }
}

fn answer(mut stream: TcpStream, page: &Mutex<String>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    let deadline = Instant::now() + REQUEST_DEADLINE;
    let mut request = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && !request.windows(2).any(|w| w == b"\n\n")
    {
        if request.len() > MAX_REQUEST_BYTES {
            respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                "too large\n",
            )?;
            // Read what the client still sends (briefly), so that closing
            // does not reset the connection before it reads the answer.
            let _ = stream.shutdown(std::net::Shutdown::Write);
            stream.set_read_timeout(Some(Duration::from_millis(200)))?;
            let mut drained = 0;
            while let Ok(n @ 1..) = stream.read(&mut chunk) {
                drained += n;
                if drained > 64 * MAX_REQUEST_BYTES {
                    break;
                }
            }
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return respond(&mut stream, "408 Request Timeout", "text/plain", "timeout\n");
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => request.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                return respond(&mut stream, "408 Request Timeout", "text/plain", "timeout\n");
            }
            Err(e) => return Err(e),
        }
    }
    stream.set_write_timeout(Some(REQUEST_DEADLINE))?;
    let line = request.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    if method != b"GET" && method != b"HEAD" {
        return respond(&mut stream, "405 Method Not Allowed", "text/plain", "GET only\n");
    }
    if target != b"/metrics" {
        return respond(&mut stream, "404 Not Found", "text/plain", "see /metrics\n");
    }
    let body = page.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let body = if method == b"HEAD" { String::new() } else { body };
    respond(&mut stream, "200 OK", "text/plain; version=0.0.4; charset=utf-8", &body)
}

fn respond(stream: &mut TcpStream, status: &str, kind: &str, body: &str) -> std::io::Result<()> {
    let head = format!(
        "HTTP/1.0 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::status::{SourceStatus, StreamStatus, Totals};
    use jiff::Timestamp;

    fn status() -> DaemonStatus {
        let at = Timestamp::from_second(1_800_000_000).unwrap();
        DaemonStatus {
            pid: 1,
            version: "0".into(),
            started_at: at,
            updated_at: at,
            running: true,
            config: None,
            reloads: 2,
            reload_failures: 0,
            backend: "nftables".into(),
            silent_after_seconds: 60,
            sources: vec![SourceStatus {
                name: "files /var/log/central/*/auth.log".into(),
                kind: "files".into(),
                lines: 12,
                bytes: 1000,
                dropped: 0,
                rejected: 0,
                errors: 0,
                last_read: Some(at),
                started_at: at,
                files: None,
            }],
            streams: vec![StreamStatus {
                name: "file:/var/log/central/a\"b\\c\nd/auth.log".into(),
                lines: 12,
                failures: 5,
                ..StreamStatus::default()
            }],
            totals: Totals { bans_applied: 3, ..Totals::default() },
            memory: super::super::status::MemoryStatus {
                rss_bytes: Some(30 << 20),
                ban_requests: 7,
                ban_requests_max: 200_000,
                ban_requests_forgotten: 2,
                incident_cache: 40,
                incident_cache_max: 5_000,
                ..Default::default()
            },
            metrics: None,
        }
    }

    #[test]
    fn renders_the_text_format_with_escaped_labels() {
        let text = render(&status());
        assert!(text.contains("# TYPE hikeshi_up gauge\nhikeshi_up 1\n"), "{text}");
        assert!(text.contains(
            "hikeshi_source_lines_total{source=\"files /var/log/central/*/auth.log\",kind=\"files\"} 12\n"
        ));
        // A hostile file name cannot break out of its label or its line.
        assert!(text.contains(
            "hikeshi_stream_failures_total{stream=\"file:/var/log/central/a\\\"b\\\\c\\nd/auth.log\"} 5\n"
        ), "{text}");
        assert!(text.contains("hikeshi_bans_total{result=\"applied\"} 3\n"));
        assert!(text.contains("hikeshi_reloads_total 2\n"));
        assert!(text.contains("hikeshi_resident_memory_bytes 31457280\n"), "{text}");
        assert!(text.contains("hikeshi_ban_requests_remembered{bound=\"used\"} 7\n"), "{text}");
        assert!(text.contains("hikeshi_ban_requests_remembered{bound=\"max\"} 200000\n"));
        assert!(text.contains("hikeshi_ban_requests_forgotten_total 2\n"));
        assert!(text.contains("hikeshi_incident_cache{bound=\"used\"} 40\n"), "{text}");
        assert!(text.contains("hikeshi_incident_cache{bound=\"max\"} 5000\n"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let value = line.rsplit(' ').next().unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
        }
    }

    fn get(addr: SocketAddr, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.write_all(request).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        answer
    }

    #[test]
    fn serves_metrics_and_refuses_everything_else() {
        let page = Arc::new(Mutex::new(render(&status())));
        let server = MetricsServer::start("127.0.0.1:0".parse().unwrap(), page.clone()).unwrap();
        let addr = server.addr();
        let ok = get(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(ok.starts_with("HTTP/1.0 200 OK\r\n"), "{ok}");
        assert!(ok.contains("hikeshi_up 1"));
        *page.lock().unwrap() = "hikeshi_up 0\n".into();
        assert!(get(addr, b"GET /metrics HTTP/1.0\r\n\r\n").ends_with("\r\n\r\nhikeshi_up 0\n"));
        assert!(get(addr, b"GET / HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 404"));
        assert!(get(addr, b"POST /metrics HTTP/1.0\r\n\r\n").starts_with("HTTP/1.0 405"));
        // Garbage and oversized requests get an answer, not a hang.
        let huge = vec![b'A'; 20_000];
        assert!(get(addr, &huge).starts_with("HTTP/1.0 431"));
        // A client that sends nothing is cut off after the deadline, and
        // the server then serves the next one.
        let idle = TcpStream::connect(addr).unwrap();
        assert!(get(addr, b"GET /metrics HTTP/1.0\r\n\r\n").contains("hikeshi_up 0"));
        drop(idle);
    }

    #[test]
    fn a_busy_address_is_a_clear_error() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = MetricsServer::start(addr, Arc::default()).err().unwrap().to_string();
        assert!(err.contains("metrics_listen: cannot listen on 127.0.0.1:"), "{err}");
    }
}
