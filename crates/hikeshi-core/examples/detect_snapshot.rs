//! Size and speed of detector snapshots (run it in release:
//! `bench/detect-snapshot.sh`).
//!
//! For 10,000 and 1,000,000 attacking addresses (10% IPv6, ten per /64;
//! three failures each, 50 user names, default configuration), and for
//! 10,000 addresses with full rings (20 failures each, the worst case per
//! subject), it measures: `Detector::snapshot`, the postcard blob
//! (`to_bytes` / `from_bytes`: size and time), `Detector::restore`, and as
//! the peer the same snapshot through `serde_json`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

use hikeshi_core::allowlist::Allowlist;
use hikeshi_core::detect::{DetectConfig, Detector, DetectorSnapshot};
use hikeshi_core::{AuthEvent, Kind, Outcome, Source};
use jiff::Timestamp;

const START: i64 = 1_768_471_200; // 2026-01-15T10:00:00Z

fn main() {
    for (addresses, failures) in [(10_000u32, 3u32), (1_000_000, 3), (10_000, 20)] {
        measure(addresses, failures);
    }
}

fn measure(addresses: u32, failures: u32) {
    let users: Vec<String> = (0..50).map(|i| format!("user{i}")).collect();
    let mut detector = Detector::new(DetectConfig::default(), Allowlist::default()).unwrap();
    let mut event = template();
    let mut findings = Vec::new();
    let ipv6 = addresses / 10;
    for round in 0..failures {
        for i in 0..addresses {
            let n = u64::from(round) * u64::from(addresses) + u64::from(i);
            event.time = Timestamp::from_second(START + (n / 1000) as i64).unwrap();
            event.source = Some(Source::Addr(address(i, ipv6)));
            event.user.clone_from(&Some(users[(n % 50) as usize].clone()));
            detector.observe(&event, &mut findings);
            findings.clear();
        }
    }
    let subjects = detector.tracked_subjects();

    let started = Instant::now();
    let snapshot = detector.snapshot();
    let snapshot_time = started.elapsed();
    let started = Instant::now();
    let bytes = snapshot.to_bytes();
    let encode_time = started.elapsed();
    let started = Instant::now();
    let decoded = DetectorSnapshot::from_bytes(&bytes).unwrap();
    let decode_time = started.elapsed();
    let started = Instant::now();
    let outcome =
        Detector::restore(DetectConfig::default(), Allowlist::default(), decoded).unwrap();
    let restore_time = started.elapsed();
    assert!(outcome.reset_reason.is_none());
    assert_eq!(outcome.detector.tracked_subjects(), subjects);

    let started = Instant::now();
    let json = serde_json::to_vec(&snapshot).unwrap();
    let json_encode_time = started.elapsed();
    let started = Instant::now();
    let from_json: DetectorSnapshot = serde_json::from_slice(&json).unwrap();
    let json_decode_time = started.elapsed();
    assert_eq!(from_json, snapshot);

    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    println!("{addresses} addresses, {failures} failures each: {subjects} tracked subjects");
    println!("  snapshot():       {:.1} ms", ms(snapshot_time));
    println!(
        "  postcard blob:    {} bytes ({:.1} bytes/subject), to_bytes {:.1} ms, from_bytes {:.1} ms",
        bytes.len(),
        bytes.len() as f64 / subjects as f64,
        ms(encode_time),
        ms(decode_time)
    );
    println!("  restore():        {:.1} ms", ms(restore_time));
    println!(
        "  json peer:        {} bytes ({:.1} bytes/subject), encode {:.1} ms, decode {:.1} ms",
        json.len(),
        json.len() as f64 / subjects as f64,
        ms(json_encode_time),
        ms(json_decode_time)
    );
    println!(
        "  ratio:            size postcard/json = {:.2}, save (snapshot+to_bytes) {:.1} ms, load (from_bytes+restore) {:.1} ms",
        bytes.len() as f64 / json.len() as f64,
        ms(snapshot_time + encode_time),
        ms(decode_time + restore_time)
    );
}

/// The `i`-th attacking address: IPv6 for the first `ipv6`, ten per /64
/// in 2001:db8::/32; IPv4 otherwise.
fn address(i: u32, ipv6: u32) -> IpAddr {
    if i < ipv6 {
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
