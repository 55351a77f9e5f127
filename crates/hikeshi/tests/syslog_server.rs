//! The network syslog receiver against real senders (util-linux `logger`,
//! a foreground `rsyslogd` forwarding to it) and hostile peers. Loopback
//! only; every listener binds port 0, so tests run in parallel. No root
//! needed (rsyslogd runs as the test's user with a temp config).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

use hikeshi::exec;
use hikeshi::sources::syslog_server::{ListenAddr, Listener, SyslogConfig, SyslogServer};
use hikeshi::sources::{Incoming, Payload};
use hikeshi_core::event::{AuthEvent, Kind, Source};
use hikeshi_core::parse::{LineParser, Origin, ParseOptions};
use hikeshi_core::Mode;
use jiff::tz::TimeZone;
use jiff::Timestamp;

const WAIT: Duration = Duration::from_secs(10);
const FAILED: &str = "Failed password for invalid user bob from 192.0.2.7 port 4242 ssh2";

fn v4() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

fn v6() -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, 0))
}

/// A receiver on `listen` (port 0) feeding a channel of `capacity`.
fn start(listen: Vec<ListenAddr>, capacity: usize) -> (SyslogServer, Receiver<Incoming>) {
    start_with(SyslogConfig { listen, ..SyslogConfig::default() }, capacity)
}

fn start_with(config: SyslogConfig, capacity: usize) -> (SyslogServer, Receiver<Incoming>) {
    let (tx, rx) = sync_channel(capacity);
    let server = SyslogServer::start(&config, tx).unwrap();
    (server, rx)
}

fn listener(server: &SyslogServer, index: usize) -> Listener {
    server.listeners()[index].clone()
}

/// The next line and its peer, or a panic after [`WAIT`].
fn next_line(rx: &Receiver<Incoming>) -> (Vec<u8>, SocketAddr, String) {
    let incoming = rx.recv_timeout(WAIT).expect("no message arrived");
    match incoming.payload {
        Payload::Line { bytes, position: None, host_hint: None, peer: Some(peer), .. } => {
            (bytes, peer, incoming.source.to_string())
        }
        other => panic!("unexpected payload {other:?}"),
    }
}

fn no_more_lines(rx: &Receiver<Incoming>) {
    if let Ok(extra) = rx.recv_timeout(Duration::from_millis(300)) {
        panic!("unexpected message {extra:?}");
    }
}

fn events_of(line: &[u8]) -> Vec<AuthEvent> {
    let opts = ParseOptions::new(Mode::Normal, TimeZone::UTC, Timestamp::now());
    let mut parser = LineParser::new(opts);
    let mut out = Vec::new();
    parser.push_line(line, Origin::default(), &mut out);
    parser.finish(&mut out);
    out.into_iter().map(|parsed| parsed.event).collect()
}

/// The line is bob's failed password from 192.0.2.7, logged by `sshd`.
fn assert_failed_bob(line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let events = events_of(line);
    assert_eq!(events.len(), 1, "{text}: {events:?}");
    let event = &events[0];
    assert_eq!(event.kind, Kind::FailedAuth, "{text}");
    assert_eq!(event.source, Some(Source::Addr("192.0.2.7".parse().unwrap())), "{text}");
    assert_eq!(event.user.as_deref(), Some("bob"), "{text}");
    assert_eq!(event.port, Some(4242), "{text}");
    assert_eq!(&*event.process, "sshd", "{text}");
}

/// Also, the line was just logged (by a real sender).
fn assert_failed_bob_now(line: &[u8]) {
    assert_failed_bob(line);
    let text = String::from_utf8_lossy(line);
    let event = &events_of(line)[0];
    let age = Timestamp::now().duration_since(event.time).as_secs().abs();
    assert!(age < 3600, "{text}: time {}", event.time);
}

fn run_logger(args: &[&str]) {
    let out = exec::run("logger", args).unwrap();
    assert!(out.status.success(), "logger {args:?}: {out:?}");
}

fn logger_to(listener: &Listener, extra: &[&str]) {
    let host = listener.local_addr.ip().to_string();
    let port = listener.local_addr.port().to_string();
    let mut args = vec!["--server", &host, "--port", &port, "-t", "sshd", "-i", "-p", "auth.info"];
    args.extend_from_slice(extra);
    args.push(FAILED);
    run_logger(&args);
}

fn stat(listener: &Listener) -> [u64; 5] {
    let s = &listener.stats;
    [&s.lines, &s.bytes, &s.dropped, &s.rejected, &s.errors].map(|c| c.load(Ordering::Relaxed))
}

fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// True when the peer closed `stream` (EOF or reset) within [`WAIT`].
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16];
    match stream.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
        ),
    }
}

#[test]
fn logger_over_udp_rfc3164_and_rfc5424() {
    let (server, rx) = start(vec![ListenAddr::udp(v4())], 64);
    let udp = listener(&server, 0);
    for format in ["--rfc3164", "--rfc5424"] {
        logger_to(&udp, &["--udp", format]);
        let (line, peer, source) = next_line(&rx);
        assert_failed_bob_now(&line);
        assert!(peer.ip().is_loopback(), "{peer}");
        assert_eq!(source, format!("syslog-udp:{}", udp.local_addr));
    }
    assert_eq!(stat(&udp)[0], 2);
    assert_eq!(stat(&udp)[2..], [0, 0, 0]);
}

#[test]
fn logger_over_tcp_with_newline_and_octet_counting() {
    let (server, rx) = start(vec![ListenAddr::tcp(v4())], 64);
    let tcp = listener(&server, 0);
    for extra in [
        &["--tcp", "--rfc3164"][..],
        &["--tcp", "--rfc5424"],
        &["--tcp", "--rfc3164", "--octet-count"],
        &["--tcp", "--rfc5424", "--octet-count"],
    ] {
        logger_to(&tcp, extra);
        let (line, _, _) = next_line(&rx);
        assert!(!line.contains(&b'\n') && !line.ends_with(b"\r"), "{extra:?}: {line:?}");
        assert_failed_bob_now(&line);
    }
    no_more_lines(&rx);
    assert_eq!(stat(&tcp)[0], 4);
    assert_eq!(stat(&tcp)[2..], [0, 0, 0]);
}

#[test]
fn logger_over_ipv6() {
    let (server, rx) = start(vec![ListenAddr::udp(v6()), ListenAddr::tcp(v6())], 64);
    logger_to(&listener(&server, 0), &["--udp", "--rfc5424"]);
    logger_to(&listener(&server, 1), &["--tcp", "--rfc3164", "--octet-count"]);
    for _ in 0..2 {
        let (line, peer, _) = next_line(&rx);
        assert_eq!(peer.ip(), Ipv6Addr::LOCALHOST, "{peer}");
        assert_failed_bob_now(&line);
    }
}

/// A foreground rsyslogd with a temp config, killed on drop.
struct Rsyslogd {
    child: Child,
    dir: tempfile::TempDir,
}

impl Rsyslogd {
    /// Starts rsyslogd reading a private socket (`log.sock`) and running
    /// `actions` (rsyslog.conf lines).
    fn start(actions: &str) -> Rsyslogd {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let conf = format!(
            "global(workDirectory=\"{d}\")\n\
             module(load=\"imuxsock\" SysSock.Use=\"off\")\n\
             input(type=\"imuxsock\" Socket=\"{d}/log.sock\")\n\
             {actions}\n"
        );
        let conf_path = dir.path().join("rsyslog.conf");
        std::fs::write(&conf_path, conf).unwrap();
        let log = std::fs::File::create(dir.path().join("rsyslogd.log")).unwrap();
        let child = exec::command(
            "rsyslogd",
            [
                "-n".as_ref(),
                "-f".as_ref(),
                conf_path.as_os_str(),
                "-i".as_ref(),
                dir.path().join("rsyslogd.pid").as_os_str(),
            ],
        )
        .stdout(Stdio::from(log.try_clone().unwrap()))
        .stderr(Stdio::from(log))
        .spawn()
        .unwrap();
        let rsyslogd = Rsyslogd { child, dir };
        let socket = rsyslogd.socket();
        wait_until("rsyslogd's socket", || socket.exists());
        rsyslogd
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("log.sock")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.log")).unwrap_or_default()
    }

    fn send(&self, message: &str) {
        let socket = self.socket();
        run_logger(&["-u", path_str(&socket), "-t", "sshd", "-i", "-p", "auth.info", message]);
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().unwrap()
}

impl Drop for Rsyslogd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn rsyslogd_forwards_over_udp_and_tcp_in_every_standard_format() {
    let (server, rx) = start(vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4())], 64);
    let udp = listener(&server, 0).local_addr;
    let tcp = listener(&server, 1).local_addr;
    let (u, t) = (udp.port(), tcp.port());
    // The legacy `@` / `@@` forms use RSYSLOG_TraditionalForwardFormat.
    let actions = [
        format!("auth.* @127.0.0.1:{u}"),
        format!("auth.* @@127.0.0.1:{t}"),
        format!("auth.* @@(o)127.0.0.1:{t};RSYSLOG_SyslogProtocol23Format"),
        format!(
            "auth.* action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{u}\" protocol=\"udp\" \
             template=\"RSYSLOG_SyslogProtocol23Format\")"
        ),
        format!(
            "auth.* action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{t}\" protocol=\"tcp\" \
             template=\"RSYSLOG_ForwardFormat\")"
        ),
    ]
    .join("\n");
    let rsyslogd = Rsyslogd::start(&actions);
    rsyslogd.send(FAILED);
    let mut seen = Vec::new();
    for _ in 0..5 {
        let (line, _, source) = next_line(&rx);
        assert_failed_bob_now(&line);
        seen.push((source, String::from_utf8(line).unwrap()));
    }
    seen.sort();
    let udp_count = seen.iter().filter(|(source, _)| source.starts_with("syslog-udp:")).count();
    assert_eq!(udp_count, 2, "{seen:#?}\n{}", rsyslogd.log());
    assert!(seen.iter().any(|(_, line)| line.starts_with("<38>1 ")), "{seen:#?}");
    assert!(seen.iter().any(|(_, line)| line.starts_with("<38>20")), "{seen:#?}");
    no_more_lines(&rx);
}

#[test]
fn rsyslogd_multiline_messages_arrive_as_one_line() {
    let (server, rx) = start(vec![ListenAddr::tcp(v4())], 64);
    let t = listener(&server, 0).local_addr.port();
    let rsyslogd = Rsyslogd::start(&format!(
        "auth.* action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{t}\" protocol=\"tcp\" \
         TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")"
    ));
    rsyslogd.send(&format!("{FAILED}\nsecond line"));
    let (line, _, _) = next_line(&rx);
    let text = String::from_utf8(line.clone()).unwrap();
    assert!(text.ends_with("ssh2#012second line"), "{text}");
}

fn udp_send(to: SocketAddr, datagrams: &[&[u8]]) {
    let socket = UdpSocket::bind(SocketAddr::new(to.ip(), 0)).unwrap();
    for datagram in datagrams {
        socket.send_to(datagram, to).unwrap();
    }
}

fn tcp_connect(to: SocketAddr) -> TcpStream {
    TcpStream::connect(to).unwrap()
}

const LINE: &[u8] = b"<38>Nov 26 10:00:00 web1 sshd[7]: Failed password for invalid user bob from 192.0.2.7 port 4242 ssh2";

#[test]
fn oversized_datagrams_are_dropped_and_counted() {
    let config = SyslogConfig {
        listen: vec![ListenAddr::udp(v4())],
        max_message_bytes: 1000,
        ..SyslogConfig::default()
    };
    let (server, rx) = start_with(config, 64);
    let udp = listener(&server, 0);
    let mut exact = LINE.to_vec();
    exact.resize(1000, b'x');
    let mut too_long = exact.clone();
    too_long.push(b'x');
    let mut exact_with_lf = exact.clone();
    exact_with_lf.extend_from_slice(b"\r\n");
    udp_send(udp.local_addr, &[&too_long, &vec![b'y'; 60_000], &exact, &exact_with_lf]);
    assert_eq!(next_line(&rx).0, exact);
    assert_eq!(next_line(&rx).0, exact);
    no_more_lines(&rx);
    assert_eq!(stat(&udp)[0], 2);
    assert_eq!(stat(&udp)[3], 2, "rejected");
}

#[test]
fn oversized_tcp_frames_are_skipped_and_the_connection_goes_on() {
    let config = SyslogConfig {
        listen: vec![ListenAddr::tcp(v4())],
        max_message_bytes: 1000,
        ..SyslogConfig::default()
    };
    let (server, rx) = start_with(config, 64);
    let tcp = listener(&server, 0);
    let mut stream = tcp_connect(tcp.local_addr);
    let mut data = vec![b'<'; 5000];
    data.push(b'\n');
    data.extend_from_slice(b"2000 ");
    data.extend_from_slice(&[b'z'; 2000]);
    data.extend_from_slice(LINE);
    data.push(b'\n');
    stream.write_all(&data).unwrap();
    let (line, _, _) = next_line(&rx);
    assert_eq!(line, LINE);
    assert_failed_bob(&line);
    assert_eq!(stat(&tcp)[3], 2, "rejected");
    // Still open and working.
    stream.write_all(&[LINE, b"\n"].concat()).unwrap();
    assert_eq!(next_line(&rx).0, LINE);
}

#[test]
fn a_bad_octet_count_closes_only_that_connection() {
    let (server, rx) = start(vec![ListenAddr::tcp(v4())], 64);
    let tcp = listener(&server, 0);
    let mut good = tcp_connect(tcp.local_addr);
    let mut bad = tcp_connect(tcp.local_addr);
    bad.write_all(b"12ab <38>x\n").unwrap();
    assert!(closed_by_peer(&mut bad));
    assert_eq!(stat(&tcp)[3], 1, "rejected");
    good.write_all(&[LINE, b"\n"].concat()).unwrap();
    assert_eq!(next_line(&rx).0, LINE);
}

#[test]
fn senders_outside_allowed_senders_are_ignored_and_counted() {
    let config = SyslogConfig {
        listen: vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4())],
        allowed_senders: vec!["192.0.2.0/24".parse().unwrap()],
        ..SyslogConfig::default()
    };
    let (server, rx) = start_with(config, 64);
    let (udp, tcp) = (listener(&server, 0), listener(&server, 1));
    udp_send(udp.local_addr, &[LINE]);
    let mut stream = tcp_connect(tcp.local_addr);
    let _ = stream.write_all(&[LINE, b"\n"].concat());
    assert!(closed_by_peer(&mut stream));
    no_more_lines(&rx);
    wait_until("the UDP rejection", || stat(&udp)[3] == 1);
    assert_eq!(stat(&udp)[0], 0);
    assert_eq!(stat(&tcp)[3], 1);
    assert_eq!(stat(&tcp)[0], 0);

    // The same receiver accepts loopback once it is allowed.
    let config = SyslogConfig {
        listen: vec![ListenAddr::udp(v4())],
        allowed_senders: vec!["192.0.2.0/24".parse().unwrap(), "127.0.0.0/8".parse().unwrap()],
        ..SyslogConfig::default()
    };
    let (server, rx) = start_with(config, 64);
    udp_send(listener(&server, 0).local_addr, &[LINE]);
    assert_eq!(next_line(&rx).0, LINE);
}

#[test]
fn nul_and_invalid_utf8_pass_as_bytes() {
    let (server, rx) = start(vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4())], 64);
    let hostile: &[u8] = b"<38>Nov 26 10:00:00 web1 sshd[7]: Failed password for invalid user \xff\xfe\x00x from 192.0.2.7 port 1 ssh2";
    udp_send(listener(&server, 0).local_addr, &[hostile]);
    assert_eq!(next_line(&rx).0, hostile);
    // Octet counting carries NUL; a newline-framed NUL ends the frame.
    let mut stream = tcp_connect(listener(&server, 1).local_addr);
    let framed = [format!("{} ", hostile.len()).as_bytes(), hostile, b"<1>a\xffb\0<1>c\n"].concat();
    stream.write_all(&framed).unwrap();
    assert_eq!(next_line(&rx).0, hostile);
    assert_eq!(next_line(&rx).0, b"<1>a\xffb");
    assert_eq!(next_line(&rx).0, b"<1>c");
    // The parser counts such a line instead of failing on it.
    let events = events_of(b"<38>Nov 26 10:00:00 web1 sshd[7]: Failed password for invalid user \xff\xfe from 192.0.2.7 port 1 ssh2");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].user.as_deref(), Some("\u{fffd}\u{fffd}"));
}

#[test]
fn connections_beyond_max_connections_are_refused_and_counted() {
    let config = SyslogConfig {
        listen: vec![ListenAddr::tcp(v4())],
        max_connections: 2,
        ..SyslogConfig::default()
    };
    let (server, rx) = start_with(config, 64);
    let tcp = listener(&server, 0);
    let mut first = tcp_connect(tcp.local_addr);
    let mut second = tcp_connect(tcp.local_addr);
    wait_until("two connections", || server.open_connections() == 2);
    let mut third = tcp_connect(tcp.local_addr);
    assert!(closed_by_peer(&mut third));
    assert_eq!(stat(&tcp)[3], 1, "rejected");
    for stream in [&mut first, &mut second] {
        stream.write_all(&[LINE, b"\n"].concat()).unwrap();
        assert_eq!(next_line(&rx).0, LINE);
    }
    // A closed connection frees its slot.
    drop(first);
    wait_until("the slot to free", || server.open_connections() == 1);
    let mut fourth = tcp_connect(tcp.local_addr);
    fourth.write_all(&[LINE, b"\n"].concat()).unwrap();
    assert_eq!(next_line(&rx).0, LINE);
}

#[test]
fn a_full_channel_drops_udp_and_counts() {
    let (server, rx) = start(vec![ListenAddr::udp(v4())], 1);
    let udp = listener(&server, 0);
    let datagrams: Vec<&[u8]> = vec![LINE; 20];
    udp_send(udp.local_addr, &datagrams);
    wait_until("20 datagrams", || stat(&udp)[0] == 20);
    assert_eq!(stat(&udp)[2], 19, "dropped");
    assert_eq!(next_line(&rx).0, LINE);
    // Room again: the next datagram gets through.
    udp_send(udp.local_addr, &[b"<38>Nov 26 10:00:01 web1 sshd[7]: next"]);
    assert_eq!(next_line(&rx).0, b"<38>Nov 26 10:00:01 web1 sshd[7]: next");
}

#[test]
fn stop_is_prompt_with_connections_open_and_tcp_waiting_for_room() {
    let (server, rx) =
        start(vec![ListenAddr::udp(v4()), ListenAddr::tcp(v4()), ListenAddr::tcp(v6())], 1);
    let tcp = listener(&server, 1);
    let _idle = tcp_connect(tcp.local_addr);
    let mut busy = tcp_connect(tcp.local_addr);
    // The first line fills the channel, the second waits for room.
    busy.write_all(&[LINE, b"\n", LINE, b"\n"].concat()).unwrap();
    wait_until("both lines read", || stat(&tcp)[0] == 2);
    wait_until("two connections", || server.open_connections() == 2);
    let started = Instant::now();
    server.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "stop took {took:?}");
    assert_eq!(stat(&tcp)[2], 1, "the waiting line is dropped and counted");
    assert_eq!(rx.try_recv().map(|i| i.source.to_string()).ok(), Some(tcp.source.to_string()));
    assert!(closed_by_peer(&mut busy));
}

#[test]
fn idle_connections_are_closed() {
    let config = SyslogConfig {
        listen: vec![ListenAddr::tcp(v4())],
        idle_timeout_seconds: 1,
        ..SyslogConfig::default()
    };
    let (server, _rx) = start_with(config, 64);
    let mut stream = tcp_connect(listener(&server, 0).local_addr);
    assert!(closed_by_peer(&mut stream));
    wait_until("the slot to free", || server.open_connections() == 0);
}

#[test]
fn a_stream_cut_mid_frame_is_counted_and_a_final_unterminated_line_kept() {
    let (server, rx) = start(vec![ListenAddr::tcp(v4())], 64);
    let tcp = listener(&server, 0);
    let mut stream = tcp_connect(tcp.local_addr);
    stream.write_all(LINE).unwrap();
    drop(stream);
    assert_eq!(next_line(&rx).0, LINE);
    let mut stream = tcp_connect(tcp.local_addr);
    stream.write_all(b"100 <38>cut").unwrap();
    drop(stream);
    wait_until("the truncated frame", || stat(&tcp)[3] == 1);
    no_more_lines(&rx);
}

#[test]
fn a_busy_port_is_an_error_naming_the_address() {
    let taken = std::net::TcpListener::bind(v4()).unwrap();
    let addr = taken.local_addr().unwrap();
    let config = SyslogConfig {
        listen: vec![ListenAddr::udp(v4()), ListenAddr::tcp(addr)],
        ..SyslogConfig::default()
    };
    let (tx, _rx) = sync_channel(1);
    let err = SyslogServer::start(&config, tx).unwrap_err().to_string();
    assert!(err.contains(&format!("tcp://{addr}")), "{err}");
    assert!(err.contains("in use"), "{err}");
}

#[test]
fn an_invalid_config_is_refused_at_start() {
    let config = SyslogConfig { listen: Vec::new(), ..SyslogConfig::default() };
    let (tx, _rx) = sync_channel(1);
    let err = SyslogServer::start(&config, tx).unwrap_err().to_string();
    assert!(err.contains("listen is empty"), "{err}");
}
