//! Connection tracking through the public `LineParser`: sources from
//! earlier and later lines of the same sshd PID, pending pam_unix
//! failures, and the bounded connection table under a flood.

use hikeshi_core::parse::{LineParser, Origin, ParseOptions, Parsed};
use hikeshi_core::{Kind, Mode, Outcome, Source};
use jiff::tz::TimeZone;

fn parser_with(capacity: usize) -> LineParser {
    let mut opts =
        ParseOptions::new(Mode::Normal, TimeZone::UTC, "2026-06-01T00:00:00Z".parse().unwrap());
    opts.max_connections = capacity;
    LineParser::new(opts)
}

fn run(lines: &[&str]) -> (LineParser, Vec<Parsed>) {
    let mut p = parser_with(1024);
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        p.push_line(line.as_bytes(), Origin { line: i as u64 + 1, offset: 0 }, &mut out);
    }
    p.finish(&mut out);
    (p, out)
}

fn src(s: &str) -> Option<Source> {
    Some(Source::Addr(s.parse().unwrap()))
}

fn of_kind(out: &[Parsed], kind: Kind) -> Vec<&Parsed> {
    out.iter().filter(|p| p.event.kind == kind).collect()
}

fn failures(out: &[Parsed]) -> usize {
    out.iter().filter(|p| p.event.outcome == Outcome::Failure).count()
}

#[test]
fn line_without_address_takes_it_from_a_later_line() {
    let (p, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: kex_exchange_identification: Connection closed by remote host",
        "Jan 15 10:00:00 h sshd[100]: Connection closed by 203.0.113.5 port 4000 [preauth]",
    ]);
    let kex = of_kind(&out, Kind::KexExchangeIdentification);
    assert_eq!(kex.len(), 1);
    assert_eq!(kex[0].event.source, src("203.0.113.5"));
    assert_eq!(kex[0].origin.line, 1);
    assert_eq!(p.stats().correlation.source_from_later, 1);
}

#[test]
fn line_without_address_takes_it_from_an_earlier_line() {
    let (p, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: Invalid user admin from 203.0.113.5 port 4000",
        "Jan 15 10:00:01 h sshd[100]: Disconnecting: Too many authentication failures [preauth]",
        "Jan 15 10:00:01 h sshd[101]: User carol not allowed because account is locked",
        "Jan 15 10:00:02 h sshd[101]: Connection closed by authenticating user carol 2001:db8::7 port 9 [preauth]",
    ]);
    assert_eq!(of_kind(&out, Kind::TooManyAuthFailures)[0].event.source, src("203.0.113.5"));
    assert_eq!(of_kind(&out, Kind::AccountLocked)[0].event.source, src("2001:db8::7"));
    assert_eq!(p.stats().correlation.source_from_earlier, 1);
    assert_eq!(p.stats().correlation.source_from_later, 1);
    assert_eq!(failures(&out), 3);
}

#[test]
fn verbose_connection_line_names_the_peer() {
    let (_, out) = run(&[
        "Jan 15 10:00:00 h sshd[7]: Connection from 203.0.113.8 port 4000 on 192.0.2.1 port 22 rdomain \"\"",
        "Jan 15 10:00:00 h sshd[7]: kex_exchange_identification: read: Connection reset by peer",
    ]);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event.source, src("203.0.113.8"));
}

#[test]
fn other_hosts_and_other_pids_are_other_connections() {
    let (_, out) = run(&[
        "Jan 15 10:00:00 a sshd[100]: Invalid user x from 203.0.113.5 port 4000",
        "Jan 15 10:00:01 b sshd[100]: Disconnecting: Too many authentication failures [preauth]",
        "Jan 15 10:00:01 a sshd[101]: Disconnecting: Too many authentication failures [preauth]",
    ]);
    for p in of_kind(&out, Kind::TooManyAuthFailures) {
        assert_eq!(p.event.source, None, "{p:?}");
    }
}

#[test]
fn a_reused_pid_does_not_lend_an_old_address() {
    let (_, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: Invalid user x from 203.0.113.5 port 4000",
        // An hour later the PID belongs to another connection.
        "Jan 15 11:00:00 h sshd[100]: Disconnecting: Too many authentication failures [preauth]",
    ]);
    assert_eq!(of_kind(&out, Kind::TooManyAuthFailures)[0].event.source, None);
}

#[test]
fn pending_then_failed_password_counts_once() {
    let (p, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
        "Jan 15 10:00:02 h sshd[100]: Failed password for root from 203.0.113.5 port 4000 ssh2",
        "Jan 15 10:00:03 h sshd[100]: Connection closed by authenticating user root 203.0.113.5 port 4000 [preauth]",
    ]);
    assert_eq!(failures(&out), 1);
    assert_eq!(of_kind(&out, Kind::PamUnixAuthFailure)[0].event.outcome, Outcome::Context);
    assert_eq!(p.stats().correlation.pending_absorbed, 1);
    assert_eq!(p.stats().outcome(Outcome::Failure), 1);
    assert_eq!(p.stats().outcome(Outcome::Pending), 0);
}

#[test]
fn pending_becomes_failure_when_the_connection_closes() {
    let (p, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
        "Jan 15 10:00:01 h sshd[100]: Connection closed by 203.0.113.5 port 4000 [preauth]",
    ]);
    let pam = of_kind(&out, Kind::PamUnixAuthFailure);
    assert_eq!(pam[0].event.outcome, Outcome::Failure);
    assert_eq!(p.stats().correlation.pending_closed, 1);
    // The pending line comes out before the line that resolved it.
    assert_eq!(out[0].event.kind, Kind::PamUnixAuthFailure);
}

#[test]
fn pending_becomes_failure_on_a_second_failure_or_another_user() {
    let (p, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
        "Jan 15 10:00:01 h sshd[100]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5  user=root",
        "Jan 15 10:00:02 h sshd[100]: Failed password for admin from 203.0.113.5 port 4000 ssh2",
    ]);
    assert_eq!(failures(&out), 3);
    let c = p.stats().correlation;
    assert_eq!((c.pending_another_failure, c.pending_other_user), (1, 1));
}

#[test]
fn pending_then_success_is_not_a_failure() {
    let (_, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=192.0.2.10  user=alice",
        "Jan 15 10:00:05 h sshd[100]: Accepted password for alice from 192.0.2.10 port 4000 ssh2",
        "Jan 15 10:30:00 h sshd[100]: Disconnected from user alice 192.0.2.10 port 4000",
    ]);
    assert_eq!(failures(&out), 0);
    assert_eq!(of_kind(&out, Kind::Accepted).len(), 1);
}

#[test]
fn pending_at_end_of_input_is_a_failure() {
    let (p, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5",
    ]);
    assert_eq!(out[0].event.outcome, Outcome::Failure);
    assert_eq!(p.stats().correlation.pending_end_of_input, 1);
}

#[test]
fn a_flood_of_connections_stays_bounded_and_loses_nothing() {
    let mut p = parser_with(100);
    let mut out = Vec::new();
    let n = 20_000u32;
    for i in 0..n {
        let line = format!(
            "Jan 15 10:00:00 h sshd[{}]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.{}.{}  user=root",
            1000 + i,
            (i / 250) % 256,
            i % 250 + 1
        );
        p.push_line(line.as_bytes(), Origin::default(), &mut out);
        assert!(p.open_connections() <= 100);
    }
    assert!(out.len() >= (n - 100) as usize, "evicted connections are resolved");
    p.finish(&mut out);
    assert_eq!(out.len(), n as usize);
    assert!(out.iter().all(|e| e.event.outcome == Outcome::Failure && e.event.source.is_some()));
    let c = p.stats().correlation;
    assert_eq!(c.connections_evicted, u64::from(n) - 100);
    assert_eq!(c.pending_evicted, u64::from(n) - 100);
    assert_eq!(c.connections_peak, 100);
}

#[test]
fn lines_waiting_for_an_address_come_out_at_the_end() {
    let (p, out) = run(&[
        "Jan 15 10:00:00 h sshd[100]: kex_exchange_identification: banner line contains invalid characters",
        "Jan 15 10:00:00 h sshd[100]: User carol not allowed because account is locked",
    ]);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|e| e.event.source.is_none()));
    assert_eq!(p.stats().correlation.source_never_found, 2);
    assert_eq!(out[0].origin.line, 1);
}

#[test]
fn expire_resolves_idle_connections() {
    let mut p = parser_with(16);
    let mut out = Vec::new();
    let line = b"Jan 15 10:00:00 h sshd[100]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=203.0.113.5";
    p.push_line(line, Origin::default(), &mut out);
    assert!(out.is_empty());
    p.expire("2026-01-15T10:05:00Z".parse().unwrap(), &mut out);
    assert!(out.is_empty(), "not idle long enough yet");
    p.expire("2026-01-15T10:30:00Z".parse().unwrap(), &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].event.outcome, Outcome::Failure);
    assert_eq!(p.open_connections(), 0);
}

#[test]
fn connection_closed_after_a_login_is_a_plain_disconnect() {
    let mut p = LineParser::new(ParseOptions::new(
        Mode::Ddos,
        TimeZone::UTC,
        "2026-06-01T00:00:00Z".parse().unwrap(),
    ));
    let mut out = Vec::new();
    for line in [
        "Jan 15 10:00:00 h sshd[100]: Accepted password for alice from 192.0.2.10 port 4000 ssh2",
        "Jan 15 10:30:00 h sshd[100]: Connection closed by 192.0.2.10 port 4000",
        "Jan 15 10:31:00 h sshd[101]: Connection closed by 203.0.113.5 port 4001",
    ] {
        p.push_line(line.as_bytes(), Origin::default(), &mut out);
    }
    p.finish(&mut out);
    assert_eq!(out[1].event.kind, Kind::Disconnected);
    assert_eq!(out[1].event.outcome, Outcome::Context);
    assert_eq!(out[2].event.kind, Kind::ConnectionClosedPreauth);
    assert_eq!(out[2].event.outcome, Outcome::Failure);
}

#[test]
fn closed_connections_leave_no_entry_behind() {
    // Regression: context lines after the close (`session closed`) and
    // `Disconnecting: Too many authentication failures` used to keep
    // entries open until eviction, so memory grew with the log.
    let mut p = parser_with(1024);
    let mut out = Vec::new();
    for line in [
        "Jan 15 10:00:00 h sshd[100]: Accepted password for alice from 192.0.2.10 port 4000 ssh2",
        "Jan 15 10:00:00 h sshd[100]: pam_unix(sshd:session): session opened for user alice(uid=1000) by (uid=0)",
        "Jan 15 10:30:00 h sshd[100]: Received disconnect from 192.0.2.10 port 4000:11: disconnected by user",
        "Jan 15 10:30:00 h sshd[100]: Disconnected from user alice 192.0.2.10 port 4000",
        "Jan 15 10:30:00 h sshd[100]: pam_unix(sshd:session): session closed for user alice",
        "Jan 15 10:31:00 h sshd[101]: Failed password for root from 203.0.113.5 port 4001 ssh2",
        "Jan 15 10:31:01 h sshd[101]: error: maximum authentication attempts exceeded for root from 203.0.113.5 port 4001 ssh2 [preauth]",
        "Jan 15 10:31:01 h sshd[101]: Disconnecting authenticating user root 203.0.113.5 port 4001: Too many authentication failures [preauth]",
    ] {
        p.push_line(line.as_bytes(), Origin::default(), &mut out);
    }
    assert_eq!(p.open_connections(), 0);
    assert_eq!(out.len(), 8);
}
