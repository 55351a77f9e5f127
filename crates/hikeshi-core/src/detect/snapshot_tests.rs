//! Tests of saving and restoring the detector: a run cut anywhere and
//! resumed from a snapshot gives the findings of one uninterrupted run;
//! bad snapshots give errors, never panics; configuration and allowlist
//! changes at restore time.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::allowlist::AllowReason;
use crate::event::{Kind, Mode};

/// 2026-01-15T10:00:00Z, plus `secs`.
fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(1_768_471_200 + secs).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn event(secs: i64, source: Source, user: Option<&str>, kind: Kind) -> AuthEvent {
    AuthEvent {
        time: at(secs),
        host: Some("server1".into()),
        process: "sshd".into(),
        pid: Some(2231),
        kind,
        outcome: kind.outcome(Mode::Normal),
        source: Some(source),
        user: user.map(str::to_string),
        port: Some(55214),
    }
}

fn fail(secs: i64, addr: &str) -> AuthEvent {
    event(secs, Source::Addr(ip(addr)), Some("root"), Kind::FailedAuth)
}

fn accept(secs: i64, addr: &str) -> AuthEvent {
    event(secs, Source::Addr(ip(addr)), Some("deploy"), Kind::Accepted)
}

/// The default rules with larger thresholds for the rules not under test.
fn quiet() -> DetectConfig {
    DetectConfig {
        enumeration: EnumerationConfig { distinct_users: 255, findtime: Window::from_hours(1) },
        spray: SprayConfig { distinct_sources: 255, findtime: Window::from_hours(1) },
        ..DetectConfig::default()
    }
}

/// Small thresholds and windows, so that random sequences fire every rule.
fn busy() -> DetectConfig {
    DetectConfig {
        maxretry: 3,
        findtime: Window::from_secs(60),
        ipv6_prefix_len: 64,
        ipv4_prefix_len: Some(24),
        prefix_maxretry: 4,
        enumeration: EnumerationConfig { distinct_users: 3, findtime: Window::from_secs(120) },
        slow: SlowConfig { maxretry: 6, findtime: Window::from_secs(600) },
        spray: SprayConfig { distinct_sources: 3, findtime: Window::from_secs(300) },
        success_after_failures: SuccessConfig { min_failures: 2, findtime: Window::from_secs(300) },
        max_tracked_sources: 1000,
    }
}

fn feed(detector: &mut Detector, events: &[AuthEvent]) -> Vec<Finding> {
    let mut out = Vec::new();
    for event in events {
        detector.observe(event, &mut out);
    }
    out
}

/// Snapshot, through bytes, restored with `config` and `allowlist`.
fn round_trip(detector: &Detector, config: DetectConfig, allowlist: Allowlist) -> RestoreOutcome {
    let bytes = detector.snapshot().to_bytes();
    let snapshot = DetectorSnapshot::from_bytes(&bytes).unwrap();
    Detector::restore(config, allowlist, snapshot).unwrap()
}

fn exact(detector: &Detector, allowlist: Allowlist) -> Detector {
    let outcome = round_trip(detector, detector.config().clone(), allowlist);
    assert_eq!(outcome.reset_reason, None);
    outcome.detector
}

#[test]
fn three_failures_before_a_run_and_three_after_are_one_brute_force() {
    let mut first = Detector::new(quiet(), Allowlist::default()).unwrap();
    let before: Vec<_> = (0..3).map(|i| fail(i * 60, "203.0.113.5")).collect();
    assert!(feed(&mut first, &before).is_empty());

    let mut second = exact(&first, Allowlist::default());
    let after: Vec<_> = (3..6).map(|i| fail(i * 60, "203.0.113.5")).collect();
    let findings = feed(&mut second, &after);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].rule, Rule::BruteForce);
    assert_eq!(findings[0].at, at(240), "the fifth failure, second of this run");
    assert_eq!(findings[0].first_seen, at(0));
    assert_eq!(findings[0].failures, 5);

    // The episode goes on in a third run: not reported again.
    let mut third = exact(&second, Allowlist::default());
    assert!(feed(&mut third, &[fail(400, "203.0.113.5"), fail(401, "203.0.113.5")]).is_empty());
    assert_eq!(third.stats().failures, 8, "stats are cumulative across runs");
    assert_eq!(third.stats().findings, 1);
}

#[test]
fn snapshots_round_trip_through_json_too() {
    let mut d = Detector::new(busy(), Allowlist::default()).unwrap();
    feed(&mut d, &[fail(0, "203.0.113.5"), fail(1, "2001:db8::7"), accept(2, "203.0.113.5")]);
    let snapshot = d.snapshot();
    let json = serde_json::to_string(&snapshot).unwrap();
    let back: DetectorSnapshot = serde_json::from_str(&json).unwrap();
    assert_eq!(back, snapshot);
    assert_eq!(DetectorSnapshot::from_bytes(&snapshot.to_bytes()).unwrap(), snapshot);
    assert_eq!(snapshot.version(), SNAPSHOT_VERSION);
    // Two addresses, the /24, the /64 and the account.
    assert_eq!(snapshot.tracked_subjects(), 5);
}

#[test]
fn another_version_is_refused_clearly() {
    let d = Detector::new(busy(), Allowlist::default()).unwrap();
    let mut bytes = d.snapshot().to_bytes();
    bytes[4..8].copy_from_slice(&2u32.to_le_bytes());
    let err = DetectorSnapshot::from_bytes(&bytes).unwrap_err();
    assert_eq!(err, RestoreError::UnsupportedVersion { found: 2, supported: SNAPSHOT_VERSION });
    assert!(err.to_string().contains("version 2 is not supported"), "{err}");

    // The same through the serde form.
    let mut json = serde_json::to_value(d.snapshot()).unwrap();
    json["version"] = 7.into();
    let snapshot: DetectorSnapshot = serde_json::from_value(json).unwrap();
    let err = Detector::restore(busy(), Allowlist::default(), snapshot).err().unwrap();
    assert_eq!(err, RestoreError::UnsupportedVersion { found: 7, supported: SNAPSHOT_VERSION });
}

/// A snapshot with some of everything: addresses, prefixes, a host name,
/// accounts, user names, ongoing episodes.
fn rich_detector() -> Detector {
    let mut d = Detector::new(busy(), Allowlist::default()).unwrap();
    let mut events = Vec::new();
    for i in 0..40i64 {
        let addr = match i % 4 {
            0 => "203.0.113.5".to_string(),
            1 => format!("2001:db8:1::{}", i + 1),
            2 => format!("198.51.100.{}", i + 1),
            _ => "203.0.113.9".to_string(),
        };
        let user = ["root", "admin", "ünïcode", "oracle"][(i % 3) as usize];
        events.push(event(i * 7, Source::Addr(ip(&addr)), Some(user), Kind::FailedAuth));
    }
    events.push(event(300, Source::Hostname("evil.example".into()), None, Kind::FailedAuth));
    events.push(accept(301, "203.0.113.5"));
    feed(&mut d, &events);
    d
}

#[test]
fn garbage_truncated_and_trailing_bytes_are_errors() {
    assert_eq!(DetectorSnapshot::from_bytes(b""), Err(RestoreError::NotASnapshot));
    assert_eq!(DetectorSnapshot::from_bytes(b"{\"version\":1}"), Err(RestoreError::NotASnapshot));
    let bytes = rich_detector().snapshot().to_bytes();
    for len in 0..bytes.len() {
        let err = DetectorSnapshot::from_bytes(&bytes[..len]).unwrap_err();
        assert!(
            matches!(err, RestoreError::NotASnapshot | RestoreError::Malformed(_)),
            "cut at {len}: {err}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert_eq!(
        DetectorSnapshot::from_bytes(&longer),
        Err(RestoreError::Malformed("1 trailing bytes".into()))
    );
    let err = DetectorSnapshot::from_bytes(&bytes[..6]).unwrap_err();
    assert_eq!(err.to_string(), "detector snapshot is malformed: truncated header");
}

#[test]
fn every_flipped_byte_is_an_error_or_a_consistent_detector() {
    let bytes = rich_detector().snapshot().to_bytes();
    let later = [fail(400, "203.0.113.5"), fail(401, "2001:db8:1::99"), accept(402, "203.0.113.9")];
    for position in 0..bytes.len() {
        for flip in [0x01u8, 0x80, 0xff] {
            let mut bad = bytes.clone();
            bad[position] ^= flip;
            let Ok(snapshot) = DetectorSnapshot::from_bytes(&bad) else { continue };
            // What decodes must restore to a detector that works, or be
            // refused; and its own snapshot must restore.
            if let Ok(outcome) = Detector::restore(busy(), Allowlist::default(), snapshot) {
                let mut d = outcome.detector;
                feed(&mut d, &later);
                d.expire(at(100_000));
                let again = d.snapshot();
                assert_eq!(DetectorSnapshot::from_bytes(&again.to_bytes()).as_ref(), Ok(&again));
                assert!(Detector::restore(busy(), Allowlist::default(), again).is_ok());
            }
        }
    }
}

/// Edits the JSON form of `detector`'s snapshot, then restores it.
fn restore_edited(
    detector: &Detector,
    edit: impl FnOnce(&mut serde_json::Value),
) -> Result<RestoreOutcome, RestoreError> {
    let mut json = serde_json::to_value(detector.snapshot()).unwrap();
    edit(&mut json);
    let snapshot: DetectorSnapshot = serde_json::from_value(json).unwrap();
    Detector::restore(detector.config().clone(), Allowlist::default(), snapshot)
}

#[test]
fn impossible_contents_are_inconsistent() {
    let d = rich_detector();
    let inconsistent = |result: Result<RestoreOutcome, RestoreError>, what: &str| match result {
        Err(RestoreError::Inconsistent(message)) => assert!(message.contains(what), "{message}"),
        Err(other) => panic!("{what}: {other}"),
        Ok(_) => panic!("{what}: accepted"),
    };
    inconsistent(restore_edited(&d, |j| j["subjects"][0]["ring"] = serde_json::json!([])), "ring");
    inconsistent(
        restore_edited(&d, |j| {
            let first = j["subjects"][0].clone();
            j["subjects"].as_array_mut().unwrap().push(first);
        }),
        "saved twice",
    );
    inconsistent(
        restore_edited(&d, |j| {
            j["subjects"][0]["key"] = serde_json::json!({"Prefix": "10.1.2.3/8"})
        }),
        "host bits",
    );
    inconsistent(
        restore_edited(&d, |j| {
            j["subjects"][0]["key"] = serde_json::json!({"Addr": "::ffff:10.1.2.3"});
        }),
        "not canonical",
    );
    inconsistent(
        restore_edited(&d, |j| {
            j["subjects"][0]["key"] = serde_json::json!({"User": "x".repeat(129)})
        }),
        "too long",
    );
    inconsistent(restore_edited(&d, |j| j["subjects"][0]["flags"] = 16.into()), "flags");
    inconsistent(
        restore_edited(&d, |j| j["subjects"][0]["ring"][0][0] = u32::MAX.into()),
        "time overflow",
    );
    inconsistent(restore_edited(&d, |j| j["now"] = 1.into()), "after the snapshot's now");
    inconsistent(restore_edited(&d, |j| j["config"]["maxretry"] = 0.into()), "maxretry");
    inconsistent(restore_edited(&d, |j| j["config"]["findtime_secs"] = 0.into()), "window");
    inconsistent(
        restore_edited(&d, |j| j["user_names"][0][1] = "u".repeat(65).into()),
        "user name",
    );
    inconsistent(restore_edited(&d, |j| j["scan_from"] = 1_000_000.into()), "scan");
    inconsistent(restore_edited(&d, |j| j["stats"]["events"] = u64::MAX.into()), "counter");
    // The untouched form restores.
    assert!(restore_edited(&d, |_| {}).is_ok());
}

#[test]
fn an_invalid_new_config_is_a_config_error() {
    let snapshot = rich_detector().snapshot();
    let config = DetectConfig { maxretry: 0, ..busy() };
    let err = Detector::restore(config, Allowlist::default(), snapshot).err().unwrap();
    assert!(matches!(&err, RestoreError::Config(e) if e.field == "maxretry"), "{err}");
}

#[test]
fn a_changed_threshold_restarts_its_episodes_and_keeps_the_history() {
    let mut first = Detector::new(quiet(), Allowlist::default()).unwrap();
    // Reported under maxretry 5.
    let reported: Vec<_> = (0..5).map(|i| fail(i, "203.0.113.5")).collect();
    assert_eq!(feed(&mut first, &reported).len(), 1);
    // Below maxretry 5, not reported.
    assert!(feed(&mut first, &[fail(10, "198.51.100.7"), fail(11, "198.51.100.7")]).is_empty());

    let config = DetectConfig { maxretry: 3, ..quiet() };
    let outcome = round_trip(&first, config.clone(), Allowlist::default());
    let reason = outcome.reset_reason.expect("the rules changed");
    assert!(reason.contains("maxretry 5 → 3"), "{reason}");
    assert!(reason.contains("episodes of the changed rules restarted"), "{reason}");
    let mut second = outcome.detector;
    assert_eq!(second.config(), &config);
    assert_eq!(second.tracked_subjects(), first.tracked_subjects());

    // The ongoing attack is reported once more, under the new threshold,
    // with the failures of the previous run counted.
    let findings = feed(&mut second, &[fail(20, "203.0.113.5"), fail(21, "203.0.113.5")]);
    assert_eq!(findings.len(), 1);
    assert_eq!((findings[0].rule, findings[0].threshold), (Rule::BruteForce, 3));
    assert_eq!(findings[0].total_failures, 6);
    // Two old failures plus one new make three.
    let findings = feed(&mut second, &[fail(22, "198.51.100.7")]);
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].first_seen, at(10));
}

#[test]
fn an_unrelated_rule_change_keeps_the_other_episodes() {
    let mut first = Detector::new(quiet(), Allowlist::default()).unwrap();
    assert_eq!(
        feed(&mut first, &(0..5).map(|i| fail(i, "203.0.113.5")).collect::<Vec<_>>()).len(),
        1
    );
    let mut config = quiet();
    config.spray.distinct_sources = 200;
    config.max_tracked_sources = 5000;
    let outcome = round_trip(&first, config, Allowlist::default());
    assert!(outcome.reset_reason.as_deref().is_some_and(|r| r.contains("spray")));
    let mut second = outcome.detector;
    assert!(feed(&mut second, &[fail(6, "203.0.113.5")]).is_empty(), "same brute-force episode");

    // Changing only the cap or the success rule changes nothing saved.
    let mut config = quiet();
    config.max_tracked_sources = 5000;
    config.success_after_failures.min_failures = 3;
    assert_eq!(round_trip(&first, config, Allowlist::default()).reset_reason, None);
}

#[test]
fn a_smaller_ring_keeps_the_newest_failures() {
    let mut first = Detector::new(DetectConfig::default(), Allowlist::default()).unwrap();
    // 20 failures of one address, 2 seconds apart (slow.maxretry 20 sets
    // the ring capacity).
    feed(&mut first, &(0..20).map(|i| fail(i * 2, "203.0.113.5")).collect::<Vec<_>>());
    let config = DetectConfig {
        prefix_maxretry: 5,
        enumeration: EnumerationConfig { distinct_users: 5, findtime: Window::from_hours(1) },
        slow: SlowConfig { maxretry: 5, findtime: Window::from_hours(24) },
        spray: SprayConfig { distinct_sources: 5, findtime: Window::from_hours(1) },
        ..DetectConfig::default()
    };
    assert_eq!(config.ring_capacity(), 5);
    let outcome = round_trip(&first, config, Allowlist::default());
    let reason = outcome.reset_reason.unwrap();
    assert!(reason.contains("rings cut to their newest 5 failures"), "{reason}");
    let mut second = outcome.detector;
    // Brute force's rule did not change: the next failure is the same
    // episode. (The restarted slow episode is withheld under it.)
    assert!(feed(&mut second, &[fail(41, "203.0.113.5")]).is_empty());
    let snapshot = second.snapshot();
    let json = serde_json::to_value(&snapshot).unwrap();
    let ring = json["subjects"][0]["ring"].as_array().unwrap();
    assert_eq!(ring.len(), 5);
}

#[test]
fn a_changed_prefix_length_drops_the_old_prefixes() {
    let mut first = Detector::new(busy(), Allowlist::default()).unwrap();
    feed(&mut first, &[fail(0, "2001:db8:1::1"), fail(1, "2001:db8:1::2"), fail(2, "192.0.2.1")]);
    // Three addresses, the /64, the /24, the account.
    assert_eq!(first.tracked_subjects(), 6);
    let config = DetectConfig { ipv6_prefix_len: 56, ipv4_prefix_len: None, ..busy() };
    let outcome = round_trip(&first, config, Allowlist::default());
    let reason = outcome.reset_reason.unwrap();
    assert!(reason.contains("ipv6_prefix_len 64 → 56"), "{reason}");
    assert!(reason.contains("2 prefixes of a length no longer configured dropped"), "{reason}");
    let mut second = outcome.detector;
    assert_eq!(second.tracked_subjects(), 4);
    // Four failures from two addresses of the new /56: only the new ones
    // count for the prefix.
    let events = [fail(3, "2001:db8:1:ff::1"), fail(4, "2001:db8:1:ff::2")];
    assert!(feed(&mut second, &events).iter().all(|f| f.rule != Rule::PrefixBruteForce));
    let events = [fail(5, "2001:db8:1:ff::3"), fail(6, "2001:db8:1:ff::4")];
    let findings = feed(&mut second, &events);
    let prefix: Vec<_> = findings.iter().filter(|f| f.rule == Rule::PrefixBruteForce).collect();
    assert_eq!(prefix.len(), 1);
    assert_eq!(prefix[0].subject, Subject::Prefix(net("2001:db8:1::/56")));
    assert_eq!(prefix[0].failures, 4);
}

#[test]
fn a_lower_cap_evicts_at_restore_and_counts_it() {
    let mut first = Detector::new(quiet(), Allowlist::default()).unwrap();
    let events: Vec<_> = (0..1500u32)
        .map(|i| fail(i64::from(i), &IpAddr::from((0x0b00_0000 + i * 7).to_be_bytes()).to_string()))
        .collect();
    feed(&mut first, &events);
    let subjects = first.tracked_subjects();
    assert!(subjects > 1500);
    let config = DetectConfig { max_tracked_sources: 1000, ..quiet() };
    let outcome = round_trip(&first, config, Allowlist::default());
    let reason = outcome.reset_reason.unwrap();
    assert!(reason.contains(&format!("{} subjects evicted", subjects - 1000)), "{reason}");
    assert_eq!(outcome.detector.tracked_subjects(), 1000);
    let stats = outcome.detector.stats();
    assert_eq!(
        stats.evictions + stats.expired - first.stats().evictions - first.stats().expired,
        (subjects - 1000) as u64
    );
}

#[test]
fn the_allowlist_of_the_new_run_flags_new_findings() {
    let mut first = Detector::new(quiet(), Allowlist::default()).unwrap();
    let findings = feed(&mut first, &(0..5).map(|i| fail(i, "192.0.2.44")).collect::<Vec<_>>());
    assert_eq!(findings[0].allowlisted, None);

    let allowlist = Allowlist::new(vec![net("192.0.2.0/24")], vec![]);
    let mut second = exact(&first, allowlist);
    let findings = feed(&mut second, &[accept(10, "192.0.2.44")]);
    assert_eq!(findings[0].rule, Rule::SuccessAfterFailures);
    assert_eq!(findings[0].allowlisted, Some(AllowReason::Configured(net("192.0.2.0/24"))));
    assert_eq!(findings[0].ban_target(), None);

    // And removed from the allowlist again: findings are ban targets.
    let mut third = exact(&second, Allowlist::default());
    let later: Vec<_> = (0..5).map(|i| fail(2000 + i, "192.0.2.44")).collect();
    let findings = feed(&mut third, &later);
    assert_eq!(findings[0].rule, Rule::BruteForce);
    assert_eq!(findings[0].allowlisted, None);
    assert_eq!(findings[0].ban_target(), Some(net("192.0.2.44/32")));
}

#[test]
fn evictions_after_a_restore_pick_the_same_victims() {
    // 1000 is the smallest cap: a flood of single failures fills it while
    // three attackers keep failing, cut at several points.
    let attackers = ["203.0.113.5", "2001:db8:7::1", "198.51.100.9"];
    let mut events = Vec::new();
    for i in 0..2500u32 {
        let flood = IpAddr::from((0x0b00_0000 + i * 7).to_be_bytes()).to_string();
        events.push(fail(i64::from(i / 4), &flood));
        if i % 40 == 0 {
            events.push(fail(i64::from(i / 4), attackers[(i / 40 % 3) as usize]));
        }
    }
    let config = DetectConfig { max_tracked_sources: 1000, ..busy() };
    let mut whole = Detector::new(config.clone(), Allowlist::default()).unwrap();
    let expected: Vec<Vec<Finding>> = events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            whole.observe(e, &mut out);
            out
        })
        .collect();
    assert!(whole.stats().evictions > 1000);
    for cut in [900, 1100, 2000] {
        let mut first = Detector::new(config.clone(), Allowlist::default()).unwrap();
        feed(&mut first, &events[..cut]);
        let mut second = exact(&first, Allowlist::default());
        let got = feed(&mut second, &events[cut..]);
        let want: Vec<Finding> = expected[cut..].iter().flatten().cloned().collect();
        assert_eq!(got, want, "cut at {cut}");
        assert_eq!(second.stats(), whole.stats(), "cut at {cut}");
        assert_eq!(second.snapshot(), whole.snapshot(), "cut at {cut}");
    }
}

#[derive(Debug, Clone)]
enum Step {
    Fail { gap: i64, source: usize, user: usize },
    Accept { gap: i64, source: usize, user: usize },
    Expire { gap: i64 },
}

const SOURCES: [&str; 10] = [
    "203.0.113.5",
    "203.0.113.6",
    "203.0.113.200",
    "198.51.100.7",
    "2001:db8:1::1",
    "2001:db8:1::2",
    "2001:db8:1::3",
    "2001:db8:2::1",
    "192.0.2.44",
    "evil.example",
];
const USERS: [Option<&str>; 6] =
    [None, Some("root"), Some("admin"), Some("oracle"), Some("deploy"), Some("ünïcode")];

fn gap() -> impl Strategy<Value = i64> {
    prop_oneof![6 => 0i64..=20, 2 => 0i64..=400, 1 => -30i64..=0, 1 => 500i64..=3000]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        8 => (gap(), 0..SOURCES.len(), 0..USERS.len())
            .prop_map(|(gap, source, user)| Step::Fail { gap, source, user }),
        2 => (gap(), 0..SOURCES.len(), 0..USERS.len())
            .prop_map(|(gap, source, user)| Step::Accept { gap, source, user }),
        1 => gap().prop_map(|gap| Step::Expire { gap }),
    ]
}

/// What the detector is given at each step.
enum Input {
    Event(AuthEvent),
    Expire(Timestamp),
}

fn inputs(steps: &[Step]) -> Vec<Input> {
    let mut time = 0i64;
    let source_of = |i: usize| match SOURCES[i].parse::<IpAddr>() {
        Ok(addr) => Source::Addr(addr),
        Err(_) => Source::Hostname(SOURCES[i].into()),
    };
    steps
        .iter()
        .map(|step| match *step {
            Step::Fail { gap, source, user } => {
                time += gap;
                Input::Event(event(time, source_of(source), USERS[user], Kind::FailedAuth))
            }
            Step::Accept { gap, source, user } => {
                time += gap;
                Input::Event(event(time, source_of(source), USERS[user], Kind::Accepted))
            }
            Step::Expire { gap } => {
                time += gap;
                Input::Expire(at(time))
            }
        })
        .collect()
}

fn apply(detector: &mut Detector, input: &Input) -> Vec<Finding> {
    let mut out = Vec::new();
    match input {
        Input::Event(event) => detector.observe(event, &mut out),
        Input::Expire(now) => detector.expire(*now),
    }
    out
}

proptest! {
    /// The key property: a run cut anywhere, saved to bytes and resumed,
    /// gives exactly the findings, stats and state of one detector fed
    /// everything.
    #[test]
    fn a_run_cut_anywhere_and_restored_gives_the_same_findings(
        steps in proptest::collection::vec(step(), 1..150),
        cut in any::<proptest::sample::Index>(),
        config in prop_oneof![Just(busy()), Just(DetectConfig { ipv4_prefix_len: None, ..quiet() })],
    ) {
        let inputs = inputs(&steps);
        let cut = cut.index(inputs.len() + 1);
        let allowlist = Allowlist::new(vec![net("192.0.2.0/24")], vec![ip("203.0.113.200")]);

        let mut whole = Detector::new(config.clone(), allowlist.clone()).unwrap();
        let expected: Vec<Vec<Finding>> = inputs.iter().map(|i| apply(&mut whole, i)).collect();

        let mut first = Detector::new(config.clone(), allowlist.clone()).unwrap();
        for input in &inputs[..cut] {
            apply(&mut first, input);
        }
        let bytes = first.snapshot().to_bytes();
        let snapshot = DetectorSnapshot::from_bytes(&bytes).unwrap();
        let outcome = Detector::restore(config, allowlist, snapshot).unwrap();
        prop_assert_eq!(outcome.reset_reason, None);
        let mut second = outcome.detector;
        for (n, input) in inputs.iter().enumerate().skip(cut) {
            prop_assert_eq!(&apply(&mut second, input), &expected[n], "step {}", n);
        }
        prop_assert_eq!(second.stats(), whole.stats());
        prop_assert_eq!(second.snapshot(), whole.snapshot());
    }

    /// Arbitrary bytes after a valid header never panic the decoder.
    #[test]
    fn arbitrary_bytes_never_panic(body in proptest::collection::vec(any::<u8>(), 0..400)) {
        let mut bytes = b"HKDS".to_vec();
        bytes.extend_from_slice(&SNAPSHOT_VERSION.to_le_bytes());
        bytes.extend_from_slice(&body);
        if let Ok(snapshot) = DetectorSnapshot::from_bytes(&bytes) {
            let _ = Detector::restore(busy(), Allowlist::default(), snapshot);
        }
    }
}
