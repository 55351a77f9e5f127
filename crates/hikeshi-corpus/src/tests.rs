//! Tests of the generator through its public behaviour: determinism,
//! shares, envelopes, time, PIDs, ground-truth counts.

use std::collections::{HashMap, HashSet};

use hikeshi_core::Kind;

use super::*;

fn generate(config: Config) -> (Vec<u8>, Stats) {
    let mut generator = Generator::new(config).unwrap();
    let mut out = Vec::new();
    generator.write_to(&mut out).unwrap();
    (out, generator.stats().clone())
}

fn lines(bytes: &[u8]) -> Vec<&str> {
    std::str::from_utf8(bytes).unwrap().lines().collect()
}

fn config(lines: u64, seed: u64) -> Config {
    Config { lines, seed, ..Config::default() }
}

#[test]
fn same_seed_gives_the_same_bytes() {
    let (a, _) = generate(config(20_000, 42));
    let (b, _) = generate(config(20_000, 42));
    assert_eq!(a, b);
}

#[test]
fn different_seeds_give_different_bytes() {
    let (a, _) = generate(config(2_000, 42));
    let (b, _) = generate(config(2_000, 43));
    assert_ne!(a, b);
}

#[test]
fn the_iterator_yields_the_same_bytes_as_write_to() {
    let (streamed, _) = generate(config(3_000, 5));
    let iterated: Vec<u8> = Generator::new(config(3_000, 5)).unwrap().flatten().collect();
    assert_eq!(streamed, iterated);
}

#[test]
fn exactly_the_requested_lines_each_ending_with_newline() {
    for n in [0u64, 1, 2, 999, 10_000] {
        let (out, stats) = generate(Config { envelopes: Envelope::ALL.to_vec(), ..config(n, 3) });
        assert_eq!(out.iter().filter(|b| **b == b'\n').count() as u64, n);
        assert_eq!(stats.lines, n);
        if n > 0 {
            assert_eq!(out.last(), Some(&b'\n'));
        }
        assert!(!out.windows(2).any(|w| w == b"\n\n"), "no empty line");
        assert!(std::str::from_utf8(&out).is_ok());
    }
}

#[test]
fn shares_of_attack_lines_and_ipv6_connections_are_respected() {
    for (attack, ipv6) in [(0.4, 0.1), (0.8, 0.5), (0.1, 0.0)] {
        let c = Config { attack_share: attack, ipv6_share: ipv6, ..config(200_000, 9) };
        let (_, s) = generate(c);
        let attack_seen = s.attack_lines as f64 / s.lines as f64;
        let legit_seen = s.legit_lines as f64 / s.lines as f64;
        let ipv6_seen = s.ipv6_connections as f64 / s.connections as f64;
        assert!((attack_seen - attack).abs() < 0.01, "attack {attack_seen} vs {attack}");
        assert!((legit_seen - 0.05).abs() < 0.01, "legit {legit_seen}");
        assert!((ipv6_seen - ipv6).abs() < 0.02, "ipv6 {ipv6_seen} vs {ipv6}");
        assert_eq!(s.lines, s.attack_lines + s.legit_lines + s.noise_lines);
    }
}

#[test]
fn zero_shares_produce_none_of_that_kind() {
    let c = Config { attack_share: 0.0, ipv6_share: 0.0, ..config(50_000, 4) };
    let (out, s) = generate(c);
    assert_eq!(s.attack_lines, 0);
    assert_eq!(s.ipv6_connections, 0);
    let text = String::from_utf8(out).unwrap();
    assert!(!text.contains("Invalid user"));
    assert!(!text.contains("Bye Bye [preauth]"));
    assert!(!text.contains("Connection closed by"));
    assert!(!text.contains("2001:db8"));

    let all_v6 = Config { ipv6_share: 1.0, hostile_share: 0.0, ..config(20_000, 4) };
    let (out, s) = generate(all_v6);
    assert_eq!(s.ipv6_connections, s.connections);
    let mut addresses = 0;
    for line in lines(&out).into_iter().filter(|l| l.contains(" sshd[")) {
        let message = line.split_once("]: ").unwrap().1;
        for token in message.split(' ') {
            let token = token.trim_start_matches("rhost=").trim_matches(['[', ']', '(', ')']);
            if let Ok(addr) = token.parse::<std::net::IpAddr>() {
                assert!(addr.is_ipv6(), "{line}");
                addresses += 1;
            }
        }
    }
    assert!(addresses > 1000);
}

/// Checks one classic line: `Mmm dd hh:mm:ss server1 proc[pid]: message`.
fn assert_classic(line: &str) {
    const MONTHS: [&str; 12] =
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let b = line.as_bytes();
    assert!(b.len() > 16, "{line}");
    assert!(MONTHS.contains(&&line[..3]), "{line}");
    assert_eq!(b[3], b' ', "{line}");
    assert!(b[4] == b' ' || b[4].is_ascii_digit(), "{line}");
    assert!(b[5].is_ascii_digit(), "{line}");
    let time = &b[7..15];
    assert_eq!(b[6], b' ', "{line}");
    for (i, c) in time.iter().enumerate() {
        assert!(if i == 2 || i == 5 { *c == b':' } else { c.is_ascii_digit() }, "{line}");
    }
    let rest = line[15..].strip_prefix(" server1 ").unwrap_or_else(|| panic!("{line}"));
    let (tag, message) = rest.split_once(": ").unwrap_or_else(|| panic!("{line}"));
    let (process, pid) = match tag.split_once('[') {
        Some((p, pid)) => (p, Some(pid.strip_suffix(']').unwrap_or_else(|| panic!("{line}")))),
        None => (tag, None),
    };
    assert!(!process.is_empty(), "{line}");
    assert!(process.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-'), "{line}");
    if let Some(pid) = pid {
        assert!(pid.parse::<u32>().is_ok(), "{line}");
    }
    assert!(!message.is_empty(), "{line}");
}

#[test]
fn classic_lines_match_the_envelope_exactly() {
    let (out, _) =
        generate(Config { dropbear_share: 0.05, hostile_share: 0.01, ..config(50_000, 11) });
    for line in lines(&out) {
        assert_classic(line);
    }
}

#[test]
fn every_kind_of_the_vocabulary_is_generated() {
    let c =
        Config { dropbear_share: 0.05, envelopes: Envelope::ALL.to_vec(), ..config(400_000, 8) };
    let (_, s) = generate(c);
    let missing: Vec<Kind> = s.kinds().filter(|(_, n)| *n == 0).map(|(k, _)| k).collect();
    assert!(missing.is_empty(), "never generated: {missing:?}");
}

#[test]
fn ground_truth_counts_match_the_text() {
    let (out, s) = generate(Config { hostile_share: 0.01, ..config(100_000, 12) });
    let all = lines(&out);
    let count = |needle: &str| all.iter().filter(|l| l.contains(needle)).count() as u64;
    assert_eq!(s.failed_password_lines, count("Failed password"));
    assert_eq!(s.kind(Kind::InvalidUser), count("]: Invalid user "));
    assert_eq!(s.kind(Kind::Accepted), count("]: Accepted "));
    assert_eq!(
        s.kind(Kind::PamUnixAuthFailure),
        count("pam_unix(sshd:auth): authentication failure")
    );
    assert!(s.failure_lines(hikeshi_core::Mode::Normal) > s.failed_password_lines);
}

#[test]
fn time_stamps_never_go_backwards_and_follow_the_rate() {
    let c =
        Config { envelopes: vec![Envelope::Rfc3339], lines_per_second: 50.0, ..config(20_000, 2) };
    let (out, _) = generate(c.clone());
    let mut previous = c.start;
    let mut last = c.start;
    for line in lines(&out) {
        let stamp: jiff::Timestamp = line.split(' ').next().unwrap().parse().unwrap();
        assert!(stamp >= previous, "{line}");
        previous = stamp;
        last = stamp;
    }
    // 20,000 lines at 50 per second: about 400 s of log time.
    let span = last.duration_since(c.start).as_secs_f64();
    assert!((360.0..440.0).contains(&span), "span {span}");
}

#[test]
fn each_sshd_connection_has_its_own_pid() {
    let (out, _) = generate(Config { hostile_share: 0.0, ..config(100_000, 6) });
    let mut port_of_pid: HashMap<&str, &str> = HashMap::new();
    let mut pids = HashSet::new();
    for line in lines(&out) {
        let Some(rest) = line.split(" sshd[").nth(1) else { continue };
        let pid = rest.split(']').next().unwrap();
        pids.insert(pid);
        let Some(port) = rest.split(" port ").nth(1) else { continue };
        let port = port.split(|c: char| !c.is_ascii_digit()).next().unwrap();
        let first = port_of_pid.entry(pid).or_insert(port);
        assert_eq!(*first, port, "pid {pid} used by two connections: {line}");
    }
    assert!(pids.len() > 5_000, "{} pids", pids.len());
}

#[test]
fn sessions_interleave_like_concurrent_connections() {
    let (out, _) = generate(config(20_000, 13));
    let sshd_pids: Vec<&str> = lines(&out)
        .into_iter()
        .filter_map(|l| l.split(" sshd[").nth(1).map(|r| r.split(']').next().unwrap()))
        .collect();
    // A connection's lines are not all consecutive: some PID reappears
    // after another PID's line.
    let mut seen_then_left = HashSet::new();
    let mut interleaved = 0;
    for pair in sshd_pids.windows(2) {
        if pair[0] != pair[1] {
            if seen_then_left.contains(pair[1]) {
                interleaved += 1;
            }
            seen_then_left.insert(pair[0]);
        }
    }
    assert!(interleaved > 100, "{interleaved}");
}

#[test]
fn hostile_user_names_appear_verbatim_when_asked_for() {
    let (out, _) = generate(Config { hostile_share: 1.0, ..config(5_000, 14) });
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("Invalid user admin from 192.0.2.1 port 22 ssh2 from 198.1"),
        "{text:.2000}"
    );
}

#[test]
fn attackers_are_bounded_by_the_configured_count() {
    let c = Config { attackers: 20, ipv6_share: 0.0, hostile_share: 0.0, ..config(50_000, 15) };
    let (out, _) = generate(c);
    let attackers: HashSet<&str> = lines(&out)
        .into_iter()
        .filter_map(|l| l.split("]: Invalid user ").nth(1))
        .map(|r| r.split(" from ").nth(1).unwrap().split(' ').next().unwrap())
        .collect();
    assert!(attackers.len() <= 20 && attackers.len() >= 10, "{}", attackers.len());
    assert!(attackers.iter().all(|a| a.starts_with("198.18.") || a.starts_with("198.19.")));
}

#[test]
fn ipv4_attacker_addresses_are_distinct_and_spread_over_subnets() {
    let all: HashSet<String> = (0..u64::from(MAX_V4_ATTACKERS)).map(attacker_v4).collect();
    assert_eq!(all.len(), MAX_V4_ATTACKERS as usize);
    let first_hundred_subnets: HashSet<String> =
        (0..100).map(|i| attacker_v4(i).rsplit_once('.').unwrap().0.to_string()).collect();
    assert_eq!(first_hundred_subnets.len(), 100);
}

#[test]
fn rotating_ipv6_attackers_stay_in_their_slash_64() {
    let (out, _) = generate(Config { ipv6_share: 1.0, attackers: 4, ..config(20_000, 16) });
    let mut by_prefix: HashMap<String, HashSet<String>> = HashMap::new();
    for line in lines(&out) {
        let Some(rest) = line.split("]: Invalid user ").nth(1) else { continue };
        let addr: std::net::Ipv6Addr =
            rest.split(" from ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
        let s = addr.segments();
        by_prefix
            .entry(format!("{:x}:{:x}:{:x}:{:x}", s[0], s[1], s[2], s[3]))
            .or_default()
            .insert(addr.to_string());
    }
    assert!(by_prefix.len() <= 4);
    assert!(by_prefix.values().any(|addrs| addrs.len() > 10), "some /64 rotates");
}

#[test]
fn memory_stays_flat_open_sessions_are_bounded() {
    let mut generator = Generator::new(config(u64::MAX, 17)).unwrap();
    let mut line = Vec::new();
    for _ in 0..200_000 {
        line.clear();
        assert!(generator.next_line(&mut line));
        let open: usize = generator.open.iter().map(Vec::len).sum();
        assert!(open <= MAX_OPEN.iter().sum::<usize>());
    }
}

#[test]
fn bad_configurations_are_refused_with_a_clear_reason() {
    let base = Config::default();
    let cases = [
        (Config { attack_share: 0.8, legit_share: 0.3, ..base.clone() }, "exceeds 1"),
        (Config { ipv6_share: 1.5, ..base.clone() }, "IPv6 share must be between 0 and 1"),
        (Config { attack_share: f64::NAN, ..base.clone() }, "attack share"),
        (Config { lines_per_second: 0.0, ..base.clone() }, "lines per second"),
        (Config { attackers: 0, ..base.clone() }, "at least one attacker"),
        (Config { attackers: 1_000_000, ..base.clone() }, "at most"),
        (Config { envelopes: vec![], ..base.clone() }, "envelope"),
        (Config { host: "two words".into(), ..base.clone() }, "host name"),
    ];
    for (config, expected) in cases {
        let err = Generator::new(config).unwrap_err().to_string();
        assert!(err.contains(expected), "{err:?} should mention {expected:?}");
    }
}

#[test]
fn a_mix_of_envelopes_uses_each_of_them() {
    let (out, _) = generate(Config { envelopes: Envelope::ALL.to_vec(), ..config(5_000, 18) });
    let all = lines(&out);
    let has = |f: &dyn Fn(&str) -> bool| all.iter().any(|l| f(l));
    assert!(has(&|l| l.starts_with("<38>1 2026-01-15T")), "rfc5424");
    assert!(has(&|l| l.starts_with("<38>Jan 15 ")), "rfc3164");
    assert!(has(&|l| l.starts_with("2026-01-15T")), "rfc3339");
    assert!(has(&|l| l.starts_with("server1 ")), "journal");
    assert!(has(&|l| l.starts_with("Jan 15 ") && l[15..].starts_with(" [")), "nopid");
    assert!(has(&|l| l.contains(": [ID 800047 auth.info] ")), "solaris");
    assert!(has(&|l| l.starts_with("Jan 15 ") && l[15..].starts_with(" server1 ")), "classic");
}
