//! The message bodies the corpus writes (after the envelope), one variant
//! per shape, with the [`Kind`] the specification assigns to each.
//!
//! Message texts follow OpenSSH 9.x, Linux-PAM, Dropbear, cron, sudo and
//! systemd-logind as Debian 12 writes them to `/var/log/auth.log`.

use hikeshi_core::Kind;

use crate::envelope::push_u32;

/// The per-connection facts a message refers to.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    /// The address as sshd prints it.
    pub addr: String,
    pub port: u16,
    /// The user name the client sent (attacker-chosen for attacks).
    pub user: String,
    /// The local uid of `user`, for the messages of legitimate sessions.
    pub uid: u32,
}

/// One message body. Fields carry only what varies beyond [`Peer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Msg {
    // ---- sshd, the attacker's side ----
    InvalidUser,
    InputUserauthInvalidUser,
    PamCheckPassUserUnknown,
    PamUnixAuthFailure {
        with_user: bool,
    },
    /// `Failed <method> for [invalid user ]<user> from <addr> port <port> ssh2[: <key>]`
    Failed {
        method: &'static str,
        invalid: bool,
    },
    MaxAuthTries {
        invalid: bool,
    },
    DisconnectingTooManyFailures {
        invalid: bool,
    },
    PamMoreFailures {
        more: u8,
    },
    PamIgnoringMaxRetries {
        tries: u8,
    },
    /// `Received disconnect from <addr> port <port>:<code>: <text>`
    ReceivedDisconnect {
        code: u8,
        text: &'static str,
        preauth: bool,
    },
    DisconnectedUserPreauth {
        invalid: bool,
    },
    ConnectionClosedPreauth,
    /// After `kex_exchange_identification`, the listener writes the close
    /// without `[preauth]`.
    ConnectionClosed,
    ConnectionClosedUser {
        invalid: bool,
        reset: bool,
    },
    KexExchangeIdentification {
        detail: &'static str,
    },
    NoIdentification,
    BannerInvalidFormat,
    BadProtocolVersion {
        offered: &'static str,
    },
    AuthTimeout,
    UnableToNegotiate {
        what: &'static str,
        offer: &'static str,
    },
    MacIncorrect,
    UserNotAllowed {
        reason: &'static str,
    },
    RootLoginRefused,
    ReverseMappingFailed,
    AddressMapMismatch,
    PamAuthFailure {
        invalid: bool,
    },
    PamUserUnknown,
    UsernameChange,
    TcpWrappersRefused,
    AccountLocked,
    // ---- sshd, legitimate sessions ----
    Accepted {
        method: &'static str,
    },
    PostponedPublickey,
    SshdSessionOpened,
    SshdSessionClosed,
    DisconnectedUser,
    // ---- Dropbear ----
    DropbearChildConnection,
    DropbearBadPassword,
    DropbearNonexistentUser,
    DropbearMaxAuthTries,
    DropbearExitBeforeAuth {
        reason: &'static str,
    },
    DropbearPasswordSucceeded,
    DropbearExitNormally,
    // ---- other daemons (the noise of a real auth.log) ----
    CronSessionOpened,
    CronSessionClosed,
    LogindNewSession {
        session: u32,
    },
    LogindLoggedOut {
        session: u32,
    },
    LogindRemoved {
        session: u32,
    },
    SystemdUserSessionOpened,
    SudoCommand {
        command: &'static str,
    },
    SudoSessionOpened,
    SudoSessionClosed,
    SuTo,
    SuSessionOpened,
    SuSessionClosed,
    KernelUfwBlock,
    Static(&'static str),
}

impl Msg {
    /// The kind the specification gives this shape, or `None` for lines
    /// that are not sshd/Dropbear authentication messages.
    pub(crate) fn kind(self) -> Option<Kind> {
        use Msg::*;
        Some(match self {
            InvalidUser => Kind::InvalidUser,
            InputUserauthInvalidUser => Kind::InputUserauthInvalidUser,
            PamUnixAuthFailure { .. } => Kind::PamUnixAuthFailure,
            Failed { method: "publickey", invalid: false } => Kind::FailedPublickeyValidUser,
            Failed { .. } => Kind::FailedAuth,
            MaxAuthTries { .. } => Kind::MaxAuthTries,
            DisconnectingTooManyFailures { .. } => Kind::TooManyAuthFailures,
            ReceivedDisconnect { code: 3, .. } => Kind::AuthFailDisconnect,
            ReceivedDisconnect { code: 14, .. } => Kind::NoSupportedAuthMethods,
            ReceivedDisconnect { .. } => Kind::ReceivedDisconnect,
            DisconnectedUserPreauth { .. } => Kind::DisconnectedUserPreauth,
            // Without `[preauth]` (sshd's listener after a failed banner
            // exchange) it is still a pre-auth close: the corpus writes it
            // only for connections that never logged in.
            ConnectionClosedPreauth | ConnectionClosed => Kind::ConnectionClosedPreauth,
            ConnectionClosedUser { .. } => Kind::ConnectionClosedUserPreauth,
            KexExchangeIdentification { .. } => Kind::KexExchangeIdentification,
            NoIdentification => Kind::NoIdentification,
            BannerInvalidFormat => Kind::BannerInvalidFormat,
            BadProtocolVersion { .. } => Kind::BadProtocolVersion,
            AuthTimeout => Kind::AuthTimeout,
            UnableToNegotiate { .. } => Kind::UnableToNegotiate,
            MacIncorrect => Kind::MacIncorrect,
            UserNotAllowed { .. } => Kind::UserNotAllowed,
            RootLoginRefused => Kind::RootLoginRefused,
            ReverseMappingFailed => Kind::ReverseMappingFailed,
            AddressMapMismatch => Kind::AddressMapMismatch,
            PamAuthFailure { .. } => Kind::PamAuthFailure,
            PamUserUnknown => Kind::PamUserUnknown,
            UsernameChange => Kind::UsernameChange,
            TcpWrappersRefused => Kind::TcpWrappersRefused,
            AccountLocked => Kind::AccountLocked,
            Accepted { .. } => Kind::Accepted,
            PostponedPublickey => Kind::PostponedPublickey,
            SshdSessionOpened | SshdSessionClosed => Kind::PamSession,
            DisconnectedUser => Kind::Disconnected,
            DropbearBadPassword => Kind::DropbearBadPassword,
            DropbearNonexistentUser => Kind::DropbearNonexistentUser,
            DropbearMaxAuthTries => Kind::DropbearMaxAuthTries,
            DropbearExitBeforeAuth { .. } => Kind::DropbearExitBeforeAuth,
            DropbearPasswordSucceeded => Kind::DropbearAuthSucceeded,
            PamCheckPassUserUnknown
            | PamMoreFailures { .. }
            | PamIgnoringMaxRetries { .. }
            | DropbearChildConnection
            | DropbearExitNormally
            | CronSessionOpened
            | CronSessionClosed
            | LogindNewSession { .. }
            | LogindLoggedOut { .. }
            | LogindRemoved { .. }
            | SystemdUserSessionOpened
            | SudoCommand { .. }
            | SudoSessionOpened
            | SudoSessionClosed
            | SuTo
            | SuSessionOpened
            | SuSessionClosed
            | KernelUfwBlock
            | Static(_) => return None,
        })
    }

    /// True for the lines `grep -c 'Failed password'` counts.
    pub(crate) fn is_failed_password(self) -> bool {
        matches!(self, Msg::Failed { method: "password", .. })
    }
}

/// A short, stable stand-in for a key fingerprint, derived from the user
/// name so that one user always shows the same key.
fn push_fingerprint(out: &mut Vec<u8>, user: &str) {
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in user.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    out.extend_from_slice(b"ED25519 SHA256:");
    for _ in 0..43 {
        h ^= h >> 29;
        h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
        out.push(B64[(h >> 58) as usize]);
    }
}

/// A reverse-DNS name for an address, as a dynamic-pool provider would
/// publish it.
fn push_reverse_name(out: &mut Vec<u8>, addr: &str) {
    out.extend_from_slice(b"host-");
    out.extend(addr.bytes().map(|b| if b == b'.' || b == b':' { b'-' } else { b }));
    out.extend_from_slice(b".dyn.example.net");
}

struct W<'a>(&'a mut Vec<u8>);

impl W<'_> {
    fn s(&mut self, s: &str) -> &mut Self {
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn n(&mut self, v: u32) -> &mut Self {
        push_u32(self.0, v);
        self
    }
    fn invalid(&mut self, invalid: bool, word: &str) -> &mut Self {
        if invalid {
            self.s(word);
        }
        self
    }
}

/// Appends the body of `msg` about `peer` (no newline).
pub(crate) fn render(out: &mut Vec<u8>, msg: Msg, peer: &Peer) {
    use Msg::*;
    let user = peer.user.as_str();
    let addr = peer.addr.as_str();
    let port = u32::from(peer.port);
    let mut w = W(out);
    match msg {
        InvalidUser => {
            w.s("Invalid user ").s(user).s(" from ").s(addr).s(" port ").n(port);
        }
        InputUserauthInvalidUser => {
            w.s("input_userauth_request: invalid user ").s(user).s(" [preauth]");
        }
        PamCheckPassUserUnknown => {
            w.s("pam_unix(sshd:auth): check pass; user unknown");
        }
        PamUnixAuthFailure { with_user } => {
            w.s("pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser= rhost=")
                .s(addr);
            if with_user {
                w.s("  user=").s(user);
            }
        }
        Failed { method, invalid } => {
            w.s("Failed ").s(method).s(" for ").invalid(invalid, "invalid user ");
            w.s(user).s(" from ").s(addr).s(" port ").n(port).s(" ssh2");
            if method == "publickey" {
                w.s(": ");
                push_fingerprint(w.0, user);
            }
        }
        MaxAuthTries { invalid } => {
            w.s("error: maximum authentication attempts exceeded for ")
                .invalid(invalid, "invalid user ")
                .s(user)
                .s(" from ")
                .s(addr)
                .s(" port ")
                .n(port)
                .s(" ssh2 [preauth]");
        }
        DisconnectingTooManyFailures { invalid } => {
            w.s("Disconnecting ")
                .s(if invalid { "invalid" } else { "authenticating" })
                .s(" user ")
                .s(user)
                .s(" ")
                .s(addr)
                .s(" port ")
                .n(port)
                .s(": Too many authentication failures [preauth]");
        }
        PamMoreFailures { more } => {
            w.s("PAM ")
                .n(u32::from(more))
                .s(" more authentication failures; logname= uid=0 euid=0 tty=ssh ruser= rhost=")
                .s(addr)
                .s("  user=")
                .s(user);
        }
        PamIgnoringMaxRetries { tries } => {
            w.s("PAM service(sshd) ignoring max retries; ").n(u32::from(tries)).s(" > 3");
        }
        ReceivedDisconnect { code, text, preauth } => {
            w.s("Received disconnect from ").s(addr).s(" port ").n(port).s(":");
            w.n(u32::from(code)).s(": ").s(text);
            if preauth {
                w.s(" [preauth]");
            }
        }
        DisconnectedUserPreauth { invalid } => {
            w.s("Disconnected from ")
                .s(if invalid { "invalid" } else { "authenticating" })
                .s(" user ")
                .s(user)
                .s(" ")
                .s(addr)
                .s(" port ")
                .n(port)
                .s(" [preauth]");
        }
        ConnectionClosedPreauth => {
            w.s("Connection closed by ").s(addr).s(" port ").n(port).s(" [preauth]");
        }
        ConnectionClosed => {
            w.s("Connection closed by ").s(addr).s(" port ").n(port);
        }
        ConnectionClosedUser { invalid, reset } => {
            w.s(if reset { "Connection reset by " } else { "Connection closed by " })
                .s(if invalid { "invalid" } else { "authenticating" })
                .s(" user ")
                .s(user)
                .s(" ")
                .s(addr)
                .s(" port ")
                .n(port)
                .s(" [preauth]");
        }
        KexExchangeIdentification { detail } => {
            w.s("error: kex_exchange_identification: ").s(detail);
        }
        NoIdentification => {
            w.s("Did not receive identification string from ").s(addr).s(" port ").n(port);
        }
        BannerInvalidFormat => {
            w.s("banner exchange: Connection from ").s(addr).s(" port ").n(port);
            w.s(": invalid format");
        }
        BadProtocolVersion { offered } => {
            w.s("Bad protocol version identification '").s(offered).s("' from ").s(addr);
            w.s(" port ").n(port);
        }
        AuthTimeout => {
            w.s("fatal: Timeout before authentication for ").s(addr).s(" port ").n(port);
        }
        UnableToNegotiate { what, offer } => {
            w.s("Unable to negotiate with ").s(addr).s(" port ").n(port).s(": no matching ");
            w.s(what).s(" found. Their offer: ").s(offer).s(" [preauth]");
        }
        MacIncorrect => {
            w.s("ssh_dispatch_run_fatal: Connection from ").s(addr).s(" port ").n(port);
            w.s(": message authentication code incorrect [preauth]");
        }
        UserNotAllowed { reason } => {
            w.s("User ").s(user).s(" from ").s(addr).s(" not allowed because ").s(reason);
        }
        RootLoginRefused => {
            w.s("ROOT LOGIN REFUSED FROM ").s(addr).s(" port ").n(port);
        }
        ReverseMappingFailed => {
            w.s("reverse mapping checking getaddrinfo for ");
            push_reverse_name(w.0, addr);
            w.s(" [").s(addr).s("] failed - POSSIBLE BREAK-IN ATTEMPT!");
        }
        AddressMapMismatch => {
            w.s("Address ").s(addr).s(" maps to ");
            push_reverse_name(w.0, addr);
            w.s(", but this does not map back to the address - POSSIBLE BREAK-IN ATTEMPT!");
        }
        PamAuthFailure { invalid } => {
            w.s("error: PAM: Authentication failure for ").invalid(invalid, "illegal user ");
            w.s(user).s(" from ").s(addr);
        }
        PamUserUnknown => {
            w.s("error: PAM: User not known to the underlying authentication module for illegal user ")
                .s(user)
                .s(" from ")
                .s(addr);
        }
        UsernameChange => {
            w.s("Disconnecting invalid user ").s(user).s(" ").s(addr).s(" port ").n(port);
            w.s(": Change of username or service not allowed: (").s(user);
            w.s(",ssh-connection) -> (admin,ssh-connection) [preauth]");
        }
        TcpWrappersRefused => {
            w.s("refused connect from ");
            push_reverse_name(w.0, addr);
            w.s(" (").s(addr).s(")");
        }
        AccountLocked => {
            w.s("User ").s(user).s(" not allowed because account is locked");
        }
        Accepted { method } => {
            w.s("Accepted ").s(method).s(" for ").s(user).s(" from ").s(addr);
            w.s(" port ").n(port).s(" ssh2");
            if method == "publickey" {
                w.s(": ");
                push_fingerprint(w.0, user);
            }
        }
        PostponedPublickey => {
            w.s("Postponed publickey for ").s(user).s(" from ").s(addr).s(" port ").n(port);
            w.s(" ssh2 [preauth]");
        }
        SshdSessionOpened => {
            w.s("pam_unix(sshd:session): session opened for user ").s(user).s("(uid=");
            w.n(peer.uid).s(") by (uid=0)");
        }
        SshdSessionClosed => {
            w.s("pam_unix(sshd:session): session closed for user ").s(user);
        }
        DisconnectedUser => {
            w.s("Disconnected from user ").s(user).s(" ").s(addr).s(" port ").n(port);
        }
        DropbearChildConnection => {
            w.s("Child connection from ").s(addr).s(":").n(port);
        }
        DropbearBadPassword => {
            w.s("Bad password attempt for '").s(user).s("' from ").s(addr).s(":").n(port);
        }
        DropbearNonexistentUser => {
            w.s("Login attempt for nonexistent user '").s(user).s("' from ").s(addr);
            w.s(":").n(port);
        }
        DropbearMaxAuthTries => {
            w.s("Max auth tries reached - user '").s(user).s("' from ").s(addr).s(":").n(port);
        }
        DropbearExitBeforeAuth { reason } => {
            w.s("Exit before auth from <").s(addr).s(":").n(port).s(">: ").s(reason);
        }
        DropbearPasswordSucceeded => {
            w.s("Password auth succeeded for '").s(user).s("' from ").s(addr).s(":").n(port);
        }
        DropbearExitNormally => {
            w.s("Exit (").s(user).s(") from <").s(addr).s(":").n(port).s(">: Exited normally");
        }
        CronSessionOpened => {
            w.s("pam_unix(cron:session): session opened for user ").s(user).s("(uid=");
            w.n(peer.uid).s(") by (uid=0)");
        }
        CronSessionClosed => {
            w.s("pam_unix(cron:session): session closed for user ").s(user);
        }
        LogindNewSession { session } => {
            w.s("New session ").n(session).s(" of user ").s(user).s(".");
        }
        LogindLoggedOut { session } => {
            w.s("Session ").n(session).s(" logged out. Waiting for processes to exit.");
        }
        LogindRemoved { session } => {
            w.s("Removed session ").n(session).s(".");
        }
        SystemdUserSessionOpened => {
            w.s("pam_unix(systemd-user:session): session opened for user ").s(user).s("(uid=");
            w.n(peer.uid).s(") by (uid=0)");
        }
        SudoCommand { command } => {
            w.s("   ").s(user).s(" : TTY=pts/0 ; PWD=/home/").s(user);
            w.s(" ; USER=root ; COMMAND=").s(command);
        }
        SudoSessionOpened => {
            w.s("pam_unix(sudo:session): session opened for user root(uid=0) by ").s(user);
            w.s("(uid=").n(peer.uid).s(")");
        }
        SudoSessionClosed => {
            w.s("pam_unix(sudo:session): session closed for user root");
        }
        SuTo => {
            w.s("(to root) ").s(user).s(" on pts/1");
        }
        SuSessionOpened => {
            w.s("pam_unix(su-l:session): session opened for user root(uid=0) by ").s(user);
            w.s("(uid=").n(peer.uid).s(")");
        }
        SuSessionClosed => {
            w.s("pam_unix(su-l:session): session closed for user root");
        }
        KernelUfwBlock => {
            // The kernel's own time stamp is fixed: it is noise, not data.
            w.s("[UFW BLOCK] IN=eth0 OUT= MAC=52:54:00:12:34:56:52:54:00:65:43:21:08:00 SRC=")
                .s(addr)
                .s(" DST=192.0.2.10 LEN=44 TOS=0x00 PREC=0x00 TTL=243 ID=54321 PROTO=TCP SPT=")
                .n(port)
                .s(" DPT=23 WINDOW=1024 RES=0x00 SYN URGP=0");
        }
        Static(text) => {
            w.s(text);
        }
    }
}
