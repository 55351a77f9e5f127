use jiff::Timestamp;

use super::*;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn entry(at: &str, actor: Actor, kind: TimelineKind, detail: &str) -> TimelineEntry {
    TimelineEntry { at: t(at), actor, kind, detail: detail.into() }
}

fn login(at: &str, source: &str, success: bool) -> LoginAttempt {
    LoginAttempt { at: t(at), source: source.into(), user: Some("alice".into()), success }
}

fn input() -> ReportInput {
    ReportInput {
        generated_at: t("2026-11-02T00:00:00Z"),
        incident: IncidentFacts {
            id: 3,
            state: State::Detected,
            severity: Severity::High,
            rule: "ssh-bruteforce".into(),
            rules: vec!["ssh-bruteforce".into()],
            subject_kind: SubjectKind::Addr,
            subject: "203.0.113.5".into(),
            first_seen: t("2026-11-01T10:30:00Z"),
            last_seen: t("2026-11-01T10:40:00Z"),
            opened_at: t("2026-11-01T10:33:14Z"),
            attempts: 12,
            hosts: vec!["server1".into()],
            hosts_omitted: 0,
            users: vec!["admin".into()],
            users_omitted: 0,
            evidence_lines: 0,
            evidence_digest: "00".repeat(32),
        },
        timeline: vec![],
        evidence: vec![],
        bans: vec![],
        alerts: vec![],
        logins: vec![],
        attack_sources: vec!["203.0.113.5".into()],
        hardening: vec![],
    }
}

#[test]
fn nothing_recorded_is_reported_missing_never_invented() {
    let r = build(&input());
    assert_eq!(
        r.missing,
        [
            "actions_taken",
            "root_cause",
            "preventive_measures",
            "people",
            "time_to_contain",
            "time_to_recover",
            "time_to_close"
        ]
    );
    assert_eq!(r.metrics[0].seconds, Some(194), "first line 10:30:00 → opened 10:33:14");
    let md = markdown(&r, Lang::Ja);
    assert!(md.contains("| 根本原因 | **未記録** |"), "{md}");
    assert!(
        md.contains("| 封じ込めまでの時間 | 2026-11-01 10:33:14 UTC | **未記録** | **未記録** |")
    );
    let js = json(&r, Lang::En);
    assert!(js.contains("\"root_cause\": null"));
}

#[test]
fn metrics_come_from_bans_and_state_changes() {
    let mut i = input();
    i.bans.push(BanFact {
        address: "203.0.113.5".into(),
        backend: "nft".into(),
        reason: "ssh-bruteforce".into(),
        created_at: t("2026-11-01T10:34:00Z"),
        expires_at: None,
        removed_at: None,
        removed_reason: None,
    });
    let alice = Actor::Person("alice".into());
    i.timeline = vec![
        entry(
            "2026-11-01T10:50:00Z",
            alice.clone(),
            TimelineKind::StateChanged,
            "contained → recovered (Containment, Eradication, and Recovery)",
        ),
        entry(
            "2026-11-01T12:00:00Z",
            alice.clone(),
            TimelineKind::StateChanged,
            "recovered → closed (Post-Incident Activity)",
        ),
    ];
    i.timeline.push(entry(
        "2026-11-01T10:55:00Z",
        Actor::Automatic,
        TimelineKind::RecoveryCheck,
        "verify: 3 checks passed",
    ));
    let r = build(&i);
    let secs: Vec<Option<i64>> = r.metrics.iter().map(|m| m.seconds).collect();
    assert_eq!(secs, [Some(194), Some(46), Some(1006), Some(5206)]);
    let actions = markdown(&r, Lang::En);
    assert!(actions.contains("recovery check at 2026-11-01 10:55:00 UTC: verify: 3 checks passed"));
    assert!(r.timeline.iter().any(|t| t.kind == "recovery_check" && t.controls == ["5.26"]));
}

#[test]
fn state_and_assignment_details_are_read() {
    assert_eq!(
        state_changed_to("detected → analysing (Detection and Analysis)"),
        Some(State::Analysing)
    );
    assert_eq!(state_changed_to("closed"), Some(State::Closed));
    assert_eq!(state_changed_to("nonsense"), None);
    assert_eq!(
        parse_assignment("Incident Manager: alice"),
        ("alice".into(), Some("Incident Manager".into()))
    );
    assert_eq!(
        parse_assignment("alice as Incident Manager"),
        ("alice".into(), Some("Incident Manager".into()))
    );
    assert_eq!(
        parse_assignment("bob (Security Analyst)"),
        ("bob".into(), Some("Security Analyst".into()))
    );
    assert_eq!(parse_assignment("carol"), ("carol".into(), None));
}

#[test]
fn thresholds_come_from_legitimate_users_versus_the_attack() {
    let mut i = input();
    // A legitimate user fails twice then succeeds; the attacker fails 6
    // times within 50 seconds.
    i.logins = vec![
        login("2026-11-01T09:00:00Z", "198.51.100.7", false),
        login("2026-11-01T09:00:20Z", "198.51.100.7", false),
        login("2026-11-01T09:00:40Z", "198.51.100.7", true),
    ];
    for s in 0..6 {
        i.logins.push(login(&format!("2026-11-01T10:30:{:02}Z", s * 10), "203.0.113.5", false));
    }
    let r = build(&i);
    let legit = r.lessons.legitimate.clone().unwrap();
    assert_eq!(
        (legit.sources, legit.max_failures_before_success, legit.longest_failure_run_seconds),
        (1, 2, 40)
    );
    let advice = r.lessons.advice.clone().unwrap();
    assert_eq!(
        (advice.maxretry, advice.separates, advice.attack_window_seconds),
        (4, true, Some(30))
    );
    assert_eq!(advice.findtime_seconds, 600);
    assert!(r.lessons.notes.iter().any(|n| n.en.contains("maxretry = 4")));
}

#[test]
fn no_legitimate_data_is_said_and_a_distributed_attack_is_recognised() {
    let mut i = input();
    i.logins = vec![login("2026-11-01T10:30:00Z", "203.0.113.5", false)];
    let r = build(&i);
    assert!(r.lessons.legitimate.is_none());
    assert!(r.lessons.advice.is_none());
    assert!(r.lessons.notes[0].en.contains("no successful login outside the attack"));

    i.logins.push(login("2026-11-01T09:00:00Z", "198.51.100.7", false));
    i.logins.push(login("2026-11-01T09:00:05Z", "198.51.100.7", true));
    let r = build(&i);
    let advice = r.lessons.advice.clone().unwrap();
    assert!(!advice.separates, "1 attack failure cannot reach maxretry {}", advice.maxretry);
}

#[test]
fn a_successful_login_from_the_attack_is_flagged() {
    let mut i = input();
    i.logins = vec![login("2026-11-01T10:31:00Z", "203.0.113.5", true)];
    let r = build(&i);
    assert_eq!(r.lessons.attack_successes.len(), 1);
    assert!(r.lessons.notes[0].en.contains("compromised"));
}

#[test]
fn hostile_text_is_escaped_in_every_format() {
    let mut i = input();
    i.incident.users = vec!["<script>alert(1)</script>|`x`\u{1b}[2J\u{202e}".into()];
    i.timeline = vec![entry(
        "2026-11-01T10:40:00Z",
        Actor::Person("<img src=x onerror=alert(1)>".into()),
        TimelineKind::Note,
        "</td><script>x</script>",
    )];
    let r = build(&i);
    let h = html(&r, Lang::Both);
    assert!(!h.contains("<script>"), "{h}");
    assert!(!h.contains("<img"), "{h}");
    assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(h.contains("\\u{1b}") && h.contains("\\u{202e}"));
    assert!(!h.contains('\u{1b}') && !h.contains('\u{202e}'));
    let md = markdown(&r, Lang::En);
    assert!(!md.contains("<script>") && !md.contains('\u{1b}'));
    assert!(md.contains("&lt;script&gt;alert(1)&lt;/script&gt;\\|\\`x\\`\\u{1b}"), "{md}");
    let js = json(&r, Lang::En);
    assert!(!js.contains('\u{1b}') && !js.contains('\u{202e}'));
    assert!(js.contains("\\u202e"));
}

#[test]
fn html_is_self_contained_and_prints() {
    let h = html(&build(&input()), Lang::En);
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(h.contains("@media print"));
    for external in ["<script", "<link", "src=", "href=", "@import", "url("] {
        assert!(!h.contains(external), "external resource {external}");
    }
}

#[test]
fn durations_are_readable() {
    assert_eq!(fmt_duration(45), "45s");
    assert_eq!(fmt_duration(194), "3m 14s");
    assert_eq!(fmt_duration(5206), "1h 26m 46s");
    assert_eq!(fmt_duration(2 * 86_400 + 3600), "2d 01h 00m");
    assert_eq!(fmt_duration(-5), "-5s");
}
