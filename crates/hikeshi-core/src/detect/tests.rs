//! Rule-by-rule tests of the detector, and a model test of its window.

use std::net::IpAddr;

use ipnet::IpNet;
use jiff::Timestamp;
use proptest::prelude::*;

use super::*;
use crate::allowlist::AllowReason;
use crate::event::{Kind, Severity};

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

fn event(secs: i64, source: Option<Source>, user: Option<&str>, kind: Kind) -> AuthEvent {
    AuthEvent {
        time: at(secs),
        host: Some("server1".into()),
        process: "sshd".into(),
        pid: Some(2231),
        kind,
        outcome: kind.outcome(crate::event::Mode::Normal),
        source,
        user: user.map(str::to_string),
        port: Some(55214),
    }
}

fn fail(secs: i64, addr: &str) -> AuthEvent {
    event(secs, Some(Source::Addr(ip(addr))), None, Kind::FailedAuth)
}

fn fail_as(secs: i64, addr: &str, user: &str) -> AuthEvent {
    event(secs, Some(Source::Addr(ip(addr))), Some(user), Kind::FailedAuth)
}

fn accept(secs: i64, addr: &str, user: &str) -> AuthEvent {
    event(secs, Some(Source::Addr(ip(addr))), Some(user), Kind::Accepted)
}

/// A config where only the rule under test can plausibly fire.
fn quiet() -> DetectConfig {
    DetectConfig {
        maxretry: 5,
        findtime: Window::from_mins(10),
        prefix_maxretry: 10,
        enumeration: EnumerationConfig { distinct_users: 255, findtime: Window::from_hours(1) },
        slow: SlowConfig { maxretry: 255, findtime: Window::from_hours(24) },
        spray: SprayConfig { distinct_sources: 255, findtime: Window::from_hours(1) },
        success_after_failures: SuccessConfig { min_failures: 5, findtime: Window::from_hours(1) },
        ..DetectConfig::default()
    }
}

fn detector(config: DetectConfig) -> Detector {
    Detector::new(config, Allowlist::default()).unwrap()
}

/// Feeds `events`; returns, per event, the rules of the findings it
/// triggered.
fn run(detector: &mut Detector, events: &[AuthEvent]) -> Vec<Vec<Finding>> {
    events
        .iter()
        .map(|e| {
            let mut out = Vec::new();
            detector.observe(e, &mut out);
            out
        })
        .collect()
}

fn all(detector: &mut Detector, events: &[AuthEvent]) -> Vec<Finding> {
    run(detector, events).into_iter().flatten().collect()
}

fn rules(findings: &[Finding]) -> Vec<Rule> {
    findings.iter().map(|f| f.rule).collect()
}

#[test]
fn brute_force_fires_at_exactly_maxretry_within_findtime() {
    let mut d = detector(quiet());
    let events: Vec<_> = (0..7).map(|i| fail(i * 60, "203.0.113.5")).collect();
    let per_event = run(&mut d, &events);
    let fired: Vec<usize> =
        per_event.iter().enumerate().filter(|(_, f)| !f.is_empty()).map(|(i, _)| i).collect();
    assert_eq!(fired, [4], "only the 5th failure emits");
    let finding = &per_event[4][0];
    assert_eq!(finding.rule, Rule::BruteForce);
    assert_eq!(finding.severity, Severity::High);
    assert_eq!(finding.subject, Subject::Addr(ip("203.0.113.5")));
    assert_eq!(finding.failures, 5);
    assert_eq!(finding.total_failures, 5);
    assert_eq!(finding.first_seen, at(0));
    assert_eq!(finding.last_seen, at(240));
    assert_eq!(finding.at, at(240));
    assert_eq!(finding.threshold, 5);
    assert_eq!(finding.window, Window::from_mins(10));
    assert_eq!(finding.allowlisted, None);
    assert!(!finding.unresolved);
    assert_eq!(finding.ban_target(), Some(net("203.0.113.5/32")));
}

#[test]
fn brute_force_does_not_fire_at_maxretry_minus_one() {
    let mut d = detector(quiet());
    let events: Vec<_> = (0..4).map(|i| fail(i, "203.0.113.5")).collect();
    assert!(all(&mut d, &events).is_empty());
}

#[test]
fn failures_spread_beyond_findtime_do_not_fire() {
    let mut d = detector(quiet());
    // One failure every 2.5 minutes: never five within ten minutes.
    let events: Vec<_> = (0..20).map(|i| fail(i * 150, "203.0.113.5")).collect();
    assert!(all(&mut d, &events).is_empty());
}

#[test]
fn a_failure_exactly_findtime_old_no_longer_counts() {
    // Window (t - 600, t]: the failure at 0 is out of the window at 600.
    let mut d = detector(quiet());
    let events = [0, 100, 200, 300, 600].map(|t| fail(t, "203.0.113.5"));
    assert!(all(&mut d, &events).is_empty());
    let mut d = detector(quiet());
    let events = [0, 100, 200, 300, 599].map(|t| fail(t, "203.0.113.5"));
    assert_eq!(rules(&all(&mut d, &events)), [Rule::BruteForce]);
}

#[test]
fn a_new_episode_emits_again_and_a_continuing_one_does_not() {
    let mut d = detector(quiet());
    let mut events: Vec<_> = (0..5).map(|i| fail(i, "203.0.113.5")).collect();
    // Still in the window: same episode, nothing new.
    events.extend((0..10).map(|i| fail(300 + i, "203.0.113.5")));
    // Quiet for more than findtime, then five more: a new episode.
    events.extend((0..5).map(|i| fail(2000 + i, "203.0.113.5")));
    let per_event = run(&mut d, &events);
    let fired: Vec<usize> =
        per_event.iter().enumerate().filter(|(_, f)| !f.is_empty()).map(|(i, _)| i).collect();
    assert_eq!(fired, [4, 19]);
}

#[test]
fn out_of_order_failures_count_at_the_newest_time() {
    let mut d = detector(quiet());
    // The fifth line is stamped an hour early; it is counted at t=40.
    let events = [0, 10, 20, 40, -3600].map(|t| fail(t, "203.0.113.5"));
    let findings = all(&mut d, &events);
    assert_eq!(rules(&findings), [Rule::BruteForce]);
    assert_eq!(findings[0].at, at(-3600), "the finding keeps the line's own time");
    assert_eq!(findings[0].last_seen, at(40));
    assert_eq!(d.stats().out_of_order, 1);
}

#[test]
fn other_sources_do_not_count() {
    let mut d = detector(quiet());
    let events: Vec<_> = (0..8).map(|i| fail(i, &format!("203.0.113.{}", i % 2))).collect();
    assert!(all(&mut d, &events).is_empty());
}

#[test]
fn ipv6_addresses_rotating_in_one_prefix_are_one_attacker() {
    let mut d = detector(quiet());
    let events: Vec<_> =
        (0..10).map(|i| fail(i * 10, &format!("2001:db8:5:6::{:x}", i + 1))).collect();
    let findings = all(&mut d, &events);
    assert_eq!(rules(&findings), [Rule::PrefixBruteForce]);
    let finding = &findings[0];
    assert_eq!(finding.subject, Subject::Prefix(net("2001:db8:5:6::/64")));
    assert_eq!(finding.severity, Severity::High);
    assert_eq!(finding.distinct_sources, 10);
    assert_eq!(finding.failures, 10);
    assert_eq!(finding.source, Some(Source::Addr(ip("2001:db8:5:6::a"))));
    assert_eq!(finding.ban_target(), Some(net("2001:db8:5:6::/64")));
}

#[test]
fn addresses_rotating_through_a_reported_prefix_are_counted_for_it_alone() {
    let mut d = detector(quiet());
    let rotating = |from: u32, to: u32, secs: i64| -> Vec<AuthEvent> {
        (from..to).map(|i| fail(secs, &format!("2001:db8:5:6::{i:x}"))).collect()
    };
    let findings = all(&mut d, &rotating(1, 11, 0));
    assert_eq!(rules(&findings), [Rule::PrefixBruteForce]);
    assert_eq!(d.tracked_subjects(), 11, "ten addresses and their prefix");
    // A thousand more addresses of the reported prefix: no subject each,
    // no finding each, every failure counted for the prefix.
    assert!(all(&mut d, &rotating(11, 1011, 60)).is_empty());
    assert_eq!(d.tracked_subjects(), 11);
    // An address tracked before the episode keeps counting on its own.
    let again: Vec<_> = (0..4).map(|i| fail(61 + i, "2001:db8:5:6::1")).collect();
    assert_eq!(rules(&all(&mut d, &again)), [Rule::BruteForce]);
    // A success from any address of the prefix is still Critical.
    let findings = all(&mut d, &[accept(70, "2001:db8:5:6::ffff", "root")]);
    assert_eq!(rules(&findings), [Rule::SuccessAfterFailures]);
    assert_eq!(findings[0].subject, Subject::Prefix(net("2001:db8:5:6::/64")));
    // Once the episode is over, new addresses are tracked again.
    assert!(all(&mut d, &rotating(2000, 2001, 60 + 601)).is_empty());
    assert_eq!(d.tracked_subjects(), 12);
}

#[test]
fn an_allowlisted_or_wider_prefix_keeps_a_subject_per_address() {
    let list = Allowlist::new(Vec::new(), vec![ip("2001:db8:5:6::99")]);
    let mut d = Detector::new(quiet(), list).unwrap();
    let rotating: Vec<_> = (1..31).map(|i| fail(0, &format!("2001:db8:5:6::{i:x}"))).collect();
    let findings = all(&mut d, &rotating);
    assert_eq!(rules(&findings), [Rule::PrefixBruteForce]);
    assert!(findings[0].allowlisted.is_some());
    assert_eq!(d.tracked_subjects(), 31, "the prefix is not banned: each address counts");
    let own: Vec<_> = (0..5).map(|i| fail(1 + i, "2001:db8:5:6::aa")).collect();
    assert_eq!(rules(&all(&mut d, &own)), [Rule::BruteForce]);

    let mut d = detector(DetectConfig { ipv6_prefix_len: 56, ..quiet() });
    let findings = all(&mut d, &rotating);
    assert_eq!(rules(&findings), [Rule::PrefixBruteForce]);
    assert_eq!(d.tracked_subjects(), 31, "a /56 is not the incidents' /64 campaign");
}

#[test]
fn addresses_in_different_prefixes_are_not_aggregated() {
    let mut d = detector(quiet());
    let events: Vec<_> =
        (0..20).map(|i| fail(i * 10, &format!("2001:db8:5:{:x}::1", i % 10))).collect();
    assert!(all(&mut d, &events).is_empty());
}

#[test]
fn one_address_alone_is_a_brute_force_not_a_prefix_one() {
    let mut d = detector(quiet());
    let events: Vec<_> = (0..12).map(|i| fail(i, "2001:db8::1")).collect();
    assert_eq!(rules(&all(&mut d, &events)), [Rule::BruteForce]);
    // A second address joins the prefix's ongoing episode: now it is a
    // prefix brute force.
    let findings = all(&mut d, &[fail(13, "2001:db8::2")]);
    assert_eq!(rules(&findings), [Rule::PrefixBruteForce]);
    assert_eq!(findings[0].distinct_sources, 2);
}

#[test]
fn ipv6_prefix_length_is_configurable() {
    let mut d = detector(DetectConfig { ipv6_prefix_len: 48, ..quiet() });
    let events: Vec<_> = (0..10).map(|i| fail(i, &format!("2001:db8:7:{:x}::1", i))).collect();
    let findings = all(&mut d, &events);
    assert_eq!(findings[0].subject, Subject::Prefix(net("2001:db8:7::/48")));
    let mut d = detector(DetectConfig { ipv6_prefix_len: 128, ..quiet() });
    let events: Vec<_> = (0..10).map(|i| fail(i, &format!("2001:db8:7::{:x}", i + 1))).collect();
    assert!(all(&mut d, &events).is_empty(), "128 turns aggregation off");
}

#[test]
fn ipv4_prefix_aggregation_is_off_by_default_and_optional() {
    let events: Vec<_> = (0..10).map(|i| fail(i, &format!("198.51.100.{}", i + 1))).collect();
    let mut d = detector(quiet());
    assert!(all(&mut d, &events).is_empty());
    let mut d = detector(DetectConfig { ipv4_prefix_len: Some(24), ..quiet() });
    let findings = all(&mut d, &events);
    assert_eq!(rules(&findings), [Rule::PrefixBruteForce]);
    assert_eq!(findings[0].subject, Subject::Prefix(net("198.51.100.0/24")));
}

#[test]
fn user_enumeration_counts_distinct_names() {
    let config = DetectConfig {
        maxretry: 255,
        enumeration: EnumerationConfig { distinct_users: 4, findtime: Window::from_hours(1) },
        ..quiet()
    };
    // Repeating names does not enumerate.
    let mut d = detector(config.clone());
    let events: Vec<_> = (0..30)
        .map(|i| fail_as(i * 60, "203.0.113.5", ["root", "admin"][i as usize % 2]))
        .collect();
    assert!(all(&mut d, &events).is_empty());

    let mut d = detector(config);
    let names = ["root", "admin", "admin", "test", "oracle", "ubuntu"];
    let events: Vec<_> =
        names.iter().enumerate().map(|(i, u)| fail_as(i as i64 * 60, "203.0.113.5", u)).collect();
    let per_event = run(&mut d, &events);
    assert!(per_event[..4].iter().all(Vec::is_empty));
    let finding = &per_event[4][0];
    assert_eq!(finding.rule, Rule::UserEnumeration);
    assert_eq!(finding.severity, Severity::Medium);
    assert_eq!(finding.distinct_users, 4);
    let mut samples = finding.sample_users.clone();
    samples.sort();
    assert_eq!(samples, ["admin", "oracle", "root", "test"]);
    assert!(per_event[5].is_empty(), "same episode");
}

#[test]
fn user_enumeration_respects_its_window() {
    let config = DetectConfig {
        maxretry: 255,
        enumeration: EnumerationConfig { distinct_users: 3, findtime: Window::from_mins(5) },
        ..quiet()
    };
    let mut d = detector(config);
    let events = [fail_as(0, "203.0.113.5", "a"), fail_as(200, "203.0.113.5", "b")];
    assert!(all(&mut d, &events).is_empty());
    // "a" at 0 is out of (300 - 300, 300].
    assert!(all(&mut d, &[fail_as(300, "203.0.113.5", "c")]).is_empty());
    assert_eq!(rules(&all(&mut d, &[fail_as(301, "203.0.113.5", "d")])), [Rule::UserEnumeration]);
}

#[test]
fn slow_brute_force_uses_the_long_window() {
    let config = DetectConfig {
        slow: SlowConfig { maxretry: 20, findtime: Window::from_hours(24) },
        ..quiet()
    };
    let mut d = detector(config.clone());
    // One failure per hour: never a brute force, a slow one at the 20th.
    let events: Vec<_> = (0..22).map(|i| fail(i * 3600, "203.0.113.5")).collect();
    let per_event = run(&mut d, &events);
    let fired: Vec<(usize, Rule)> = per_event
        .iter()
        .enumerate()
        .flat_map(|(i, f)| f.iter().map(move |f| (i, f.rule)))
        .collect();
    assert_eq!(fired, [(19, Rule::SlowBruteForce)]);
    let finding = &per_event[19][0];
    assert_eq!(finding.severity, Severity::Medium);
    assert_eq!(finding.failures, 20);
    assert_eq!(finding.window, Window::from_hours(24));

    // One failure every 76 minutes: 19 per 24 hours, never 20.
    let mut d = detector(config);
    let events: Vec<_> = (0..40).map(|i| fail(i * 76 * 60, "203.0.113.5")).collect();
    assert!(all(&mut d, &events).is_empty());
}

#[test]
fn a_fast_attacker_is_not_also_reported_as_slow() {
    let config = DetectConfig {
        slow: SlowConfig { maxretry: 20, findtime: Window::from_hours(24) },
        ..quiet()
    };
    let mut d = detector(config);
    let events: Vec<_> = (0..30).map(|i| fail(i, "203.0.113.5")).collect();
    assert_eq!(rules(&all(&mut d, &events)), [Rule::BruteForce]);
}

#[test]
fn one_account_from_many_sources_is_an_account_attack() {
    let config = DetectConfig {
        spray: SprayConfig { distinct_sources: 6, findtime: Window::from_hours(1) },
        ..quiet()
    };
    let mut d = detector(config);
    let events: Vec<_> =
        (0..8).map(|i| fail_as(i * 60, &format!("198.51.100.{}", i + 1), "deploy")).collect();
    let per_event = run(&mut d, &events);
    assert!(per_event[..5].iter().all(Vec::is_empty));
    let finding = &per_event[5][0];
    assert_eq!(finding.rule, Rule::AccountAttack);
    assert_eq!(finding.severity, Severity::Medium);
    assert_eq!(finding.subject, Subject::User("deploy".into()));
    assert_eq!(finding.distinct_sources, 6);
    assert_eq!(finding.source, Some(Source::Addr(ip("198.51.100.6"))));
    assert_eq!(finding.ban_target(), None, "an account is not a ban target");
    assert!(per_event[6..].iter().all(Vec::is_empty));
}

#[test]
fn one_source_hammering_an_account_is_not_an_account_attack() {
    let config = DetectConfig {
        maxretry: 255,
        spray: SprayConfig { distinct_sources: 3, findtime: Window::from_hours(1) },
        ..quiet()
    };
    let mut d = detector(config);
    let events: Vec<_> = (0..50).map(|i| fail_as(i, "198.51.100.1", "deploy")).collect();
    assert!(all(&mut d, &events).is_empty());
}

#[test]
fn success_after_failures_is_critical_and_keeps_the_failures() {
    let mut d = detector(quiet());
    let mut events: Vec<_> = (0..5).map(|i| fail_as(i * 30, "203.0.113.5", "root")).collect();
    events.push(accept(200, "203.0.113.5", "root"));
    let per_event = run(&mut d, &events);
    assert_eq!(rules(&per_event[4]), [Rule::BruteForce]);
    let finding = &per_event[5][0];
    assert_eq!(finding.rule, Rule::SuccessAfterFailures);
    assert_eq!(finding.severity, Severity::Critical);
    assert_eq!(finding.subject, Subject::Addr(ip("203.0.113.5")));
    assert_eq!(finding.failures, 5);
    assert_eq!(finding.user.as_deref(), Some("root"));
    assert_eq!(finding.at, at(200));

    // Logging in again without failing again is the same compromise.
    assert!(all(&mut d, &[accept(210, "203.0.113.5", "root")]).is_empty());
    // The failures were not forgotten: one more failure and one more
    // success is a new finding, counting all six failures, and the brute
    // force episode was never interrupted.
    let findings = all(&mut d, &[fail_as(220, "203.0.113.5", "root")]);
    assert!(findings.is_empty(), "still the same brute force episode");
    let findings = all(&mut d, &[accept(230, "203.0.113.5", "root")]);
    assert_eq!(rules(&findings), [Rule::SuccessAfterFailures]);
    assert_eq!(findings[0].failures, 6);
}

#[test]
fn success_after_too_few_or_too_old_failures_is_not_reported() {
    let mut d = detector(quiet());
    let mut events: Vec<_> = (0..4).map(|i| fail(i, "203.0.113.5")).collect();
    events.push(accept(10, "203.0.113.5", "alice"));
    assert!(all(&mut d, &events).is_empty());

    let mut d = detector(quiet());
    let mut events: Vec<_> = (0..5).map(|i| fail(i, "203.0.113.6")).collect();
    events.push(accept(3600 + 4, "203.0.113.6", "alice"));
    assert_eq!(rules(&all(&mut d, &events)), [Rule::BruteForce]);
}

#[test]
fn success_from_an_address_of_a_failing_prefix_is_critical() {
    let mut d = detector(quiet());
    let mut events: Vec<_> =
        (0..6).map(|i| fail(i * 10, &format!("2001:db8:5:6::{:x}", i + 1))).collect();
    events.push(accept(100, "2001:db8:5:6::99", "root"));
    let findings = all(&mut d, &events);
    assert_eq!(rules(&findings), [Rule::SuccessAfterFailures]);
    assert_eq!(findings[0].subject, Subject::Prefix(net("2001:db8:5:6::/64")));
    assert_eq!(findings[0].source, Some(Source::Addr(ip("2001:db8:5:6::99"))));
    assert_eq!(findings[0].failures, 6);
}

#[test]
fn a_success_from_elsewhere_is_not_critical() {
    let mut d = detector(quiet());
    let mut events: Vec<_> = (0..5).map(|i| fail(i, "203.0.113.5")).collect();
    events.push(accept(10, "198.51.100.7", "root"));
    assert_eq!(rules(&all(&mut d, &events)), [Rule::BruteForce]);
}

#[test]
fn allowlisted_sources_are_recorded_and_flagged_never_ban_targets() {
    let allowlist = Allowlist::new(
        vec![net("192.0.2.0/24"), net("2001:db8:1::/48")],
        vec![ip("198.51.100.10")],
    );
    let mut d = Detector::new(quiet(), allowlist).unwrap();
    let cases = [
        ("127.0.0.1", AllowReason::Loopback),
        ("::1", AllowReason::Loopback),
        ("198.51.100.10", AllowReason::HostAddress),
        ("192.0.2.44", AllowReason::Configured(net("192.0.2.0/24"))),
    ];
    for (addr, reason) in cases {
        let events: Vec<_> = (0..5).map(|i| fail(i, addr)).collect();
        let findings = all(&mut d, &events);
        assert_eq!(rules(&findings), [Rule::BruteForce], "{addr}");
        assert_eq!(findings[0].allowlisted, Some(reason), "{addr}");
        assert_eq!(findings[0].ban_target(), None, "{addr}");
    }
    // A prefix holding an allowlisted network is flagged too.
    let events: Vec<_> = (0..10).map(|i| fail(i, &format!("2001:db8:1:2::{:x}", i + 1))).collect();
    let findings = all(&mut d, &events);
    assert_eq!(rules(&findings), [Rule::PrefixBruteForce]);
    assert_eq!(findings[0].allowlisted, Some(AllowReason::Configured(net("2001:db8:1::/48"))));
    assert_eq!(findings[0].ban_target(), None);
    // And a success after failures from the host itself is still Critical.
    let findings = all(&mut d, &[accept(20, "198.51.100.10", "root")]);
    assert_eq!(findings[0].severity, Severity::Critical);
    assert_eq!(findings[0].allowlisted, Some(AllowReason::HostAddress));
}

#[test]
fn host_names_are_tracked_but_never_a_ban_target() {
    let mut d = detector(quiet());
    let source = Some(Source::Hostname("evil.example".into()));
    let events: Vec<_> =
        (0..5).map(|i| event(i, source.clone(), Some("root"), Kind::FailedAuth)).collect();
    let findings = all(&mut d, &events);
    assert_eq!(rules(&findings), [Rule::BruteForce]);
    assert_eq!(findings[0].subject, Subject::Hostname("evil.example".into()));
    assert!(findings[0].unresolved);
    assert_eq!(findings[0].ban_target(), None);
    let findings = all(&mut d, &[event(9, source, Some("root"), Kind::Accepted)]);
    assert_eq!(rules(&findings), [Rule::SuccessAfterFailures]);
    assert_eq!(findings[0].ban_target(), None);
}

#[test]
fn ipv4_mapped_sources_are_the_ipv4_address() {
    let mut d = detector(quiet());
    let mut events: Vec<_> = (0..3).map(|i| fail(i, "203.0.113.5")).collect();
    events.extend((3..5).map(|i| fail(i, "::ffff:203.0.113.5")));
    let findings = all(&mut d, &events);
    assert_eq!(findings[0].subject, Subject::Addr(ip("203.0.113.5")));
}

#[test]
fn context_pending_and_sourceless_events_are_ignored() {
    let mut d = detector(quiet());
    let mut events: Vec<_> = (0..10)
        .map(|i| event(i, Some(Source::Addr(ip("203.0.113.5"))), None, Kind::ReceivedDisconnect))
        .collect();
    events.extend(
        (0..10).map(|i| {
            event(i, Some(Source::Addr(ip("203.0.113.5"))), None, Kind::PamUnixAuthFailure)
        }),
    );
    events.extend((0..10).map(|i| event(i, None, Some("root"), Kind::TooManyAuthFailures)));
    assert!(all(&mut d, &events).is_empty());
    assert_eq!(d.tracked_subjects(), 0);
    assert_eq!(d.stats().ignored, 30);
}

#[test]
fn hostile_user_names_cost_bounded_memory_and_samples() {
    let config = DetectConfig {
        maxretry: 255,
        enumeration: EnumerationConfig { distinct_users: 3, findtime: Window::from_hours(1) },
        ..quiet()
    };
    let mut d = detector(config);
    let huge = "é".repeat(1 << 19);
    let events = [
        fail_as(0, "203.0.113.5", &format!("a{huge}")),
        fail_as(1, "203.0.113.5", &format!("b{huge}")),
        fail_as(2, "203.0.113.5", "root\n203.0.113.99"),
    ];
    let findings = all(&mut d, &events);
    assert_eq!(rules(&findings), [Rule::UserEnumeration]);
    for sample in &findings[0].sample_users {
        assert!(sample.len() <= MAX_SAMPLE_USER_BYTES, "{}", sample.len());
    }
    // Account keys are cut too: one account per distinct 128-byte prefix.
    assert_eq!(d.tracked_subjects(), 1 + 3);
}

#[test]
fn expire_forgets_what_left_every_window() {
    let mut d = detector(DetectConfig::default());
    all(&mut d, &[fail_as(0, "203.0.113.5", "root"), fail(0, "2001:db8::1")]);
    assert_eq!(d.tracked_subjects(), 4, "address, address, prefix, account");
    d.expire(at(86_399));
    assert_eq!(d.tracked_subjects(), 4, "still inside the 24h window");
    d.expire(at(86_400));
    assert_eq!(d.tracked_subjects(), 0);
    assert_eq!(d.stats().expired, 4);
}

#[test]
fn a_flood_of_new_addresses_does_not_evict_a_hot_attacker() {
    let config = DetectConfig { max_tracked_sources: 1000, ..quiet() };
    let mut d = detector(config);
    let hot: Vec<_> = (0..5).map(|i| fail(i, "203.0.113.5")).collect();
    assert_eq!(rules(&all(&mut d, &hot)), [Rule::BruteForce]);
    for i in 0..20_000u32 {
        let addr = IpAddr::from((0x0a00_0000 + i).to_be_bytes()).to_string();
        let findings = all(&mut d, &[fail(10 + i64::from(i % 50), &addr)]);
        assert!(findings.is_empty());
    }
    assert!(d.tracked_subjects() <= 1000);
    let stats = d.stats();
    assert!(stats.evictions >= 19_000, "{stats:?}");
    assert_eq!(stats.hot_evictions, 0, "{stats:?}");
    // The attacker is still tracked: its episode goes on, and its success
    // is Critical.
    let findings = all(&mut d, &[fail(70, "203.0.113.5"), accept(80, "203.0.113.5", "root")]);
    assert_eq!(rules(&findings), [Rule::SuccessAfterFailures]);
    assert_eq!(findings[0].failures, 6);
}

#[test]
fn a_flood_of_hot_subjects_is_evicted_but_counted() {
    let config = DetectConfig { maxretry: 1, max_tracked_sources: 1000, ..quiet() };
    let mut d = detector(config);
    for i in 0..2000u32 {
        let addr = IpAddr::from((0x0a00_0000 + i).to_be_bytes()).to_string();
        all(&mut d, &[fail(1, &addr)]);
    }
    assert_eq!(d.tracked_subjects(), 1000);
    assert_eq!(d.stats().hot_evictions, 1000);
}

#[test]
fn evicted_subjects_give_their_full_rings_to_new_ones() {
    // Every address fails six times in a row: it crosses the inline ring
    // (four entries), is reported at its fifth failure, and is later
    // evicted by the flood; its full ring goes to a newer address.
    let config = DetectConfig { max_tracked_sources: 1000, ..quiet() };
    let mut d = detector(config);
    for i in 0..4000u32 {
        let addr = IpAddr::from((0x0a00_0000 + i).to_be_bytes()).to_string();
        let secs = i64::from(i) * 10_000;
        let per_event = run(&mut d, &(0..6).map(|t| fail(secs + t, &addr)).collect::<Vec<_>>());
        let fired: Vec<_> = per_event.iter().map(|f| rules(f)).collect();
        assert_eq!(fired, [vec![], vec![], vec![], vec![], vec![Rule::BruteForce], vec![]], "{i}");
        assert_eq!(per_event[4][0].failures, 5);
    }
    assert!(d.tracked_subjects() <= 1000);
    assert!(d.stats().evictions + d.stats().expired >= 3000, "{:?}", d.stats());
    d.table.check_slabs();
    assert!(d.table.full_rings() <= 1001, "{} full rings", d.table.full_rings());
}

#[test]
fn findings_serialize_with_stable_names_and_round_trip() {
    let allowlist = Allowlist::new(vec![net("192.0.2.0/24")], vec![]);
    let mut d = Detector::new(quiet(), allowlist).unwrap();
    let events: Vec<_> = (0..5).map(|i| fail_as(i, "192.0.2.9", "root")).collect();
    let finding = all(&mut d, &events).remove(0);
    let json = serde_json::to_value(&finding).unwrap();
    assert_eq!(json["rule"], "brute_force");
    assert_eq!(json["severity"], "high");
    assert_eq!(json["subject"], serde_json::json!({"type": "addr", "value": "192.0.2.9"}));
    assert_eq!(json["window"], "10m");
    assert_eq!(json["at"], "2026-01-15T10:00:04Z");
    assert_eq!(
        json["allowlisted"],
        serde_json::json!({"reason": "configured", "network": "192.0.2.0/24"})
    );
    let back: Finding = serde_json::from_value(json).unwrap();
    assert_eq!(back, finding);
}

#[test]
fn bad_configs_are_refused_by_new() {
    let config = DetectConfig { maxretry: 0, ..DetectConfig::default() };
    let err = Detector::new(config, Allowlist::default()).err().unwrap();
    assert_eq!(err.field, "maxretry");
}

/// The naive model: after failure `i` (times sorted), the condition holds
/// iff at least `n` of the failures so far are in `(t_i - f, t_i]`. A
/// finding is emitted iff it holds and it did not hold without a break
/// since the previous failure: it held after the previous failure, and
/// until just before `t_i`, where the failures before `i` still in the
/// window are those at or after `t_i - f`.
fn model(times: &[i64], n: usize, f: i64) -> Vec<bool> {
    let holds_after = |i: usize| times[..=i].iter().filter(|&&s| s > times[i] - f).count() >= n;
    (0..times.len())
        .map(|i| {
            let unbroken = i > 0
                && holds_after(i - 1)
                && times[..i].iter().filter(|&&s| s >= times[i] - f).count() >= n;
            holds_after(i) && !unbroken
        })
        .collect()
}

/// The same model for a distinct count: after failure `i`, the condition
/// holds iff the failures in `(t_i - f, t_i]` carry at least `d` distinct
/// users.
fn distinct_model(events: &[(i64, usize)], d: usize, f: i64) -> Vec<bool> {
    let distinct = |range: &[(i64, usize)], keep: &dyn Fn(i64) -> bool| {
        let mut users: Vec<usize> =
            range.iter().filter(|(s, _)| keep(*s)).map(|&(_, u)| u).collect();
        users.sort_unstable();
        users.dedup();
        users.len()
    };
    let holds_after = |i: usize| distinct(&events[..=i], &|s| s > events[i].0 - f) >= d;
    (0..events.len())
        .map(|i| {
            let t = events[i].0;
            let unbroken =
                i > 0 && holds_after(i - 1) && distinct(&events[..i], &|s| s >= t - f) >= d;
            holds_after(i) && !unbroken
        })
        .collect()
}

/// Feeds failures of one address with user `user{u}` after gaps of `g`
/// seconds (`steps`) to a detector whose enumeration rule needs `d`
/// distinct users in `f` seconds; returns when it emitted the finding,
/// and when [`distinct_model`] says it should have.
fn enumeration_against_the_model(d: u32, f: u32, steps: &[(i64, usize)]) -> (Vec<bool>, Vec<bool>) {
    let config = DetectConfig {
        maxretry: 255,
        enumeration: EnumerationConfig { distinct_users: d, findtime: Window::from_secs(f) },
        ..quiet()
    };
    let mut detector = detector(config);
    let events: Vec<(i64, usize)> = steps
        .iter()
        .scan(0, |t, &(g, u)| {
            *t += g;
            Some((*t, u))
        })
        .collect();
    let emitted = events
        .iter()
        .map(|&(t, u)| {
            let mut out = Vec::new();
            detector.observe(&fail_as(t, "203.0.113.5", &format!("user{u}")), &mut out);
            out.iter().any(|f| f.rule == Rule::UserEnumeration)
        })
        .collect();
    (emitted, distinct_model(&events, d as usize, i64::from(f)))
}

proptest! {
    #[test]
    fn enumeration_matches_a_naive_distinct_count(
        d in 1u32..=4,
        f in 1u32..=100,
        steps in proptest::collection::vec((0i64..=40, 0usize..5), 1..80),
    ) {
        let (emitted, expected) = enumeration_against_the_model(d, f, &steps);
        prop_assert_eq!(emitted, expected);
    }

    #[test]
    fn enumeration_with_a_few_repeated_users_matches_the_naive_count(
        // Most failures repeat a name: the detector answers them from its
        // bound on distinct names, and must still see the threshold reached.
        d in 2u32..=10,
        f in 1u32..=300,
        steps in proptest::collection::vec(
            (0i64..=30, prop_oneof![4 => 0usize..2, 1 => 0usize..14]),
            1..150,
        ),
    ) {
        let (emitted, expected) = enumeration_against_the_model(d, f, &steps);
        prop_assert_eq!(emitted, expected);
    }

    #[test]
    fn the_window_matches_a_naive_count(
        n in 1u32..=8,
        f in 1u32..=100,
        gaps in proptest::collection::vec(prop_oneof![Just(0i64), 0i64..=20, 0i64..=150], 1..80),
    ) {
        let config = DetectConfig { maxretry: n, findtime: Window::from_secs(f), ..quiet() };
        let mut d = detector(config);
        let times: Vec<i64> = gaps.iter().scan(0, |t, g| { *t += g; Some(*t) }).collect();
        let emitted: Vec<bool> = times
            .iter()
            .map(|&t| {
                let mut out = Vec::new();
                d.observe(&fail(t, "203.0.113.5"), &mut out);
                out.iter().any(|f| f.rule == Rule::BruteForce)
            })
            .collect();
        prop_assert_eq!(emitted, model(&times, n as usize, i64::from(f)));
    }

    #[test]
    fn out_of_order_lines_are_counted_at_the_running_maximum(
        n in 1u32..=6,
        times in proptest::collection::vec(0i64..=400, 1..60),
    ) {
        let config = DetectConfig { maxretry: n, findtime: Window::from_secs(60), ..quiet() };
        let mut d = detector(config);
        let running_max: Vec<i64> =
            times.iter().scan(i64::MIN, |m, &t| { *m = (*m).max(t); Some(*m) }).collect();
        let emitted: Vec<bool> = times
            .iter()
            .map(|&t| {
                let mut out = Vec::new();
                d.observe(&fail(t, "203.0.113.5"), &mut out);
                !out.is_empty()
            })
            .collect();
        prop_assert_eq!(emitted, model(&running_max, n as usize, 60));
    }
}
