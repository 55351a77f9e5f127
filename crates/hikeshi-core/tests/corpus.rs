//! The annotated corpus `tests/data/sshd-corpus.txt` (workspace root):
//! every message body in every envelope and process name, in every mode,
//! and whole lines with their expected verdict. It also checks that the
//! corpus covers every `Kind`, each with a hostile sample where the line
//! carries attacker text.

use std::collections::BTreeSet;
use std::net::IpAddr;

use hikeshi_core::parse::{LineParser, LineVerdict, Origin, ParseOptions, Parsed, SkipReason};
use hikeshi_core::{Kind, Mode, Outcome, Source};
use jiff::tz::TimeZone;
use jiff::Timestamp;

const CORPUS: &str = include_str!("../../../tests/data/sshd-corpus.txt");

#[derive(Debug, Clone)]
struct Expect {
    kind: Kind,
    source: Option<Source>,
    port: Option<u16>,
    user: Option<String>,
    outcomes: [Outcome; 4],
    dropbear: bool,
    hostile: bool,
}

#[derive(Debug)]
enum Block {
    Body(Expect, Vec<String>),
    Lines(String, Vec<String>),
}

fn outcome(s: &str) -> Outcome {
    match s {
        "failure" => Outcome::Failure,
        "success" => Outcome::Success,
        "context" => Outcome::Context,
        "pending" => Outcome::Pending,
        _ => panic!("bad outcome {s:?}"),
    }
}

fn source(s: &str) -> Option<Source> {
    match s {
        "none" => None,
        s => Some(match s.parse::<IpAddr>() {
            Ok(a) => Source::Addr(a),
            Err(_) => Source::Hostname(s.to_string()),
        }),
    }
}

fn parse_expect(spec: &str) -> Expect {
    let (spec, user) = match spec.find("user=") {
        Some(at) => (&spec[..at], Some(spec[at + 5..].to_string())),
        None => (spec, None),
    };
    let mut kind = None;
    let mut e = Expect {
        kind: Kind::FailedAuth,
        source: None,
        port: None,
        user,
        outcomes: [Outcome::Pending; 4],
        dropbear: false,
        hostile: false,
    };
    let mut seen_outcomes = [false; 4];
    for token in spec.split_whitespace() {
        let (key, value) = token.split_once('=').unwrap_or((token, ""));
        match key {
            "kind" => kind = Some(Kind::from_name(value).unwrap_or_else(|| panic!("kind {value}"))),
            "source" => e.source = source(value),
            "port" => e.port = Some(value.parse().unwrap()),
            "outcome" => {
                e.outcomes = [outcome(value); 4];
                seen_outcomes = [true; 4];
            }
            "process" => {
                assert_eq!(value, "dropbear");
                e.dropbear = true;
            }
            "hostile" => e.hostile = true,
            mode => {
                let m: Mode = mode.parse().unwrap_or_else(|err| panic!("{token}: {err}"));
                let i = Mode::ALL.iter().position(|x| *x == m).unwrap();
                e.outcomes[i] = outcome(value);
                seen_outcomes[i] = true;
            }
        }
    }
    assert!(seen_outcomes.iter().all(|s| *s), "every mode needs an outcome: {spec}");
    e.kind = kind.unwrap_or_else(|| panic!("no kind in {spec}"));
    e
}

fn corpus() -> Vec<Block> {
    let mut blocks = Vec::new();
    for line in CORPUS.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        if let Some(spec) = line.strip_prefix("@ ") {
            if let Some(verdict) = spec.strip_prefix("line verdict=") {
                blocks.push(Block::Lines(verdict.to_string(), Vec::new()));
            } else {
                blocks.push(Block::Body(parse_expect(spec), Vec::new()));
            }
            continue;
        }
        match blocks.last_mut().expect("a line before any @ expectation") {
            Block::Body(_, lines) | Block::Lines(_, lines) => lines.push(line.to_string()),
        }
    }
    blocks
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const REFERENCE: &str = "2026-06-01T00:00:00Z";

/// (name, line template, expected time, has host, has pid). `{p}` is the
/// process, `{m}` the message body.
const ENVELOPES: &[(&str, &str, &str, bool, bool)] = &[
    ("classic", "Jan 15 10:33:14 server1 {p}[2231]: {m}", "2026-01-15T10:33:14Z", true, true),
    ("classic-crlf", "Jan 15 10:33:14 server1 {p}[2231]: {m}\r", "2026-01-15T10:33:14Z", true, true),
    (
        "rfc3339",
        "2026-01-15T10:33:14.123456+09:00 server1 {p}[2231]: {m}",
        "2026-01-15T01:33:14.123456Z",
        true,
        true,
    ),
    (
        "rfc5424",
        "<38>1 2026-01-15T10:33:14.954167-04:00 server1 {p} 2231 - - {m}",
        "2026-01-15T14:33:14.954167Z",
        true,
        true,
    ),
    (
        "rfc5424-sd-bom",
        "<38>1 2026-01-15T10:33:14Z server1 {p} 2231 ID47 [meta x=\"a\\]b\"][o@1 y=\"\"] \u{feff}{m}",
        "2026-01-15T10:33:14Z",
        true,
        true,
    ),
    ("rfc3164-wire", "<38>Jan 15 10:33:14 server1 {p}[2231]: {m}", "2026-01-15T10:33:14Z", true, true),
    ("journal-short", "server1 {p}[2231]: {m}", REFERENCE, true, true),
    ("bracketed", "Jan 15 10:33:14 [{p}]: {m}", "2026-01-15T10:33:14Z", false, false),
    (
        "solaris",
        "Jan 15 10:33:14 server1 {p}[2231]: [ID 800047 auth.info] {m}",
        "2026-01-15T10:33:14Z",
        true,
        true,
    ),
];

fn parser(mode: Mode) -> LineParser {
    LineParser::new(ParseOptions::new(mode, TimeZone::UTC, ts(REFERENCE)))
}

fn run_one(mode: Mode, line: &str) -> (LineVerdict, Vec<Parsed>) {
    let mut p = parser(mode);
    let mut out = Vec::new();
    let verdict = p.push_line(line.as_bytes(), Origin { line: 1, offset: 0 }, &mut out);
    p.finish(&mut out);
    (verdict, out)
}

#[test]
fn every_body_in_every_envelope_process_and_mode() {
    let mut checked = 0;
    for block in corpus() {
        let Block::Body(expect, bodies) = block else { continue };
        assert!(!bodies.is_empty(), "{expect:?} has no lines");
        let processes: &[&str] =
            if expect.dropbear { &["dropbear"] } else { &["sshd", "sshd-session", "sshd-auth"] };
        for body in &bodies {
            for (env_name, template, time, has_host, has_pid) in ENVELOPES {
                for process in processes {
                    let line = template.replace("{p}", process).replace("{m}", body);
                    for (i, mode) in Mode::ALL.into_iter().enumerate() {
                        let ctx = format!("[{env_name} {process} {}] {line:?}", mode.as_str());
                        let (verdict, out) = run_one(mode, &line);
                        assert_eq!(verdict, LineVerdict::Recognised(expect.kind), "{ctx}");
                        assert_eq!(out.len(), 1, "{ctx}: {out:?}");
                        let ev = &out[0].event;
                        assert_eq!(ev.kind, expect.kind, "{ctx}");
                        assert_eq!(ev.source, expect.source, "{ctx}");
                        assert_eq!(ev.port, expect.port, "{ctx}");
                        assert_eq!(ev.user, expect.user, "{ctx}");
                        // A pending line without PID cannot be joined to
                        // its `Failed` line: it stays context.
                        let outcome = if expect.kind == Kind::PamUnixAuthFailure && !has_pid {
                            Outcome::Context
                        } else {
                            expect.outcomes[i]
                        };
                        assert_eq!(ev.outcome, outcome, "{ctx}");
                        assert_eq!(ev.time, ts(time), "{ctx}");
                        assert_eq!(&*ev.process, *process, "{ctx}");
                        assert_eq!(ev.host.as_deref(), has_host.then_some("server1"), "{ctx}");
                        assert_eq!(ev.pid, has_pid.then_some(2231), "{ctx}");
                        assert_eq!(out[0].origin, Origin { line: 1, offset: 0 }, "{ctx}");
                        checked += 1;
                    }
                }
            }
        }
    }
    assert!(checked > 10_000, "only {checked} checks");
}

#[test]
fn every_kind_has_samples_and_hostile_samples() {
    let blocks = corpus();
    let mut with_sample = BTreeSet::new();
    let mut with_hostile = BTreeSet::new();
    let mut carries_text = BTreeSet::new();
    for block in &blocks {
        let Block::Body(e, bodies) = block else { continue };
        with_sample.insert(e.kind);
        if e.user.is_some() {
            carries_text.insert(e.kind);
        }
        if e.hostile {
            with_hostile.insert(e.kind);
            // A hostile sample plants a decoy address that must not win.
            for body in bodies {
                assert!(body.contains("198.51.100.7"), "hostile sample without decoy: {body}");
            }
            let decoy: IpAddr = "198.51.100.7".parse().unwrap();
            assert_ne!(e.source, Some(Source::Addr(decoy)), "{e:?}");
        }
    }
    let missing: Vec<_> = Kind::ALL.iter().filter(|k| !with_sample.contains(*k)).collect();
    assert!(missing.is_empty(), "kinds without a corpus sample: {missing:?}");
    // Every kind whose line carries a user name (attacker text) has an
    // injection sample.
    let unguarded: Vec<_> = carries_text.difference(&with_hostile).collect();
    assert!(unguarded.is_empty(), "kinds with a user but no hostile sample: {unguarded:?}");
}

#[test]
fn whole_lines_get_their_verdict() {
    let mut checked = 0;
    for block in corpus() {
        let Block::Lines(verdict, lines) = block else { continue };
        let expected = match verdict.as_str() {
            "not_sshd" => LineVerdict::NotSshd,
            "sshd_unrecognised" => LineVerdict::SshdUnrecognised,
            "sshd_ignored" => LineVerdict::SshdIgnored,
            other => {
                let reason = other.strip_prefix("skipped:").expect(other);
                let reason =
                    SkipReason::ALL.into_iter().find(|r| r.as_str() == reason).expect(reason);
                LineVerdict::Skipped(reason)
            }
        };
        for line in lines {
            for mode in Mode::ALL {
                let (got, out) = run_one(mode, &line);
                assert_eq!(got, expected, "{line:?}");
                assert!(out.is_empty(), "{line:?} gave {out:?}");
                checked += 1;
            }
        }
    }
    assert!(checked >= 4 * 25, "{checked}");
}
