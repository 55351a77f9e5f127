//! The generator's per-line ground truth against hikeshi-core's parser:
//! every line the corpus writes as a given kind must be recognised as
//! exactly that kind, in every envelope, with hostile user names and
//! Dropbear mixed in; lines of other daemons and PAM bookkeeping must not
//! be recognised as anything. A disagreement is a bug in one of the two.

use std::collections::BTreeMap;

use hikeshi_core::parse::{LineParser, LineVerdict, Origin, ParseOptions};
use hikeshi_core::{Kind, Mode};
use hikeshi_corpus::{Config, Envelope, Generator};
use jiff::tz::TimeZone;

fn check(envelopes: Vec<Envelope>, seed: u64) {
    let config = Config {
        lines: 150_000,
        seed,
        dropbear_share: 0.05,
        hostile_share: 0.02,
        envelopes,
        ..Config::default()
    };
    let reference = config.start;
    let envelopes_have_pid = !config.envelopes.contains(&Envelope::NoPid);
    let mut generator = Generator::new(config).unwrap();
    let mut parser = LineParser::new(ParseOptions::new(Mode::Aggressive, TimeZone::UTC, reference));
    let mut line = Vec::new();
    let mut events = Vec::new();
    // (expected, got) -> count, with one example line each.
    let mut disagreements: BTreeMap<(Option<Kind>, String), (u64, String)> = BTreeMap::new();
    let mut number = 0;
    let mut sources_seen = 0;
    let mut failures = 0;
    while {
        line.clear();
        generator.next_line(&mut line)
    } {
        number += 1;
        let verdict = parser.push_line(&line, Origin { line: number, offset: 0 }, &mut events);
        failures += count_failures(&events);
        check_sources(&mut events, &mut sources_seen);
        let expected = generator.last_kind();
        let agrees = match (expected, verdict) {
            (Some(kind), LineVerdict::Recognised(got)) => kind == got,
            (Some(_), _) => false,
            (None, LineVerdict::Recognised(_)) => false,
            (None, _) => true,
        };
        if !agrees {
            let entry = disagreements
                .entry((expected, format!("{verdict:?}")))
                .or_insert_with(|| (0, String::from_utf8_lossy(&line).into_owned()));
            entry.0 += 1;
        }
    }
    parser.finish(&mut events);
    failures += count_failures(&events);
    check_sources(&mut events, &mut sources_seen);
    // Every failure line of the corpus becomes one failure event. Pending
    // pam_unix lines are settled by their own `Failed` line, except in
    // sessions the corpus cut off at its end (a few dozen at most), whose
    // pending lines count alone. Without a PID nothing can be joined, so
    // every pending line counts alone: more failures, never fewer.
    let expected = generator.stats().failure_lines(Mode::Aggressive);
    let pending = generator.stats().kind(Kind::PamUnixAuthFailure);
    let slack = if envelopes_have_pid { 40 } else { pending };
    assert!(
        failures >= expected && failures <= expected + slack,
        "{failures} failure events for {expected} failure lines"
    );
    assert!(sources_seen > 10_000, "{sources_seen} events with a source");
    assert!(
        disagreements.is_empty(),
        "corpus and parser disagree:\n{}",
        disagreements
            .iter()
            .map(|((want, got), (n, example))| format!(
                "  {n} x expected {want:?}, parser {got}: {example}"
            ))
            .collect::<String>()
    );
}

fn count_failures(events: &[hikeshi_core::parse::Parsed]) -> u64 {
    events.iter().filter(|p| p.event.outcome == hikeshi_core::Outcome::Failure).count() as u64
}

/// Every event's source is one of the generator's peers: attackers in
/// 198.18.0.0/15 or 2001:db8:8000::/33, legitimate users in 10.20.0.0/24
/// or 2001:db8:ffff:1::/64. The hostile user names all name 192.0.2.1,
/// which must therefore never appear.
fn check_sources(events: &mut Vec<hikeshi_core::parse::Parsed>, seen: &mut u64) {
    for parsed in events.drain(..) {
        let Some(source) = &parsed.event.source else { continue };
        let addr = source.addr().unwrap_or_else(|| panic!("host name source {source}"));
        let ok = match addr {
            std::net::IpAddr::V4(v4) => {
                let o = v4.octets();
                (o[0] == 198 && (o[1] == 18 || o[1] == 19))
                    || (o[0] == 10 && o[1] == 20 && o[2] == 0)
            }
            std::net::IpAddr::V6(v6) => {
                let s = v6.segments();
                s[0] == 0x2001 && s[1] == 0x0db8 && (s[2] & 0x8000 != 0)
            }
        };
        assert!(ok, "event source {addr} is no peer of the corpus: {:?}", parsed.event);
        *seen += 1;
    }
}

#[test]
fn the_parser_recognises_every_classic_line_as_the_corpus_meant_it() {
    check(vec![Envelope::Classic], 21);
}

#[test]
fn the_parser_recognises_every_line_in_a_mix_of_envelopes() {
    let with_pid = Envelope::ALL.into_iter().filter(|e| *e != Envelope::NoPid).collect();
    check(with_pid, 22);
}

#[test]
fn the_parser_recognises_every_line_without_pid() {
    check(vec![Envelope::NoPid], 23);
}
