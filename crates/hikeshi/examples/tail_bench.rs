//! Latency and sustained throughput of the file source of `hikeshi watch`
//! (run it through `bench/tail-latency.sh`, which builds it in release
//! mode).
//!
//! - latency: 1,000 lines written one `write()` each, 1 ms apart; the time
//!   from just before the `write()` to the line being received from the
//!   source's channel (and committed to the cursor store), p50/p99/max;
//! - throughput: lines appended at a target rate (default 200,000/s, in
//!   one `write()` per millisecond) for a duration (default 10 s) while a
//!   consumer receives and commits each; the lag (lines written, not yet
//!   received) and the resident memory are sampled every 250 ms.
//!
//! The peer measured in the same run is `tail -F -n 0`, the log reader
//! sshguard uses (its `sshg-logtail`), read through a pipe.
//!
//! Usage: tail_bench [RATE_LINES_PER_S] [SECONDS]

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hikeshi::sources::tail::{CursorStore, FileSource, FileSourceConfig};
use hikeshi::sources::SourceStats;

fn line(n: u64) -> String {
    format!(
        "Nov 26 14:00:00 web1 sshd[4242]: Failed password for invalid user admin from 203.0.113.{} port {} ssh2 #{n:09}\n",
        n % 250,
        1024 + n % 60000
    )
}

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

/// Something that yields the lines appended to the log.
trait Follower {
    fn next_line(&mut self) -> Vec<u8>;
}

struct Hikeshi {
    rx: std::sync::mpsc::Receiver<hikeshi::sources::Incoming>,
    store: Arc<CursorStore>,
    _source: FileSource,
}

impl Follower for Hikeshi {
    fn next_line(&mut self) -> Vec<u8> {
        let item = self.rx.recv().expect("source alive");
        self.store.commit_incoming(&item);
        match item.payload {
            hikeshi::sources::Payload::Line { bytes, .. } => bytes,
            hikeshi::sources::Payload::Record { .. } => unreachable!(),
        }
    }
}

struct Tail {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
    buf: Vec<u8>,
}

impl Follower for Tail {
    fn next_line(&mut self) -> Vec<u8> {
        self.buf.clear();
        self.out.read_until(b'\n', &mut self.buf).expect("tail output");
        self.buf.clone()
    }
}

impl Drop for Tail {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(which: &str, log: &Path, data: &Path) -> Box<dyn Follower> {
    match which {
        "hikeshi" => {
            let store =
                CursorStore::open(&data.join("cursors"), Duration::from_millis(200)).unwrap();
            let (tx, rx) = sync_channel(8192);
            let config = FileSourceConfig::new(&[log.to_str().unwrap()]);
            let source = FileSource::spawn(&config, store.clone(), tx, SourceStats::new()).unwrap();
            Box::new(Hikeshi { rx, store, _source: source })
        }
        _ => {
            let mut child =
                hikeshi::exec::command("tail", ["-F", "-q", "-n", "0", log.to_str().unwrap()])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("tail");
            let out = BufReader::with_capacity(1 << 20, child.stdout.take().unwrap());
            // tail needs a moment to open the file and set its watch.
            std::thread::sleep(Duration::from_millis(300));
            Box::new(Tail { child, out, buf: Vec::new() })
        }
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn latency(which: &str) -> (Duration, Duration, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    File::create(&log).unwrap();
    let mut follower = start(which, &log, dir.path());
    let mut file = OpenOptions::new().append(true).open(&log).unwrap();
    let mut samples = Vec::with_capacity(1000);
    for n in 0..1100u64 {
        let text = line(n);
        let started = Instant::now();
        file.write_all(text.as_bytes()).unwrap();
        let got = follower.next_line();
        let took = started.elapsed();
        assert!(got.starts_with(&text.as_bytes()[..text.len() - 1]), "{which}: wrong line");
        if n >= 100 {
            samples.push(took); // the first 100 warm up
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99), *samples.last().unwrap())
}

struct Throughput {
    written: u64,
    received: u64,
    max_lag: u64,
    drain: Duration,
    rss_start: u64,
    rss_max: u64,
    rss_end: u64,
}

fn throughput(which: &str, rate: u64, seconds: u64) -> Throughput {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    File::create(&log).unwrap();
    let mut follower = start(which, &log, dir.path());
    let written = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let (written, done, log) = (written.clone(), done.clone(), log.clone());
        std::thread::spawn(move || {
            let mut file = OpenOptions::new().append(true).open(&log).unwrap();
            let per_ms = rate / 1000;
            let started = Instant::now();
            let mut n = 0u64;
            let mut batch = String::new();
            for ms in 0..seconds * 1000 {
                batch.clear();
                for _ in 0..per_ms {
                    batch.push_str(&line(n));
                    n += 1;
                }
                file.write_all(batch.as_bytes()).unwrap();
                written.store(n, Ordering::Release);
                let next = started + Duration::from_millis(ms + 1);
                if let Some(wait) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            done.store(true, Ordering::Release);
            (n, Instant::now())
        })
    };
    let received = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (written, received, done) = (written.clone(), received.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut max_lag, mut rss_max) = (0, 0);
            while !done.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(250));
                let lag = written
                    .load(Ordering::Acquire)
                    .saturating_sub(received.load(Ordering::Relaxed));
                max_lag = max_lag.max(lag);
                if std::env::var_os("TAIL_BENCH_DEBUG").is_some() {
                    eprintln!(
                        "written {} received {}",
                        written.load(Ordering::Acquire),
                        received.load(Ordering::Relaxed)
                    );
                }
                rss_max = rss_max.max(rss_kib());
            }
            (max_lag, rss_max)
        })
    };
    let rss_start = rss_kib();
    let expected = rate / 1000 * seconds * 1000;
    let mut count = 0u64;
    while count < expected {
        let got = follower.next_line();
        assert!(!got.is_empty());
        count += 1;
        received.store(count, Ordering::Relaxed);
    }
    let last = Instant::now();
    let (total, writer_end) = writer.join().unwrap();
    let drain = last.saturating_duration_since(writer_end);
    let (max_lag, rss_max) = sampler.join().unwrap();
    Throughput {
        written: total,
        received: count,
        max_lag,
        drain,
        rss_start,
        rss_max,
        rss_end: rss_kib(),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rate: u64 = args.next().map_or(200_000, |a| a.parse().expect("RATE"));
    let seconds: u64 = args.next().map_or(10, |a| a.parse().expect("SECONDS"));
    println!("latency: write() to line received, 1,000 lines 1 ms apart");
    let mut p99s = Vec::new();
    for which in ["hikeshi", "tail -F"] {
        let (p50, p99, max) = latency(which);
        p99s.push(p99);
        println!("  {which:8} p50 {:>8.1?}  p99 {:>8.1?}  max {:>8.1?}", p50, p99, max);
    }
    println!("  p99 ratio hikeshi / tail -F: {:.2}", p99s[0].as_secs_f64() / p99s[1].as_secs_f64());
    println!("throughput: {rate} lines/s appended for {seconds} s");
    for which in ["hikeshi", "tail -F"] {
        let t = throughput(which, rate, seconds);
        println!(
            "  {which:8} written {} received {}  max lag {} lines ({:.1} ms)  drained {:.1?} after the writer stopped",
            t.written,
            t.received,
            t.max_lag,
            t.max_lag as f64 * 1000.0 / rate as f64,
            t.drain
        );
        if which == "hikeshi" {
            println!(
                "           RSS {} KiB at start, {} KiB max, {} KiB at end",
                t.rss_start, t.rss_max, t.rss_end
            );
        }
    }
}
