//! Throughput of the syslog receiver on loopback, into a consumer that
//! only counts, against a bare socket loop (the peer: the same sender into
//! a `recv_from`/`read` loop that does nothing else) measured in the same
//! run. Also the loss under overload: a consumer slower than the senders.
//!
//! Run by `bench/syslog.sh`: `syslog_throughput [MESSAGES]`.

use std::io::{BufWriter, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver};
use std::time::{Duration, Instant};

use hikeshi::sources::syslog_server::{ListenAddr, SyslogConfig, SyslogServer};
use hikeshi::sources::{Incoming, SourceStats};

const LINE: &[u8] = b"<38>Nov 26 10:00:00 web1 sshd[4242]: Failed password for invalid user bob from 192.0.2.7 port 4242 ssh2";
const TCP_SENDERS: usize = 4;

fn loopback() -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
}

/// Sends `n` datagrams as fast as possible.
fn blast_udp(to: SocketAddr, n: usize) -> Duration {
    let socket = UdpSocket::bind(loopback()).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        // Loopback can refuse for a moment (ENOBUFS): that is loss too.
        let _ = socket.send_to(LINE, to);
    }
    started.elapsed()
}

/// `TCP_SENDERS` connections sending `n` messages in total.
fn blast_tcp(to: SocketAddr, n: usize, octet_counting: bool) {
    let per_sender = n / TCP_SENDERS;
    let senders: Vec<_> = (0..TCP_SENDERS)
        .map(|_| {
            std::thread::spawn(move || {
                let mut out = BufWriter::with_capacity(64 * 1024, TcpStream::connect(to).unwrap());
                let prefix = format!("{} ", LINE.len());
                for _ in 0..per_sender {
                    if octet_counting {
                        out.write_all(prefix.as_bytes()).unwrap();
                        out.write_all(LINE).unwrap();
                    } else {
                        out.write_all(LINE).unwrap();
                        out.write_all(b"\n").unwrap();
                    }
                }
                out.flush().unwrap();
            })
        })
        .collect();
    for sender in senders {
        sender.join().unwrap();
    }
}

/// Counts messages until none came for 300 ms; `work` per message
/// simulates a slow daemon. Returns (count, time of first to last).
fn count(rx: &Receiver<Incoming>, work: Duration) -> (u64, Duration) {
    let mut received = 0u64;
    let first = rx.recv().unwrap();
    drop(first);
    received += 1;
    let started = Instant::now();
    let mut last = started;
    while let Ok(item) = rx.recv_timeout(Duration::from_millis(300)) {
        drop(item);
        received += 1;
        last = Instant::now();
        if !work.is_zero() {
            let until = Instant::now() + work;
            while Instant::now() < until {}
        }
    }
    (received, last - started)
}

fn rate(n: u64, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64().max(1e-9)
}

fn stats_line(stats: &SourceStats) -> String {
    format!(
        "lines {} dropped {} rejected {} errors {}",
        stats.lines.load(Ordering::Relaxed),
        stats.dropped.load(Ordering::Relaxed),
        stats.rejected.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed)
    )
}

fn ours_udp(n: usize, capacity: usize, work: Duration) {
    let (tx, rx) = sync_channel(capacity);
    let config =
        SyslogConfig { listen: vec![ListenAddr::udp(loopback())], ..SyslogConfig::default() };
    let server = SyslogServer::start(&config, tx).unwrap();
    let listener = server.listeners()[0].clone();
    let sender = std::thread::spawn(move || blast_udp(listener.local_addr, n));
    let (received, took) = count(&rx, work);
    let sent_in = sender.join().unwrap();
    let stats = &server.listeners()[0].stats;
    let read = stats.lines.load(Ordering::Relaxed);
    println!(
        "hikeshi udp: sent {n} in {:.3}s; delivered {received} ({:.0} msg/s); lost in the kernel {} ({:.1}%); {}",
        sent_in.as_secs_f64(),
        rate(received, took),
        n as u64 - read,
        100.0 * (n as u64 - read) as f64 / n as f64,
        stats_line(stats),
    );
    server.stop();
}

fn peer_udp(n: usize) {
    let socket = UdpSocket::bind(loopback()).unwrap();
    // The same kernel buffer as the receiver asks for.
    let size = hikeshi::sources::syslog_server::UDP_RECEIVE_BUFFER_BYTES;
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, size).is_err() {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&socket, size);
    }
    socket.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let to = socket.local_addr().unwrap();
    let sender = std::thread::spawn(move || blast_udp(to, n));
    let mut buf = vec![0u8; 65_536];
    let mut received = 0u64;
    let mut started = None;
    let mut last = Instant::now();
    while socket.recv_from(&mut buf).is_ok() {
        received += 1;
        last = Instant::now();
        started.get_or_insert(last);
    }
    sender.join().unwrap();
    let took = last - started.unwrap_or(last);
    println!(
        "peer    udp: bare recv_from loop: received {received} ({:.0} msg/s); lost {:.1}%",
        rate(received, took),
        100.0 * (n as u64 - received) as f64 / n as f64
    );
}

fn ours_tcp(n: usize, octet_counting: bool) {
    let (tx, rx) = sync_channel(65_536);
    let config =
        SyslogConfig { listen: vec![ListenAddr::tcp(loopback())], ..SyslogConfig::default() };
    let server = SyslogServer::start(&config, tx).unwrap();
    let to = server.listeners()[0].local_addr;
    let sender = std::thread::spawn(move || blast_tcp(to, n, octet_counting));
    let (received, took) = count(&rx, Duration::ZERO);
    sender.join().unwrap();
    let framing = if octet_counting { "octet-counted" } else { "newline" };
    println!(
        "hikeshi tcp ({framing}, {TCP_SENDERS} connections): delivered {received} ({:.0} msg/s); {}",
        rate(received, took),
        stats_line(&server.listeners()[0].stats)
    );
    server.stop();
}

fn peer_tcp(n: usize) {
    let listener = TcpListener::bind(loopback()).unwrap();
    let to = listener.local_addr().unwrap();
    let sender = std::thread::spawn(move || blast_tcp(to, n, false));
    let readers: Vec<_> = (0..TCP_SENDERS)
        .map(|_| {
            let (mut stream, _) = listener.accept().unwrap();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 64 * 1024];
                let mut lines = 0u64;
                let mut started = None;
                loop {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(len) => {
                            started.get_or_insert_with(Instant::now);
                            lines += memchr::memchr_iter(b'\n', &buf[..len]).count() as u64;
                        }
                    }
                }
                (lines, started.unwrap_or_else(Instant::now), Instant::now())
            })
        })
        .collect();
    let results: Vec<_> = readers.into_iter().map(|r| r.join().unwrap()).collect();
    sender.join().unwrap();
    let lines: u64 = results.iter().map(|r| r.0).sum();
    let started = results.iter().map(|r| r.1).min().unwrap();
    let ended = results.iter().map(|r| r.2).max().unwrap();
    println!(
        "peer    tcp (newline, {TCP_SENDERS} connections): bare read + count LF: {lines} ({:.0} msg/s)",
        rate(lines, ended - started)
    );
}

fn main() {
    let n: usize = std::env::args().nth(1).map_or(1_000_000, |a| a.parse().expect("MESSAGES"));
    println!("{n} messages of {} bytes", LINE.len());
    peer_udp(n);
    ours_udp(n, 65_536, Duration::ZERO);
    peer_tcp(n);
    ours_tcp(n, false);
    ours_tcp(n, true);
    println!("overload: a consumer spending 20 us per message, channel of 1024");
    ours_udp(n / 4, 1024, Duration::from_micros(20));
}
