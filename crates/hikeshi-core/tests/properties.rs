//! Property tests of the parser: it never panics on any bytes, an address
//! that appears only in attacker text (user names, version strings) is
//! never the source, and addresses come out in canonical form.

use std::net::IpAddr;

use hikeshi_core::event::canonical_addr;
use hikeshi_core::parse::{LineParser, LineVerdict, Origin, ParseOptions, Parsed};
use hikeshi_core::{Mode, Source};
use jiff::tz::TimeZone;
use proptest::prelude::*;

fn parser() -> LineParser {
    let mut opts =
        ParseOptions::new(Mode::Aggressive, TimeZone::UTC, "2026-06-01T00:00:00Z".parse().unwrap());
    opts.max_connections = 8;
    LineParser::new(opts)
}

fn parse_all(lines: &[Vec<u8>]) -> (Vec<LineVerdict>, Vec<Parsed>) {
    let mut p = parser();
    let mut out = Vec::new();
    let verdicts: Vec<LineVerdict> =
        lines.iter().map(|l| p.push_line(l, Origin::default(), &mut out)).collect();
    p.finish(&mut out);
    assert_eq!(p.stats().lines, lines.len() as u64);
    // Every recognised line comes out exactly once, however it was held.
    let recognised = verdicts.iter().filter(|v| matches!(v, LineVerdict::Recognised(_))).count();
    assert_eq!(out.len(), recognised);
    assert_eq!(p.stats().recognised_total(), recognised as u64);
    assert_eq!(p.stats().outcome(hikeshi_core::Outcome::Pending), 0);
    (verdicts, out)
}

/// Fragments an attacker would use to imitate sshd's tail.
const FRAGMENTS: &[&str] = &[
    "198.51.100.7",
    "::ffff:198.51.100.7",
    "2001:db8::bad",
    " from ",
    " port ",
    "22",
    " ssh2",
    ": ",
    " [preauth]",
    "'",
    "(",
    ")",
    ",",
    " RSA SHA256:zz",
    " ED25519-CERT SHA256:q ID ",
    " (serial 1) CA RSA SHA256:w",
    " ",
    "x",
    "invalid user ",
    "authenticating user ",
    ": Change of username or service not allowed: ",
    ": Too many authentication failures",
    ":",
    "<",
    ">",
    " rhost=",
    " user=",
];

fn hostile_text() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..14).prop_map(|v| v.concat())
}

fn real_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (1u8..=254).prop_map(|d| IpAddr::from([203, 0, 113, d])),
        (1u16..=0xfffe).prop_map(|d| IpAddr::from([0x2001, 0xdb8, 1, 0, 0, 0, 0, d])),
    ]
}

/// (template, the user must come back exactly, ambiguity allowed).
/// `{u}` is the hostile text, `{a}` the real address, `{p}` the port.
const SHAPES: &[(&str, &str, bool, bool)] = &[
    ("sshd", "Failed password for invalid user {u} from {a} port {p} ssh2", true, false),
    ("sshd", "Failed password for {u} from {a} port {p} ssh2", false, false),
    ("sshd", "Failed publickey for {u} from {a} port {p} ssh2: RSA SHA256:abcdef", false, false),
    (
        "sshd",
        "Failed publickey for invalid user {u} from {a} port {p} ssh2: ED25519-CERT SHA256:a ID {u} (serial 3) CA ED25519 SHA256:b",
        false,
        true,
    ),
    ("sshd", "Invalid user {u} from {a} port {p}", true, false),
    ("sshd", "error: maximum authentication attempts exceeded for invalid user {u} from {a} port {p} ssh2 [preauth]", true, false),
    ("sshd", "Connection closed by invalid user {u} {a} port {p} [preauth]", true, false),
    ("sshd", "Disconnected from authenticating user {u} {a} port {p} [preauth]", true, false),
    ("sshd", "Accepted password for {u} from {a} port {p} ssh2", false, false),
    ("sshd", "Postponed publickey for {u} from {a} port {p} ssh2 [preauth]", false, false),
    ("sshd", "Bad protocol version identification '{u}' from {a} port {p}", false, false),
    ("sshd", "User {u} from {a} not allowed because not listed in AllowUsers", false, false),
    ("sshd", "error: PAM: Authentication failure for {u} from {a}", false, false),
    ("sshd", "Disconnecting invalid user {u} {a} port {p}: Too many authentication failures [preauth]", true, false),
    (
        "sshd",
        "Disconnecting invalid user {u} {a} port {p}: Change of username or service not allowed: ({u},ssh-connection) -> ({u},ssh-connection) [preauth]",
        false,
        true,
    ),
    ("sshd", "ssh_dispatch_run_fatal: Connection from invalid user {u} {a} port {p}: message authentication code incorrect [preauth]", false, false),
    ("sshd", "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={a}  user={u}", false, false),
    ("sshd", "Unable to negotiate with {a} port {p}: no matching cipher found. Their offer: {u} [preauth]", false, false),
    ("sshd", "Received disconnect from {a} port {p}:3: {u}: Auth fail [preauth]", false, false),
    ("dropbear", "Bad password attempt for '{u}' from {a}:{p}", false, false),
    ("dropbear", "Login attempt for nonexistent user '{u}' from {a}:{p}", false, false),
    ("dropbear", "Exit before auth from <{a}:{p}>: (user '{u}', 1 fails): Exited normally", false, false),
];

const CONNECTION_LINES: &[&str] = &[
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={a}  user=root",
    "pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost={a}",
    "Failed password for root from {a} port 22 ssh2",
    "Failed password for invalid user admin from {a} port 22 ssh2",
    "Accepted password for alice from {a} port 22 ssh2",
    "Disconnecting: Too many authentication failures [preauth]",
    "User carol not allowed because account is locked",
    "kex_exchange_identification: Connection closed by remote host",
    "Connection closed by {a} port 22 [preauth]",
    "Connection closed by {a} port 22",
    "Connection from {a} port 22 on 192.0.2.1 port 22 rdomain \"\"",
    "Disconnected from user alice {a} port 22",
    "input_userauth_request: invalid user admin [preauth]",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(lines in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..20)) {
        parse_all(&lines);
    }

    #[test]
    fn arbitrary_messages_in_a_real_envelope_never_panic(
        msgs in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 1..20),
        prefix in prop::sample::select(vec![
            "Jan 15 10:33:14 h sshd[1]: ", "<38>1 2026-01-15T10:33:14Z h sshd 1 - - ",
            "h dropbear[2]: ", "Jan 15 10:33:14 [sshd]: ",
        ]),
    ) {
        let lines: Vec<Vec<u8>> = msgs.into_iter().map(|m| [prefix.as_bytes(), &m].concat()).collect();
        parse_all(&lines);
    }

    #[test]
    fn every_recognised_line_comes_out_once_whatever_the_interleaving(
        picks in prop::collection::vec((0..CONNECTION_LINES.len(), 1u32..20, 1u8..4, 0u32..7200), 0..200),
    ) {
        // Random connections (PIDs), peers and times over the lines that
        // hold events (pending, waiting for an address) and close them.
        let lines: Vec<Vec<u8>> = picks
            .iter()
            .map(|&(i, pid, peer, secs)| {
                let body = CONNECTION_LINES[i].replace("{a}", &format!("203.0.113.{peer}"));
                format!("Jan 15 {:02}:{:02}:{:02} h sshd[{pid}]: {body}", 10 + secs / 3600, secs / 60 % 60, secs % 60)
                    .into_bytes()
            })
            .collect();
        parse_all(&lines);
    }

    #[test]
    fn hostile_text_never_becomes_the_source(
        u in hostile_text(),
        a in real_addr(),
        p in 1u16..,
        shape in 0..SHAPES.len(),
    ) {
        let (process, template, exact_user, may_be_ambiguous) = SHAPES[shape];
        let addr_text = match (process, a) {
            ("dropbear", IpAddr::V6(v6)) => format!("[{v6}]"),
            _ => a.to_string(),
        };
        let body = template.replace("{u}", &u).replace("{a}", &addr_text).replace("{p}", &p.to_string());
        let line = format!("Jan 15 10:33:14 h {process}[7]: {body}");
        let (verdicts, out) = parse_all(&[line.clone().into_bytes()]);
        prop_assert!(matches!(verdicts[0], LineVerdict::Recognised(_)), "{line}: {:?}", verdicts[0]);
        prop_assert_eq!(out.len(), 1);
        let ev = &out[0].event;
        match &ev.source {
            Some(source) => prop_assert_eq!(source, &Source::Addr(a), "{}", line),
            None => prop_assert!(may_be_ambiguous, "no source: {}", line),
        }
        if exact_user {
            prop_assert_eq!(ev.user.as_deref(), Some(u.as_str()), "{}", line);
        }
    }

    #[test]
    fn addresses_come_out_canonical_and_round_trip(a in any::<IpAddr>()) {
        let line = format!("Jan 15 10:33:14 h sshd[7]: Invalid user u from {a} port 22");
        let (_, out) = parse_all(&[line.into_bytes()]);
        let source = out[0].event.source.clone().expect("a source");
        prop_assert_eq!(&source, &Source::Addr(canonical_addr(a)));
        let again: IpAddr = source.to_string().parse().unwrap();
        prop_assert_eq!(again, canonical_addr(a));
        prop_assert_eq!(canonical_addr(again), again);
    }
}
