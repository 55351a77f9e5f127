//! Memory and throughput benchmark of the detector (run it in release:
//! `bench/detect-memory.sh`).
//!
//! Scenario 1 (memory): 1,000,000 distinct attacking addresses (900,000
//! IPv4, 100,000 IPv6 rotating ten to a /64), three failures each, the
//! rounds interleaved so that every address is tracked at once, with the
//! default configuration. Prints the peak RSS (VmHWM) and events/s.
//!
//! Scenario 2 (hot): 1,000 addresses hammering with 50 user names, so
//! every ring is full and every rule is evaluated on every event.
//!
//! With the argument `naive`, scenario 1 runs instead through the
//! straightforward peer: a `HashMap<IpAddr, VecDeque<Timestamp>>` of
//! failure times that only counts brute force (no prefixes, users or
//! accounts), so the script can print the ratio of the two peaks (each in
//! its own process, since VmHWM is a high-water mark).
//!
//! Reading /proc is fine here: this is a benchmark, not the library.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use hikeshi_core::allowlist::Allowlist;
use hikeshi_core::detect::{DetectConfig, Detector, Finding};
use hikeshi_core::{AuthEvent, Kind, Outcome, Source};
use jiff::Timestamp;

const ADDRESSES: u32 = 1_000_000;
const IPV6_ADDRESSES: u32 = 100_000;
const ROUNDS: u32 = 3;
const START: i64 = 1_768_471_200; // 2026-01-15T10:00:00Z

fn main() {
    if std::env::args().nth(1).as_deref() == Some("naive") {
        return naive();
    }
    let baseline = vm_kib("VmHWM");
    let users: Vec<String> = (0..50).map(|i| format!("user{i}")).collect();

    let mut detector = Detector::new(DetectConfig::default(), Allowlist::default()).unwrap();
    let mut event = template();
    let mut findings: Vec<Finding> = Vec::new();
    let mut finding_count = 0usize;
    let started = Instant::now();
    let mut events = 0u64;
    for round in 0..ROUNDS {
        for i in 0..ADDRESSES {
            let n = u64::from(round) * u64::from(ADDRESSES) + u64::from(i);
            // A thousand events per second of log time: 50 minutes in all.
            event.time = Timestamp::from_second(START + (n / 1000) as i64).unwrap();
            event.source = Some(Source::Addr(address(i)));
            event.user.clone_from(&Some(users[(n % 50) as usize].clone()));
            detector.observe(&event, &mut findings);
            finding_count += findings.len();
            findings.clear();
            events += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let peak = vm_kib("VmHWM");
    let stats = detector.stats();
    println!("scenario 1: {ADDRESSES} distinct addresses ({IPV6_ADDRESSES} IPv6), {ROUNDS} failures each");
    println!("  events:            {events}");
    println!("  tracked subjects:  {}", detector.tracked_subjects());
    println!("  findings:          {finding_count}");
    println!("  evictions:         {} (hot: {})", stats.evictions, stats.hot_evictions);
    println!("  time:              {elapsed:.2} s");
    println!("  throughput:        {:.0} events/s", events as f64 / elapsed);
    println!("  peak RSS (VmHWM):  {:.1} MiB", peak as f64 / 1024.0);
    println!("  baseline RSS:      {:.1} MiB", baseline as f64 / 1024.0);
    println!(
        "  bytes per address: {:.0}",
        (peak - baseline) as f64 * 1024.0 / f64::from(ADDRESSES)
    );
    assert_eq!(stats.evictions, 0, "every address must be tracked at once");
    drop(detector);

    let mut detector = Detector::new(DetectConfig::default(), Allowlist::default()).unwrap();
    let hot_events = 3_000_000u64;
    let started = Instant::now();
    let mut finding_count = 0usize;
    for n in 0..hot_events {
        event.time = Timestamp::from_second(START + (n / 10_000) as i64).unwrap();
        event.source = Some(Source::Addr(address((n % 1000) as u32)));
        event.user.clone_from(&Some(users[(n / 1000 % 50) as usize].clone()));
        detector.observe(&event, &mut findings);
        finding_count += findings.len();
        findings.clear();
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("scenario 2: 1000 addresses hammering, 50 user names");
    println!("  events:            {hot_events}");
    println!("  findings:          {finding_count}");
    println!("  throughput:        {:.0} events/s", hot_events as f64 / elapsed);
}

/// Scenario 1 through the naive peer (brute force only).
fn naive() {
    use std::collections::{HashMap, VecDeque};
    let baseline = vm_kib("VmHWM");
    let mut failures: HashMap<IpAddr, VecDeque<Timestamp>> = HashMap::new();
    let findtime = jiff::SignedDuration::from_mins(10);
    let started = Instant::now();
    let mut fired = 0u64;
    for round in 0..ROUNDS {
        for i in 0..ADDRESSES {
            let n = u64::from(round) * u64::from(ADDRESSES) + u64::from(i);
            let time = Timestamp::from_second(START + (n / 1000) as i64).unwrap();
            let times = failures.entry(address(i)).or_default();
            while times.front().is_some_and(|&t| time.duration_since(t) >= findtime) {
                times.pop_front();
            }
            times.push_back(time);
            if times.len() == 5 {
                fired += 1;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let peak = vm_kib("VmHWM");
    println!("naive peer: {ADDRESSES} addresses, {ROUNDS} failures each, brute force only");
    println!("  tracked addresses: {}", failures.len());
    println!("  findings:          {fired}");
    println!("  throughput:        {:.0} events/s", f64::from(ADDRESSES * ROUNDS) / elapsed);
    println!("  peak RSS (VmHWM):  {:.1} MiB", peak as f64 / 1024.0);
    println!("  baseline RSS:      {:.1} MiB", baseline as f64 / 1024.0);
}

/// The `i`-th attacking address: IPv6 for the first `IPV6_ADDRESSES`, ten
/// per /64 in 2001:db8::/32; IPv4 otherwise.
fn address(i: u32) -> IpAddr {
    if i < IPV6_ADDRESSES {
        let prefix = i / 10;
        let host = i % 10 + 1;
        IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0x0db8,
            (prefix >> 16) as u16,
            prefix as u16,
            0,
            0,
            0,
            host as u16,
        ))
    } else {
        // 11.0.0.0 upwards, 13 apart: distinct, global, never allowlisted.
        IpAddr::V4(Ipv4Addr::from(0x0b00_0000 + i * 13))
    }
}

fn template() -> AuthEvent {
    AuthEvent {
        time: Timestamp::from_second(START).unwrap(),
        host: Some("server1".into()),
        process: "sshd".into(),
        pid: Some(2231),
        kind: Kind::FailedAuth,
        outcome: Outcome::Failure,
        source: None,
        user: None,
        port: Some(55214),
    }
}

/// A `Vm*` line of /proc/self/status, in KiB.
fn vm_kib(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/self/status"))
}
