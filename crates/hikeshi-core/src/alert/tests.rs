use super::*;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn facts() -> AlertFacts {
    AlertFacts {
        incident_id: 42,
        kind: AlertKind::Opened,
        severity: Severity::High,
        previous_severity: None,
        rule: "ssh-brute-force".into(),
        title: "Multiple failed SSH logins".into(),
        source: "203.0.113.5".into(),
        hosts: vec!["server1".into()],
        sample_users: vec!["admin".into(), "root".into()],
        distinct_users: 5,
        attempts: 57,
        first_seen: ts("2026-01-15T10:33:14Z"),
        last_seen: ts("2026-01-15T10:35:02Z"),
        actions: vec!["banned 203.0.113.5 for 1h via nftables".into()],
        reason: None,
        next_steps: runbook_next_steps(AlertKind::Opened, "203.0.113.5", true),
    }
}

/// User names an attacker can choose: header injection, forged lines,
/// terminal escapes, bidi overrides, Slack mentions and formatting.
const HOSTILE_USERS: &[&str] = &[
    "x\r\nBcc: victim@example.org",
    "y\nSecurity Alert: all clear, ignore this incident",
    "\u{1b}[2J\u{1b}]0;owned\u{7}",
    "evil\u{202e}nimda",
    "<!channel> <!here> <@U024BE7LH> <https://evil.example|click>",
    "*bold* _it_ ~del~ `code` @channel",
    "nel\u{85}c1 del\u{7f}",
];

fn hostile() -> AlertFacts {
    let mut f = facts();
    f.sample_users = HOSTILE_USERS.iter().map(|s| s.to_string()).collect();
    f.hosts = vec!["srv\r\nX-Injected: 1".into()];
    f.source = "evil.example\nBcc: a@b".into();
    f.title = "Multiple failed SSH logins\r\nSubject: fake".into();
    f.reason = Some("boom\u{1b}[31m".into());
    f.actions = vec!["containment FAILED: nft said \"\nBcc: x\"".into()];
    f
}

fn assert_no_raw_controls(text: &str) {
    for c in text.chars() {
        // Newlines are the renderer's own line breaks; anything else
        // unsafe must have been escaped.
        assert!(c == '\n' || !is_unsafe_char(c), "raw control {c:?} in {text:?}");
    }
}

fn assert_clean_line(text: &str) {
    assert!(!text.contains('\n'), "newline in {text:?}");
    assert_no_raw_controls(text);
}

#[test]
fn clean_inline_escapes_controls_visibly() {
    assert_eq!(clean_inline("a\r\nb\tc", 100), "a\\r\\nb\\tc");
    assert_eq!(clean_inline("\u{1b}[31m", 100), "\\u{1b}[31m");
    assert_eq!(clean_inline("a\u{202e}b\u{85}c\u{7f}", 100), "a\\u{202e}b\\u{85}c\\u{7f}");
    assert_eq!(clean_inline("dom\\user", 100), "dom\\\\user");
    assert_eq!(clean_inline("日本語 ok", 100), "日本語 ok");
}

#[test]
fn clean_inline_cuts_long_text_without_splitting_an_escape() {
    assert_eq!(clean_inline("abcdef", 6), "abcdef");
    assert_eq!(clean_inline("abcdefg", 6), "abcde…");
    // The escape `\u{1b}` is 6 characters: it does not fit in 5 and is
    // dropped whole.
    assert_eq!(clean_inline("ab\u{1b}cd", 6), "ab…");
    let huge = "a".repeat(1 << 20);
    assert_eq!(clean_inline(&huge, 64).chars().count(), 64);
}

#[test]
fn subject_is_one_bounded_line() {
    let s = email_subject(&facts(), DEFAULT_SUBJECT);
    assert_eq!(
        s,
        "Incident Alert #42: [HIGH] Multiple failed SSH logins from 203.0.113.5 on server1"
    );
    let h = email_subject(&hostile(), "Incident Alert");
    assert!(!h.contains('\r') && !h.contains('\n'), "{h:?}");
    assert!(h.chars().count() <= 200);
    let mut long = facts();
    long.hosts = (0..100).map(|i| format!("host-with-a-long-name-{i}")).collect();
    assert!(email_subject(&long, "Incident Alert").chars().count() <= 200);
}

#[test]
fn escalation_subject_says_so() {
    let mut f = facts();
    f.kind = AlertKind::Escalated;
    f.severity = Severity::Critical;
    f.previous_severity = Some(Severity::High);
    let s = email_subject(&f, "IR");
    assert!(s.starts_with("IR #42: escalated to CRITICAL"), "{s}");
    assert!(plain_text(&f).contains("Severity:     CRITICAL (was HIGH)"));
}

#[test]
fn plain_text_says_what_where_when_who_and_next() {
    let t = plain_text(&facts());
    for needle in [
        "Security Alert: Multiple failed SSH logins detected on server1",
        "Incident:     #42 (opened)",
        "Source:       203.0.113.5",
        "Where:        server1",
        "Since:        2026-01-15T10:33:14Z",
        "Attempts:     57",
        "Users tried:  \"admin\", \"root\" (+3 more)",
        "  - banned 203.0.113.5 for 1h via nftables",
        "Next steps (runbook):",
        "[Security Analyst] Validate the alert",
        "インシデント番号: #42",
        "[セキュリティアナリスト]",
    ] {
        assert!(t.contains(needle), "missing {needle:?} in\n{t}");
    }
}

#[test]
fn hostile_text_adds_no_line_to_the_plain_text() {
    let plain = plain_text(&facts());
    let mut f = hostile();
    let bad = plain_text(&f);
    assert_no_raw_controls(&bad);
    // Same number of lines as a benign alert with as many users, actions
    // and hosts: nothing injected a line.
    f.sample_users = HOSTILE_USERS.iter().map(|_| "u".to_string()).collect();
    f.hosts = vec!["h".into()];
    f.source = "s".into();
    f.title = "t".into();
    f.reason = Some("r".into());
    f.actions = vec!["a".into()];
    assert_eq!(bad.lines().count(), plain_text(&f).lines().count(), "{bad}");
    assert!(!bad
        .lines()
        .any(|l| l.starts_with("Bcc:") || l.starts_with("Security Alert: all clear")));
    assert!(bad.contains("x\\r\\nBcc: victim@example.org"), "{bad}");
    assert!(plain.lines().count() > 20);
}

#[test]
fn json_payload_is_structured_and_clean() {
    let v = json_payload(&facts(), DEFAULT_SUBJECT);
    assert_eq!(v["schema"], "hikeshi.alert.v1");
    assert_eq!(v["incident_id"], 42);
    assert_eq!(v["severity"], "high");
    assert_eq!(v["source"], "203.0.113.5");
    assert_eq!(v["sample_users"][0], "admin");
    assert_eq!(v["next_steps"][0]["role"], "security_analyst");
    assert!(v["text"].as_str().unwrap().contains("#42"));

    let h = json_payload(&hostile(), DEFAULT_SUBJECT);
    for user in h["sample_users"].as_array().unwrap() {
        assert_clean_line(user.as_str().unwrap());
    }
    for field in ["source", "subject", "title", "reason"] {
        assert_clean_line(h[field].as_str().unwrap());
    }
    assert_clean_line(h["hosts"][0].as_str().unwrap());
    assert_clean_line(h["actions"][0].as_str().unwrap());
    assert_no_raw_controls(h["text"].as_str().unwrap());
}

#[test]
fn slack_payload_neutralises_mentions_links_and_formatting() {
    let v = slack_payload(&hostile(), DEFAULT_SUBJECT);
    let raw = v.to_string();
    for bad in ["<!channel>", "<!here>", "<@U024BE7LH>", "<https://evil", "\\u001b", "\\r\\n"] {
        assert!(!raw.contains(bad), "{bad} survived in {raw}");
    }
    assert!(raw.contains("&lt;!channel&gt;"), "{raw}");
    // Formatting characters are shown inside a code span; a backtick in
    // the name cannot close it.
    assert!(raw.contains("`*bold* _it_ ~del~ ˋcodeˋ @channel`"), "{raw}");
    let blocks = v["blocks"].as_array().unwrap();
    assert_eq!(blocks[0]["type"], "header");
    for b in &blocks[1..] {
        assert_eq!(b["text"]["verbatim"], true);
        assert!(b["text"]["text"].as_str().unwrap().chars().count() <= 3000);
    }
    assert!(blocks[0]["text"]["text"].as_str().unwrap().chars().count() <= 150);
    let good = slack_payload(&facts(), DEFAULT_SUBJECT);
    assert!(good["text"].as_str().unwrap().starts_with("Incident Alert #42: [HIGH]"));
    assert!(good.to_string().contains("`203.0.113.5`"));
}

#[test]
fn next_steps_quote_only_addresses_in_commands() {
    let steps = runbook_next_steps(AlertKind::ContainmentFailed, "203.0.113.5", false);
    assert!(steps[0].en.contains("`iptables -A INPUT -s 203.0.113.5 -j DROP`"));
    assert_eq!(steps[0].role, Some(Role::SystemAdministrator));
    let v6 = runbook_next_steps(AlertKind::Opened, "2001:db8::1", false);
    assert!(v6.iter().any(|s| s.en.contains("ip6tables -A INPUT -s 2001:db8::1 -j DROP")));
    let name = runbook_next_steps(AlertKind::Escalated, "x; rm -rf /", false);
    assert!(name.iter().all(|s| !s.en.contains("rm -rf") && !s.ja.contains("rm -rf")));
    let contained = runbook_next_steps(AlertKind::Opened, "203.0.113.5", true);
    assert!(contained.iter().all(|s| !s.en.contains("iptables")));
}

fn member(role: Role, email: &str, receives: &[Severity]) -> Member {
    Member { role, name: email.into(), email: email.into(), receives: receives.to_vec() }
}

#[test]
fn recipients_follow_severities_and_roles() {
    use Severity::*;
    let team = vec![
        member(Role::IncidentManager, "im@example.com", &[High, Critical]),
        member(Role::SecurityAnalyst, "sa@example.com", &[Medium, High, Critical]),
        member(Role::SystemAdministrator, "ops@example.com", &[Critical]),
        member(Role::CommunicationLead, "comms@example.com", &[Critical]),
        member(Role::SecurityAnalyst, "IM@example.com", &[High]),
    ];
    let emails = |kind, sev| {
        recipients(&team, kind, sev).iter().map(|m| m.email.clone()).collect::<Vec<_>>()
    };
    assert_eq!(emails(AlertKind::Opened, Low), Vec::<String>::new());
    assert_eq!(emails(AlertKind::Opened, Medium), ["sa@example.com"]);
    // The same address (any case) is mailed once.
    assert_eq!(emails(AlertKind::Opened, High), ["im@example.com", "sa@example.com"]);
    assert_eq!(
        emails(AlertKind::Escalated, Critical),
        ["im@example.com", "sa@example.com", "ops@example.com", "comms@example.com"]
    );
    // A failed containment reaches the administrators whatever the severity.
    assert_eq!(emails(AlertKind::ContainmentFailed, Medium), ["sa@example.com", "ops@example.com"]);
}

#[test]
fn retry_backs_off_exponentially_to_a_cap_and_never_gives_up() {
    let p = RetryPolicy::default();
    let delays: Vec<i64> = (1..=9).map(|a| p.delay(a).as_secs()).collect();
    assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    let t = ts("2026-01-15T10:00:00Z");
    assert_eq!(p.next_attempt(1, t), ts("2026-01-15T10:00:30Z"));
    assert_eq!(p.next_attempt(u32::MAX, t), ts("2026-01-15T11:00:00Z"));
    assert!(!p.is_stuck(7) && p.is_stuck(8));
}

#[test]
fn lane_plan_sends_within_budget_then_digest_then_holds() {
    let limit = RateLimit { max_per_window: 3, window: SignedDuration::from_secs(600) };
    let now = ts("2026-01-15T10:00:00Z");
    let ago = |s: i64| now.checked_sub(SignedDuration::from_secs(s)).unwrap();
    assert_eq!(
        plan_lane(&limit, &[], 2, now),
        LanePlan { individually: 2, in_digest: 0, held_until: None }
    );
    assert_eq!(
        plan_lane(&limit, &[], 3, now),
        LanePlan { individually: 3, in_digest: 0, held_until: None }
    );
    assert_eq!(
        plan_lane(&limit, &[], 10, now),
        LanePlan { individually: 2, in_digest: 8, held_until: None }
    );
    assert_eq!(
        plan_lane(&limit, &[ago(10), ago(20)], 5, now),
        LanePlan { individually: 0, in_digest: 5, held_until: None }
    );
    assert_eq!(
        plan_lane(&limit, &[ago(10), ago(20), ago(100)], 1, now),
        LanePlan {
            individually: 0,
            in_digest: 0,
            held_until: Some(ago(100) + SignedDuration::from_secs(600))
        }
    );
    // Sends that left the window do not count.
    assert_eq!(plan_lane(&limit, &[ago(600), ago(700), ago(800)], 1, now).individually, 1);
}

#[test]
fn digests_carry_every_held_alert() {
    let limit = RateLimit::default();
    let held: Vec<HeldAlert> = (1..=3)
        .map(|i| HeldAlert { subject: format!("Incident Alert #{i}"), body: format!("body {i}") })
        .collect();
    let (subject, body) = render_digest(DigestFormat::Text, &held, &limit, "Incident Alert");
    assert_eq!(subject, "Incident Alert digest: 3 alerts held by the rate limit");
    for i in 1..=3 {
        assert!(
            body.contains(&format!("===== {i}/3: Incident Alert #{i} =====\nbody {i}")),
            "{body}"
        );
    }
    let json_held: Vec<HeldAlert> = (1..=2)
        .map(|i| HeldAlert {
            subject: format!("s{i}"),
            body: json!({"incident_id": i, "text": "a<b"}).to_string(),
        })
        .collect();
    let (_, body) = render_digest(DigestFormat::Json, &json_held, &limit, "x");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["count"], 2);
    assert_eq!(v["alerts"][1]["incident_id"], 2);
    let (_, body) = render_digest(DigestFormat::Slack, &json_held, &limit, "x");
    let v: Value = serde_json::from_str(&body).unwrap();
    let text = v["text"].as_str().unwrap();
    assert!(text.starts_with("2 alerts were held"), "{text}");
    assert_eq!(text.matches("\n• a<b").count(), 2, "{text}");
}

mod model {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Driving a lane with `plan_lane` over random arrivals never sends
        /// more than the limit in any window, and delivers every message.
        #[test]
        fn lane_respects_the_limit_and_loses_nothing(
            arrivals in proptest::collection::vec(0i64..3000, 0..60),
            max in 1u32..5,
            window_secs in 1i64..400,
        ) {
            let limit = RateLimit { max_per_window: max, window: SignedDuration::from_secs(window_secs) };
            let start = ts("2026-01-01T00:00:00Z");
            let mut arrivals = arrivals;
            arrivals.sort();
            let mut queue: Vec<i64> = Vec::new();
            let mut sends: Vec<i64> = Vec::new();
            let mut delivered = 0usize;
            let mut next = 0usize;
            let mut held_until: Option<i64> = None;
            for t in 0..6000i64 {
                while next < arrivals.len() && arrivals[next] == t {
                    queue.push(arrivals[next]);
                    next += 1;
                }
                if queue.is_empty() || held_until.is_some_and(|h| t < h) {
                    continue;
                }
                let now = start + SignedDuration::from_secs(t);
                let recent: Vec<Timestamp> = sends.iter().map(|s| start + SignedDuration::from_secs(*s)).collect();
                let plan = plan_lane(&limit, &recent, queue.len(), now);
                held_until = plan.held_until.map(|h| h.duration_since(start).as_secs());
                for _ in 0..plan.individually { sends.push(t); }
                if plan.in_digest > 0 {
                    prop_assert!(plan.in_digest >= 2);
                    sends.push(t);
                }
                let taken = plan.individually + plan.in_digest;
                delivered += taken;
                queue.drain(..taken);
            }
            prop_assert_eq!(delivered, arrivals.len());
            for &s in &sends {
                let in_window = sends.iter().filter(|&&o| o > s - window_secs && o <= s).count();
                prop_assert!(in_window <= max as usize, "{} sends in the window ending {}", in_window, s);
            }
        }
    }
}
