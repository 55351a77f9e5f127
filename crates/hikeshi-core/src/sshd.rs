//! sshd (and Dropbear) messages: what a message says happened ([`Kind`]),
//! who did it (the source address), and which user and port it names.
//!
//! The address is taken only from the position where sshd itself writes
//! it. For almost every shape that is the end of the line, before the
//! fixed tails ` port <n>`, ` ssh2`, `: <key info>` and ` [preauth]`, so
//! those lines are parsed from the right and everything left of the
//! address (the user name, a version string) is opaque attacker-chosen
//! bytes. The few shapes where attacker text follows the address (`Unable
//! to negotiate with <addr> port <n>: ... Their offer: <client text>`,
//! `Received disconnect from <addr> port <n>:3: <client text>`) are
//! parsed from the left, where nothing precedes the address but sshd's
//! own words. When no position is certain (a certificate ID and a user
//! name both imitating the tail), the source is left empty and taken from
//! the connection instead: a wrong address is worse than none.
//!
//! Only lines that matter allocate (a host name source); everything else
//! is comparisons on `&[u8]`.

use std::net::IpAddr;

use crate::event::{canonical_addr, Kind, Source};

/// What [`classify`] understood of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified<'a> {
    /// One of the shapes of the specification.
    Recognised(Message<'a>),
    /// An sshd message we know and deliberately ignore (`Server listening
    /// on`, `Starting session`, ...). `source` is set when it reveals the
    /// connection's peer (`Connection from <addr> port <n> on ...`).
    Ignored { source: Option<Source> },
    /// Looks like nothing we know: counted and reported, since an sshd
    /// upgrade that changes a message must not make hikeshi silently blind.
    Unrecognised,
}

/// A recognised message. `user` borrows the raw (opaque) bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: Kind,
    /// The peer, from sshd's fixed position. `None` when the shape has no
    /// address, sshd wrote `UNKNOWN`, or the position was ambiguous.
    pub source: Option<Source>,
    pub user: Option<&'a [u8]>,
    pub port: Option<u16>,
    /// True when the address could not be placed with certainty (see the
    /// module doc): `source` is then `None`.
    pub ambiguous: bool,
}

impl<'a> Message<'a> {
    fn new(kind: Kind) -> Self {
        Message { kind, source: None, user: None, port: None, ambiguous: false }
    }
    fn user(mut self, user: &'a [u8]) -> Self {
        self.user = Some(user);
        self
    }
    fn peer(mut self, peer: Peer) -> Self {
        self.source = peer.source;
        self.port = peer.port;
        self
    }
}

/// An address (or host name) and port read from sshd's fixed position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Peer {
    source: Option<Source>,
    port: Option<u16>,
}

/// Classifies one sshd/Dropbear message (the part after `sshd[pid]: `).
pub fn classify(message: &[u8]) -> Classified<'_> {
    let msg = strip_level_prefix(message);
    let msg = msg.strip_suffix(b" [preauth]").unwrap_or(msg);
    let recognised = match msg.first() {
        Some(b'F') => msg.strip_prefix(b"Failed ").and_then(failed),
        Some(b'A') => {
            if let Some(rest) = msg.strip_prefix(b"Accepted ") {
                auth_result(rest).map(|(_, _, m)| Message { kind: Kind::Accepted, ..m })
            } else if let Some(rest) = msg.strip_prefix(b"Authentication failure for ") {
                user_from_addr(rest, Kind::PamAuthFailure)
            } else if let Some(rest) = msg.strip_prefix(b"Address ") {
                address_maps(rest)
            } else {
                None
            }
        }
        Some(b'I') => msg
            .strip_prefix(b"Invalid user ")
            .or_else(|| msg.strip_prefix(b"Illegal user "))
            .and_then(|rest| user_from_addr(rest, Kind::InvalidUser)),
        Some(b'U') => {
            if let Some(rest) =
                msg.strip_prefix(b"User not known to the underlying authentication module for ")
            {
                user_from_addr(rest, Kind::PamUserUnknown)
            } else if let Some(rest) = msg.strip_prefix(b"User ") {
                user_not_allowed(rest)
            } else if let Some(rest) = msg.strip_prefix(b"Unable to negotiate with ") {
                left_addr_port(rest)
                    .map(|(peer, _)| Message::new(Kind::UnableToNegotiate).peer(peer))
            } else {
                None
            }
        }
        Some(b'R') => {
            if let Some(rest) = msg.strip_prefix(b"ROOT LOGIN REFUSED FROM ") {
                tail(rest, b"", false)
                    .filter(|(head, _)| head.is_empty())
                    .map(|(_, p)| Message::new(Kind::RootLoginRefused).peer(p))
            } else if let Some(rest) = msg.strip_prefix(b"Received disconnect from ") {
                received_disconnect(rest)
            } else {
                None
            }
        }
        Some(b'm') => {
            msg.strip_prefix(b"maximum authentication attempts exceeded for ").and_then(|rest| {
                let rest = rest.strip_prefix(b"invalid user ").unwrap_or(rest);
                let (user, peer) = tail(rest, b" from", true)?;
                Some(Message::new(Kind::MaxAuthTries).user(user).peer(peer))
            })
        }
        Some(b'D') => disconnecting_or_disconnected(msg),
        Some(b'r') => {
            if let Some(rest) = msg.strip_prefix(b"refused connect from ") {
                tcp_wrappers(rest)
            } else if let Some(rest) =
                msg.strip_prefix(b"reverse mapping checking getaddrinfo for ")
            {
                reverse_mapping(rest)
            } else {
                None
            }
        }
        Some(b'p') => pam_unix(msg),
        Some(b'T') => msg.strip_prefix(b"Timeout before authentication for ").and_then(|rest| {
            let rest = rest.strip_prefix(b"connection from ").unwrap_or(rest);
            let end = memchr::memchr(b' ', rest).unwrap_or(rest.len());
            let source = parse_source(&rest[..end])?;
            let port = rest[end..].strip_prefix(b" port ").and_then(leading_port);
            Some(Message::new(Kind::AuthTimeout).peer(Peer { source, port }))
        }),
        Some(b'B') => msg
            .strip_prefix(b"Bad protocol version identification ")
            .and_then(|rest| tail(rest, b" from", false))
            .map(|(_, p)| Message::new(Kind::BadProtocolVersion).peer(p))
            .or_else(|| {
                dropbear_user_from(msg, b"Bad password attempt for ", Kind::DropbearBadPassword)
            }),
        Some(b'b') => msg
            .strip_prefix(b"banner exchange: Connection from ")
            .and_then(left_addr_port)
            .map(|(p, _)| Message::new(Kind::BannerInvalidFormat).peer(p)),
        Some(b's') => {
            msg.strip_prefix(b"ssh_dispatch_run_fatal: Connection from ").and_then(|rest| {
                let colon = rfind(rest, b": ")?;
                if &rest[colon + 2..] != b"message authentication code incorrect" {
                    return None;
                }
                let (user, peer) = user_addr_port(&rest[..colon])?;
                Some(Message { user, ..Message::new(Kind::MacIncorrect).peer(peer) })
            })
        }
        Some(b'k') => msg
            .starts_with(b"kex_exchange_identification: ")
            .then(|| Message::new(Kind::KexExchangeIdentification)),
        Some(b'C') => connection_closed(msg),
        Some(b'P') => postponed_or_dropbear_success(msg),
        Some(b'i') => msg
            .strip_prefix(b"input_userauth_request: invalid user ")
            .map(|user| Message::new(Kind::InputUserauthInvalidUser).user(user)),
        Some(b'L') => msg.strip_prefix(b"Login attempt for nonexistent user").and_then(|rest| {
            let (head, peer) = dropbear_tail(rest)?;
            let user = match head {
                b"" => None,
                quoted => Some(strip_quotes(quoted.strip_prefix(b" ")?)?),
            };
            Some(Message { user, ..Message::new(Kind::DropbearNonexistentUser).peer(peer) })
        }),
        Some(b'M' | b'E') => dropbear_max_or_exit(msg),
        _ => None,
    };
    match recognised {
        Some(m) => Classified::Recognised(m),
        None => ignored(msg),
    }
}

/// `Postponed publickey for ...` and Dropbear's `... auth succeeded for '<user>' ...`.
fn postponed_or_dropbear_success(msg: &[u8]) -> Option<Message<'_>> {
    if let Some(rest) = msg.strip_prefix(b"Postponed publickey for ") {
        let m = user_info_tail(rest, true)?;
        Some(Message { kind: Kind::PostponedPublickey, ..m })
    } else if msg.starts_with(b"Password auth succeeded for '") {
        dropbear_user_from(msg, b"Password auth succeeded for ", Kind::DropbearAuthSucceeded)
    } else if let Some(rest) = msg.strip_prefix(b"Pubkey auth succeeded for '") {
        let with = rfind(rest, b"' with ")?;
        let (_, peer) = dropbear_tail(rest)?;
        Some(Message::new(Kind::DropbearAuthSucceeded).user(&rest[..with]).peer(peer))
    } else {
        None
    }
}

/// `error: `, `fatal: `, `error: PAM: ` (and `PAM: `) before the message.
fn strip_level_prefix(msg: &[u8]) -> &[u8] {
    let msg = msg.strip_prefix(b"error: ").or_else(|| msg.strip_prefix(b"fatal: ")).unwrap_or(msg);
    msg.strip_prefix(b"PAM: ").unwrap_or(msg)
}

/// sshd's everyday messages that are neither attacks nor logins.
const IGNORED_PREFIXES: &[&[u8]] = &[
    b"Server listening on ",
    b"Received signal ",
    b"Starting session: ",
    b"Close session: ",
    b"User child is on pid ",
    b"Transferred: ",
    b"Accepted key ",
    b"Postponed ",
    b"PAM ",
    b"pam_",
    b"Disconnecting",
    b"ssh_dispatch_run_fatal: ",
    b"Exiting on signal",
    b"Received SIGHUP",
    b"Timeout, client not responding",
    b"Read error from remote host",
    b"Exit (",
    b"Early exit",
    b"Running in ",
    b"Not backgrounding",
    b"Attempt to write login records",
    b"Starting sshd",
    b"Failed to ",
    b"Accepted certificate ID ",
    b"rexec ",
    b"debug",
    b"Bad packet length",
    b"Corrupted MAC on input",
    b"packet_write_wait",
    b"sshd version ",
    b"Disconnected ",
    // `UsePAM no` and a user that does not exist (the attempt itself is
    // the `Invalid user` / `Failed password` lines around it).
    b"Could not get shadow information for ",
];

fn ignored(msg: &[u8]) -> Classified<'_> {
    // `Connection from <addr> port <n> on <addr> port 22 ...` (LogLevel
    // VERBOSE) and Dropbear's `Child connection from <addr>:<port>` open a
    // connection: their address helps lines that carry none.
    if let Some(rest) = msg.strip_prefix(b"Connection from ") {
        if let Some((peer, _)) = left_addr_port(rest) {
            return Classified::Ignored { source: peer.source };
        }
    }
    if let Some(rest) = msg.strip_prefix(b"Child connection from ") {
        if let Some(peer) = dropbear_peer(rest) {
            return Classified::Ignored { source: peer.source };
        }
    }
    if IGNORED_PREFIXES.iter().any(|p| msg.starts_with(p)) {
        Classified::Ignored { source: None }
    } else {
        Classified::Unrecognised
    }
}

/// `Failed <method> for [invalid user ]<user> from <addr> ...`
fn failed(rest: &[u8]) -> Option<Message<'_>> {
    let (method, invalid, m) = auth_result(rest)?;
    let kind = if method == b"publickey" && !invalid {
        Kind::FailedPublickeyValidUser
    } else {
        Kind::FailedAuth
    };
    Some(Message { kind, ..m })
}

/// `<method> for [invalid user ]<user> from <addr> [port <n>] [ssh2][: <info>]`:
/// returns the method, whether the user was invalid, and the message.
fn auth_result(rest: &[u8]) -> Option<(&[u8], bool, Message<'_>)> {
    let space = memchr::memchr(b' ', rest)?;
    let method = &rest[..space];
    let body = rest[space + 1..].strip_prefix(b"for ")?;
    let (body, invalid) = match body.strip_prefix(b"invalid user ") {
        Some(b) => (b, true),
        None => (body, false),
    };
    let carries_info = matches!(method, b"publickey" | b"hostbased");
    Some((method, invalid, user_info_tail(body, carries_info)?))
}

/// `<user> from <addr> [port <n>] [ssh2][: <info>]`, parsed from the right.
///
/// Only `publickey` and `hostbased` carry `: <info>` after ` ssh2`; their
/// info may embed attacker text (a certificate ID, a client host name), so
/// the address is placed by the rules in the module doc.
fn user_info_tail(body: &[u8], carries_info: bool) -> Option<Message<'_>> {
    let kind = Kind::FailedAuth; // replaced by the caller
    if let Some((user, peer)) = tail(body, b" from", true) {
        return Some(Message::new(kind).user(user).peer(peer));
    }
    if !carries_info {
        return None;
    }
    let mut candidates: Vec<(&[u8], Peer, &[u8])> = Vec::new();
    for at in find_iter(body, b" ssh2: ") {
        if let Some((user, peer)) = tail(&body[..at + 5], b" from", true) {
            candidates.push((user, peer, &body[at + 7..]));
        }
    }
    // Attacker text may sit left of the real tail (the user name) or
    // inside its info (a certificate ID, a client host name), but never in
    // the fixed words sshd writes around them. The real candidate's info
    // is well-formed; a forged one left of it only if the user name copies
    // a whole info; a plain key info (`TYPE FP`) cannot be forged at all.
    let well_formed: Vec<&(&[u8], Peer, &[u8])> =
        candidates.iter().filter(|(_, _, info)| is_well_formed_info(info)).collect();
    let chosen = match well_formed.as_slice() {
        [only] => Some(*only),
        [.., last] if is_plain_key_info(last.2) => Some(*last),
        _ => None,
    };
    match chosen {
        Some((user, peer, _)) => Some(Message::new(kind).user(user).peer(peer.clone())),
        None if !candidates.is_empty() => Some(Message { ambiguous: true, ..Message::new(kind) }),
        None => None,
    }
}

/// The info sshd appends for keys: a plain key, a certificate
/// (`TYPE-CERT FP ID <id> (serial <n>) CA TYPE FP`) or a host-based key
/// (`TYPE FP, client user "<u>", client host "<h>"`).
fn is_well_formed_info(info: &[u8]) -> bool {
    if is_plain_key_info(info) {
        return true;
    }
    let Some(space) = memchr::memchr(b' ', info) else { return false };
    let Some(second) = memchr::memchr(b' ', &info[space + 1..]).map(|s| s + space + 1) else {
        return false;
    };
    let key = &info[..second];
    let rest = &info[second..];
    if info[..space].ends_with(b"-CERT") {
        // Ends with ` (serial <n>) CA <type> <fp>`.
        let Some(serial) = rfind(rest, b" (serial ") else { return false };
        let Some(close) = memchr::memchr(b')', &rest[serial..]).map(|c| c + serial) else {
            return false;
        };
        let ca = &rest[close + 1..];
        return rest.starts_with(b" ID ")
            && is_plain_key_info(key)
            && rest[serial + 9..close].iter().all(u8::is_ascii_digit)
            && ca.strip_prefix(b" CA ").is_some_and(is_plain_key_info);
    }
    let key = key.strip_suffix(b",").unwrap_or(key);
    is_plain_key_info(key)
        && rest.starts_with(b" client user \"")
        && find(rest, b"\", client host \"").is_some()
        && rest.ends_with(b"\"")
}

/// `RSA SHA256:abc...`: a key type and a fingerprint, nothing else.
fn is_plain_key_info(info: &[u8]) -> bool {
    let Some(space) = memchr::memchr(b' ', info) else { return false };
    let (key_type, fingerprint) = (&info[..space], &info[space + 1..]);
    !key_type.is_empty()
        && key_type.iter().all(|&b| b.is_ascii_alphanumeric() || b"-@._".contains(&b))
        && memchr::memchr(b':', fingerprint).is_some()
        && fingerprint.iter().all(|&b| b.is_ascii_alphanumeric() || b"+/=:".contains(&b))
}

/// `[illegal user ]<user> from <addr>[ port <n>]`.
fn user_from_addr(rest: &[u8], kind: Kind) -> Option<Message<'_>> {
    let rest = rest.strip_prefix(b"illegal user ").unwrap_or(rest);
    let (user, peer) = tail(rest, b" from", false)?;
    Some(Message::new(kind).user(user).peer(peer))
}

/// `User <user> from <addr> not allowed because <reason>` and the shapes
/// without address (`account is locked`, `shell ... does not exist`).
fn user_not_allowed(rest: &[u8]) -> Option<Message<'_>> {
    let because = rfind(rest, b" not allowed because ")?;
    let (head, reason) = (&rest[..because], &rest[because + 21..]);
    if reason == b"account is locked" {
        return Some(Message::new(Kind::AccountLocked).user(head));
    }
    match tail(head, b" from", false) {
        Some((user, peer)) if peer.port.is_none() => {
            Some(Message::new(Kind::UserNotAllowed).user(user).peer(peer))
        }
        _ => Some(Message::new(Kind::UserNotAllowed).user(head)),
    }
}

fn disconnecting_or_disconnected(msg: &[u8]) -> Option<Message<'_>> {
    const TOO_MANY: &[u8] = b"Too many authentication failures";
    const CHANGE: &[u8] = b": Change of username or service not allowed: ";
    if let Some(rest) = msg.strip_prefix(b"Disconnecting: ") {
        if let Some(after) = rest.strip_prefix(TOO_MANY) {
            let user = after.strip_prefix(b" for ");
            return Some(Message { user, ..Message::new(Kind::TooManyAuthFailures) });
        }
        if rest.starts_with(&CHANGE[2..]) {
            return Some(Message::new(Kind::UsernameChange));
        }
        return None;
    }
    if let Some(rest) = msg.strip_prefix(b"Disconnecting ") {
        if let Some(head) = rest.strip_suffix(TOO_MANY).and_then(|h| h.strip_suffix(b": ")) {
            let (user, peer) = user_addr_port(head)?;
            return Some(Message { user, ..Message::new(Kind::TooManyAuthFailures).peer(peer) });
        }
        // The user name appears twice (before the address and in the
        // `(user,service)` pair), both attacker-chosen: accept a split
        // only where both copies agree, and only if exactly one does.
        let mut found: Option<Message<'_>> = None;
        let mut count = 0;
        for at in find_iter(rest, CHANGE) {
            let Some((Some(user), peer)) = user_addr_port(&rest[..at]) else { continue };
            let pair = &rest[at + CHANGE.len()..];
            if pair
                .strip_prefix(b"(")
                .is_some_and(|p| p.starts_with(user) && p.get(user.len()) == Some(&b','))
            {
                count += 1;
                found = Some(Message::new(Kind::UsernameChange).user(user).peer(peer));
            }
        }
        return match (count, found) {
            (1, found) => found,
            (0, _) => None,
            _ => Some(Message { ambiguous: true, ..Message::new(Kind::UsernameChange) }),
        };
    }
    if let Some(rest) = msg.strip_prefix(b"Did not receive identification string from ") {
        let (head, peer) = tail(rest, b"", false)?;
        return head.is_empty().then(|| Message::new(Kind::NoIdentification).peer(peer));
    }
    let rest = msg.strip_prefix(b"Disconnected from ")?;
    let (user, peer) = user_addr_port(rest)?;
    let kind = if rest.starts_with(b"invalid user ") || rest.starts_with(b"authenticating user ") {
        Kind::DisconnectedUserPreauth
    } else {
        Kind::Disconnected
    };
    Some(Message { user, ..Message::new(kind).peer(peer) })
}

/// `Connection (closed|reset) by [(invalid|authenticating) user <user> ]<addr> port <n>`.
fn connection_closed(msg: &[u8]) -> Option<Message<'_>> {
    let rest = msg
        .strip_prefix(b"Connection closed by ")
        .or_else(|| msg.strip_prefix(b"Connection reset by "))?;
    let (user, peer) = user_addr_port(rest)?;
    // Without `[preauth]` this is still pre-auth after a failed banner
    // exchange (sshd's listener writes it); after a login the connection
    // tracker turns it into a plain `Disconnected`.
    let kind = if user.is_some() {
        Kind::ConnectionClosedUserPreauth
    } else {
        Kind::ConnectionClosedPreauth
    };
    Some(Message { user, ..Message::new(kind).peer(peer) })
}

/// `[(invalid|authenticating) user <user> |user <user> ]<addr> port <n>`,
/// parsed from the right.
fn user_addr_port(s: &[u8]) -> Option<(Option<&[u8]>, Peer)> {
    let (head, peer) = tail(s, b"", false)?;
    peer.port?;
    if head.is_empty() {
        return Some((None, peer));
    }
    let user = head
        .strip_prefix(b"invalid user ")
        .or_else(|| head.strip_prefix(b"authenticating user "))
        .or_else(|| head.strip_prefix(b"user "))
        .or_else(|| {
            (head == b"invalid user" || head == b"authenticating user").then_some(&b""[..])
        })?;
    Some((Some(user), peer))
}

/// `<addr>[ port <n>]:<code>: <text>` or, older, `<addr>: <code>: <text>`.
fn received_disconnect(rest: &[u8]) -> Option<Message<'_>> {
    let (peer, after) = match left_addr_port(rest) {
        Some((peer, after)) => (peer, after.strip_prefix(b":")?),
        None => {
            let colon = find(rest, b": ")?;
            let source = parse_source(&rest[..colon])?;
            (Peer { source, port: None }, &rest[colon + 2..])
        }
    };
    let after = after.strip_prefix(b" ").unwrap_or(after);
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    let code = &after[..digits];
    let text = after[digits..].strip_prefix(b":")?;
    let kind = match code {
        b"3" if text.ends_with(b"Auth fail") => Kind::AuthFailDisconnect,
        b"14" => Kind::NoSupportedAuthMethods,
        b"" => return None,
        _ => Kind::ReceivedDisconnect,
    };
    Some(Message::new(kind).peer(peer))
}

/// `<host> (<addr>)`.
fn tcp_wrappers(rest: &[u8]) -> Option<Message<'_>> {
    let inner = rest.strip_suffix(b")")?;
    let open = memchr::memrchr(b'(', inner)?;
    let source = parse_source(&inner[open + 1..])?;
    Some(Message::new(Kind::TcpWrappersRefused).peer(Peer { source, port: None }))
}

/// `<host> [<addr>] failed[ - POSSIBLE BREAK-IN ATTEMPT!]`.
fn reverse_mapping(rest: &[u8]) -> Option<Message<'_>> {
    let close = rfind(rest, b"] failed")?;
    let open = memchr::memrchr(b'[', &rest[..close])?;
    let source = parse_source(&rest[open + 1..close])?;
    Some(Message::new(Kind::ReverseMappingFailed).peer(Peer { source, port: None }))
}

/// `<addr> maps to <host>, but this does not map back to the address...`.
fn address_maps(rest: &[u8]) -> Option<Message<'_>> {
    let space = memchr::memchr(b' ', rest)?;
    if !rest[space..].starts_with(b" maps to ") {
        return None;
    }
    let source = parse_source(&rest[..space])?;
    Some(Message::new(Kind::AddressMapMismatch).peer(Peer { source, port: None }))
}

/// `pam_unix(sshd:auth): authentication failure; ... rhost=<addr>[  user=<user>]`
/// and `pam_unix(sshd:session): session opened/closed for user <user>...`.
fn pam_unix(msg: &[u8]) -> Option<Message<'_>> {
    if let Some(rest) = msg.strip_prefix(b"pam_unix(sshd:auth): authentication failure; ") {
        // The fields before rhost are PAM's own (logname, uid, euid, tty,
        // ruser); the attacker's user name comes last.
        let at = find(rest, b"rhost=")?;
        let value = &rest[at + 6..];
        let end = memchr::memchr(b' ', value).unwrap_or(value.len());
        let source = if end == 0 { None } else { parse_source(&value[..end])? };
        let after = &value[end..];
        let user = find(after, b"user=").map(|u| &after[u + 5..]);
        return Some(Message {
            user,
            ..Message::new(Kind::PamUnixAuthFailure).peer(Peer { source, port: None })
        });
    }
    let rest = msg.strip_prefix(b"pam_unix(sshd:session): session ")?;
    let rest = rest
        .strip_prefix(b"opened for user ")
        .or_else(|| rest.strip_prefix(b"closed for user "))?;
    let rest = match rfind(rest, b" by ") {
        Some(by) => &rest[..by],
        None => rest,
    };
    let user = match rfind(rest, b"(uid=") {
        Some(paren) if rest.ends_with(b")") => &rest[..paren],
        _ => rest,
    };
    Some(Message::new(Kind::PamSession).user(user))
}

/// `<prefix>'<user>' from <addr>:<port>` (Dropbear).
fn dropbear_user_from<'a>(msg: &'a [u8], prefix: &[u8], kind: Kind) -> Option<Message<'a>> {
    let rest = msg.strip_prefix(prefix)?;
    let (head, peer) = dropbear_tail(rest)?;
    Some(Message::new(kind).user(strip_quotes(head)?).peer(peer))
}

/// `Max auth tries reached - user '<user>' from <addr>:<port>` (possibly
/// after `Exit before auth (user '<user>', <n> fails): `) and
/// `Exit before auth from <<addr>:<port>>: ...`.
fn dropbear_max_or_exit(msg: &[u8]) -> Option<Message<'_>> {
    const MAX: &[u8] = b"Max auth tries reached - user '";
    if let Some(at) = rfind(msg, MAX) {
        if let Some((head, peer)) = dropbear_tail(&msg[at + MAX.len() - 1..]) {
            if let Some(user) = strip_quotes(head) {
                return Some(Message::new(Kind::DropbearMaxAuthTries).user(user).peer(peer));
            }
        }
    }
    let rest = msg.strip_prefix(b"Exit before auth")?;
    if let Some(inner) = rest.strip_prefix(b" from <") {
        let close = memchr::memchr(b'>', inner)?;
        let peer = dropbear_peer(&inner[..close])?;
        return Some(Message::new(Kind::DropbearExitBeforeAuth).peer(peer));
    }
    // `Exit before auth (user '<user>', <n> fails): ...` has no address.
    Some(Message::new(Kind::DropbearExitBeforeAuth))
}

/// `<head> from <addr>:<port>` at the end, split from the right.
fn dropbear_tail(rest: &[u8]) -> Option<(&[u8], Peer)> {
    let from = rfind(rest, b" from ")?;
    let head = &rest[..from];
    let peer = dropbear_peer(&rest[from + 6..])?;
    Some((head, peer))
}

/// `<addr>:<port>`, split at the last colon; IPv6 bracketed or not.
fn dropbear_peer(s: &[u8]) -> Option<Peer> {
    let colon = memchr::memrchr(b':', s)?;
    let port = parse_port(&s[colon + 1..])?;
    let source = parse_source(&s[..colon])?;
    Some(Peer { source, port: Some(port) })
}

fn strip_quotes(s: &[u8]) -> Option<&[u8]> {
    s.strip_prefix(b"'")?.strip_suffix(b"'")
}

/// Splits `<head><sep> <addr>[ port <n>][ ssh2]` from the right. `sep` is
/// the word before the address (`" from"`), or empty when the head ends
/// right before it. Returns the head (the user name, opaque) and the peer.
fn tail<'a>(s: &'a [u8], sep: &[u8], ssh2: bool) -> Option<(&'a [u8], Peer)> {
    let mut s = s;
    if ssh2 {
        s = s.strip_suffix(b" ssh2").unwrap_or(s);
    }
    let mut port = None;
    if let Some(space) = memchr::memrchr(b' ', s) {
        if let Some(p) = parse_port(&s[space + 1..]) {
            if let Some(before) = s[..space].strip_suffix(b" port") {
                port = Some(p);
                s = before;
            }
        }
    }
    let (head, addr) = match memchr::memrchr(b' ', s) {
        Some(space) => (&s[..space], &s[space + 1..]),
        None => (&b""[..], s),
    };
    let head = if sep.is_empty() { head } else { head.strip_suffix(sep)? };
    let source = parse_source(addr)?;
    Some((head, Peer { source, port }))
}

/// `<addr> port <n>` at the start; returns the rest after the port.
fn left_addr_port(s: &[u8]) -> Option<(Peer, &[u8])> {
    let space = memchr::memchr(b' ', s)?;
    let source = parse_source(&s[..space])?;
    let after = s[space..].strip_prefix(b" port ")?;
    let digits = after.iter().take_while(|b| b.is_ascii_digit()).count();
    let port = parse_port(&after[..digits])?;
    Some((Peer { source, port: Some(port) }, &after[digits..]))
}

fn leading_port(s: &[u8]) -> Option<u16> {
    let digits = s.iter().take_while(|b| b.is_ascii_digit()).count();
    parse_port(&s[..digits])
}

fn parse_port(s: &[u8]) -> Option<u16> {
    if s.is_empty() || s.len() > 5 {
        return None;
    }
    let mut n: u32 = 0;
    for &d in s {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n * 10 + u32::from(d - b'0');
    }
    u16::try_from(n).ok()
}

/// Substring search for sshd's short lines: `memmem` builds a searcher per
/// call, which costs more than scanning a hundred bytes.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    find_iter(haystack, needle).next()
}

fn find_iter<'a>(haystack: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
    let first = needle.first().copied().unwrap_or(0);
    memchr::memchr_iter(first, haystack).filter(move |&i| haystack[i..].starts_with(needle))
}

fn rfind(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = needle.first().copied().unwrap_or(0);
    memchr::memrchr_iter(first, haystack).find(|&i| haystack[i..].starts_with(needle))
}

/// An address as sshd writes it: IPv4, IPv6 (maybe bracketed or with a
/// zone), or a host name (UseDNS). `Some(None)` for sshd's `UNKNOWN`;
/// `None` when it is none of these (then the shape does not match).
pub fn parse_source(token: &[u8]) -> Option<Option<Source>> {
    let token = token.strip_prefix(b"[").and_then(|t| t.strip_suffix(b"]")).unwrap_or(token);
    if token.is_empty() || token.len() > 253 {
        return None;
    }
    if token == b"UNKNOWN" {
        return Some(None);
    }
    if let Some(v4) = parse_ipv4(token) {
        return Some(Some(Source::Addr(IpAddr::V4(v4))));
    }
    let text = std::str::from_utf8(token).ok()?;
    if token.iter().all(|&b| b.is_ascii_hexdigit() || b == b'.' || b == b':' || b == b'%') {
        let without_zone = text.split('%').next().unwrap_or(text);
        if let Ok(addr) = without_zone.parse::<IpAddr>() {
            return Some(Some(Source::Addr(canonical_addr(addr))));
        }
    }
    let is_hostname =
        token.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-' || b == b'_')
            && token.iter().any(u8::is_ascii_alphabetic)
            && !token.starts_with(b"-")
            && !token.starts_with(b".");
    is_hostname.then(|| Some(Source::Hostname(text.to_ascii_lowercase())))
}

/// Dotted-quad IPv4, as strict as the standard library (no leading zeros,
/// four octets), without its UTF-8 round trip: most sources are IPv4.
fn parse_ipv4(token: &[u8]) -> Option<std::net::Ipv4Addr> {
    if token.len() < 7 || token.len() > 15 {
        return None;
    }
    let mut octets = [0u8; 4];
    let mut index = 0;
    let mut value: u32 = 0;
    let mut digits = 0;
    for &b in token {
        if b == b'.' {
            if digits == 0 || index == 3 {
                return None;
            }
            octets[index] = u8::try_from(value).ok()?;
            index += 1;
            value = 0;
            digits = 0;
        } else if b.is_ascii_digit() {
            if digits == 1 && value == 0 {
                return None; // a leading zero
            }
            value = value * 10 + u32::from(b - b'0');
            digits += 1;
            if digits > 3 {
                return None;
            }
        } else {
            return None;
        }
    }
    if index != 3 || digits == 0 {
        return None;
    }
    octets[3] = u8::try_from(value).ok()?;
    Some(std::net::Ipv4Addr::from(octets))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(msg: &str) -> Message<'_> {
        match classify(msg.as_bytes()) {
            Classified::Recognised(m) => m,
            other => panic!("{msg:?}: {other:?}"),
        }
    }

    fn addr(s: &str) -> Option<Source> {
        Some(Source::Addr(s.parse().unwrap()))
    }

    #[test]
    fn injected_address_in_user_name_is_never_the_source() {
        let m = rec("Failed password for invalid user admin from 198.51.100.7 port 22 ssh2 from 203.0.113.9 port 4242 ssh2");
        assert_eq!(m.kind, Kind::FailedAuth);
        assert_eq!(m.source, addr("203.0.113.9"));
        assert_eq!(m.user, Some(&b"admin from 198.51.100.7 port 22 ssh2"[..]));
        assert_eq!(m.port, Some(4242));
        let m = rec("Invalid user x 198.51.100.7 port 1: y from 203.0.113.9 port 5");
        assert_eq!(
            (m.source, m.user),
            (addr("203.0.113.9"), Some(&b"x 198.51.100.7 port 1: y"[..]))
        );
    }

    #[test]
    fn key_info_with_attacker_text_is_placed_or_refused() {
        let m = rec("Failed publickey for invalid user a from 198.51.100.7 port 1 ssh2: RSA SHA256:x from 203.0.113.9 port 22 ssh2: ED25519 SHA256:abc");
        assert_eq!(m.source, addr("203.0.113.9"));
        // A certificate ID imitating the tail is placed by the info's form.
        let m = rec("Failed publickey for invalid user u from 198.51.100.7 port 1 ssh2: RSA SHA256:q from 203.0.113.9 port 22 ssh2: ED25519-CERT SHA256:z ID i from 192.0.2.1 port 3 ssh2: RSA SHA256:w (serial 0) CA ED25519 SHA256:y");
        assert_eq!((m.source, m.ambiguous), (addr("203.0.113.9"), false));
        // When the user name copies a whole certificate info as well,
        // nothing tells them apart: no source rather than a wrong one.
        let m = rec("Failed publickey for invalid user u from 198.51.100.7 port 1 ssh2: ED25519-CERT SHA256:q ID from 203.0.113.9 port 22 ssh2: ED25519-CERT SHA256:z ID i from 192.0.2.1 port 3 ssh2: RSA SHA256:w (serial 0) CA ED25519 SHA256:y");
        assert!(m.ambiguous);
        assert_eq!(m.source, None);
        let m = rec("Accepted publickey for alice from 2001:db8::1 port 22 ssh2: ED25519-CERT SHA256:z ID alice (serial 1) CA ED25519 SHA256:y");
        assert_eq!((m.kind, m.source), (Kind::Accepted, addr("2001:db8::1")));
    }

    #[test]
    fn ipv4_fast_path_agrees_with_the_standard_library() {
        for t in [
            "1.2.3.4",
            "255.255.255.255",
            "0.0.0.0",
            "01.2.3.4",
            "1.2.3",
            "1.2.3.4.5",
            "256.1.1.1",
            "1..2.3",
            "1.2.3.4 ",
            "a.b.c.d",
            "1.2.3.04",
            "999.1.1.1",
        ] {
            assert_eq!(parse_ipv4(t.as_bytes()), t.parse().ok(), "{t}");
        }
    }

    #[test]
    fn everyday_messages_are_known_and_ignored() {
        for msg in [
            "Server listening on 0.0.0.0 port 22.",
            "error: Could not get shadow information for NOUSER",
            "Received disconnect from 198.51.100.7 port 22:11: Bye Bye [preauth]",
        ] {
            assert!(
                matches!(
                    classify(msg.as_bytes()),
                    Classified::Ignored { .. } | Classified::Recognised(_)
                ),
                "{msg}"
            );
        }
        assert!(matches!(classify(b"error: Could not frobnicate"), Classified::Unrecognised));
    }

    #[test]
    fn mapped_and_hostname_sources() {
        assert_eq!(rec("Invalid user a from ::ffff:192.0.2.4 port 5").source, addr("192.0.2.4"));
        let m = rec("Invalid user a from Evil.Example.com port 5");
        assert_eq!(m.source, Some(Source::Hostname("evil.example.com".into())));
        let m = rec("Connection closed by UNKNOWN port 65535 [preauth]");
        assert_eq!((m.kind, m.source), (Kind::ConnectionClosedPreauth, None));
    }
}
