//! The vocabulary of authentication events: what sshd said happened
//! ([`Kind`]), what that means for detection in a given [`Mode`]
//! ([`Outcome`]), and who did it ([`Source`]).
//!
//! Everything downstream of the parser (detection, incidents, reports)
//! speaks in these types. They carry no raw log text except the opaque,
//! attacker-chosen user name.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// Which message kinds count as failures. The names follow fail2ban's sshd
/// filter modes so that users can carry their tuning over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Authentication failures only (the default).
    #[default]
    Normal,
    /// Also pre-authentication noise: scanners and broken clients.
    Ddos,
    /// Also negotiation failures.
    Extra,
    /// Every mode at once.
    Aggressive,
}

impl Mode {
    pub const ALL: [Mode; 4] = [Mode::Normal, Mode::Ddos, Mode::Extra, Mode::Aggressive];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Normal => "normal",
            Mode::Ddos => "ddos",
            Mode::Extra => "extra",
            Mode::Aggressive => "aggressive",
        }
    }

    fn counts_preauth_noise(self) -> bool {
        matches!(self, Mode::Ddos | Mode::Aggressive)
    }

    fn counts_negotiation(self) -> bool {
        matches!(self, Mode::Extra | Mode::Aggressive)
    }
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Mode::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| {
            format!("unknown mode {s:?}: expected normal, ddos, extra or aggressive")
        })
    }
}

/// What an event means for detection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Counts toward a ban.
    Failure,
    /// A failure only in context (pam_unix): resolved by the connection
    /// tracker into `Failure` or dropped.
    Pending,
    /// A successful login.
    Success,
    /// Recognised, but neither failure nor success in this mode.
    Context,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Failure => "failure",
            Outcome::Pending => "pending",
            Outcome::Success => "success",
            Outcome::Context => "context",
        }
    }
}

/// Every message shape of `sshd-messages.md`, one variant per meaning.
///
/// The `as_str` names are stable: they appear in `hikeshi parse` output,
/// in the store and in reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    // Failures in every mode.
    /// `Failed <method> for [invalid user ]<user> from <addr> ...`
    FailedAuth,
    /// `Failed publickey for <existing user> ...`: clients try several keys
    /// in turn, so this is normal and counts only in `aggressive` mode.
    FailedPublickeyValidUser,
    /// `Invalid user <user> from <addr>` / `Illegal user ...`
    InvalidUser,
    /// `error: PAM: Authentication failure for ... from <addr>`
    PamAuthFailure,
    /// `error: PAM: User not known to the underlying authentication module for ...`
    PamUserUnknown,
    /// `User <user> from <addr> not allowed because <reason>`
    UserNotAllowed,
    /// `ROOT LOGIN REFUSED FROM <addr>`
    RootLoginRefused,
    /// `error: maximum authentication attempts exceeded for ...`
    MaxAuthTries,
    /// `Disconnecting (invalid|authenticating) user ...: Change of username or service not allowed`
    UsernameChange,
    /// `refused connect from <host> (<addr>)` (tcp_wrappers)
    TcpWrappersRefused,
    /// `Received disconnect from <addr> ...:3: ...: Auth fail [preauth]`
    AuthFailDisconnect,
    /// `Disconnecting: Too many authentication failures` (no address: needs the connection)
    TooManyAuthFailures,
    /// `User <user> not allowed because account is locked` (no address)
    AccountLocked,

    // Pending.
    /// `pam_unix(sshd:auth): authentication failure; ... rhost=<addr>`
    PamUnixAuthFailure,

    // Pre-authentication noise: failures in `ddos` mode.
    /// `Did not receive identification string from <addr>`
    NoIdentification,
    /// `Timeout before authentication for <addr>`
    AuthTimeout,
    /// `Bad protocol version identification '<text>' from <addr>`
    BadProtocolVersion,
    /// `banner exchange: Connection from <addr> port <port>: invalid format`
    BannerInvalidFormat,
    /// `ssh_dispatch_run_fatal: Connection from <addr> ...: message authentication code incorrect`
    MacIncorrect,
    /// `kex_exchange_identification: ...` (no address: needs the connection)
    KexExchangeIdentification,
    /// `Connection closed by <addr> port <port> [preauth]`
    ConnectionClosedPreauth,
    /// `Connection (closed|reset) by (invalid|authenticating) user <user> <addr> port <port> [preauth]`
    ConnectionClosedUserPreauth,

    // Negotiation failures: failures in `extra` mode.
    /// `Unable to negotiate with <addr> port <port>: no matching ... found`
    UnableToNegotiate,
    /// `Received disconnect from <addr> ...:14: No supported authentication methods available`
    NoSupportedAuthMethods,
    /// `Disconnected from (invalid|authenticating) user <user> <addr> port <port> [preauth]`
    DisconnectedUserPreauth,

    // Success.
    /// `Accepted <method> for <user> from <addr> port <port> ssh2`
    Accepted,

    // Never a failure.
    /// `reverse mapping checking getaddrinfo for <host> [<addr>] failed - POSSIBLE BREAK-IN ATTEMPT!`
    ReverseMappingFailed,
    /// `Address <addr> maps to <host>, but this does not map back to the address`
    AddressMapMismatch,
    /// `Postponed publickey for <user> from <addr> ...`
    PostponedPublickey,
    /// `input_userauth_request: invalid user <user> [preauth]`
    InputUserauthInvalidUser,
    /// `pam_unix(sshd:session): session opened/closed ...`
    PamSession,
    /// `Received disconnect from <addr> ...:11: ...` (a normal goodbye)
    ReceivedDisconnect,
    /// `Disconnected from [user <user> ]<addr> port <port>` after a session.
    Disconnected,

    // Dropbear.
    /// `Bad password attempt for '<user>' from <addr>:<port>`
    DropbearBadPassword,
    /// `Login attempt for nonexistent user ['<user>' ]from <addr>:<port>`
    DropbearNonexistentUser,
    /// `Max auth tries reached - user '<user>' from <addr>:<port>`
    DropbearMaxAuthTries,
    /// `Password auth succeeded ...` / `Pubkey auth succeeded ...`
    DropbearAuthSucceeded,
    /// `Exit before auth from <<addr>:<port>>: ...`
    DropbearExitBeforeAuth,
}

impl Kind {
    /// All kinds, in declaration order. The corpus test checks that every
    /// one of them has samples.
    pub const ALL: &'static [Kind] = &[
        Kind::FailedAuth,
        Kind::FailedPublickeyValidUser,
        Kind::InvalidUser,
        Kind::PamAuthFailure,
        Kind::PamUserUnknown,
        Kind::UserNotAllowed,
        Kind::RootLoginRefused,
        Kind::MaxAuthTries,
        Kind::UsernameChange,
        Kind::TcpWrappersRefused,
        Kind::AuthFailDisconnect,
        Kind::TooManyAuthFailures,
        Kind::AccountLocked,
        Kind::PamUnixAuthFailure,
        Kind::NoIdentification,
        Kind::AuthTimeout,
        Kind::BadProtocolVersion,
        Kind::BannerInvalidFormat,
        Kind::MacIncorrect,
        Kind::KexExchangeIdentification,
        Kind::ConnectionClosedPreauth,
        Kind::ConnectionClosedUserPreauth,
        Kind::UnableToNegotiate,
        Kind::NoSupportedAuthMethods,
        Kind::DisconnectedUserPreauth,
        Kind::Accepted,
        Kind::ReverseMappingFailed,
        Kind::AddressMapMismatch,
        Kind::PostponedPublickey,
        Kind::InputUserauthInvalidUser,
        Kind::PamSession,
        Kind::ReceivedDisconnect,
        Kind::Disconnected,
        Kind::DropbearBadPassword,
        Kind::DropbearNonexistentUser,
        Kind::DropbearMaxAuthTries,
        Kind::DropbearAuthSucceeded,
        Kind::DropbearExitBeforeAuth,
    ];

    /// The stable snake_case name used in output and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FailedAuth => "failed_auth",
            Kind::FailedPublickeyValidUser => "failed_publickey_valid_user",
            Kind::InvalidUser => "invalid_user",
            Kind::PamAuthFailure => "pam_auth_failure",
            Kind::PamUserUnknown => "pam_user_unknown",
            Kind::UserNotAllowed => "user_not_allowed",
            Kind::RootLoginRefused => "root_login_refused",
            Kind::MaxAuthTries => "max_auth_tries",
            Kind::UsernameChange => "username_change",
            Kind::TcpWrappersRefused => "tcp_wrappers_refused",
            Kind::AuthFailDisconnect => "auth_fail_disconnect",
            Kind::TooManyAuthFailures => "too_many_auth_failures",
            Kind::AccountLocked => "account_locked",
            Kind::PamUnixAuthFailure => "pam_unix_auth_failure",
            Kind::NoIdentification => "no_identification",
            Kind::AuthTimeout => "auth_timeout",
            Kind::BadProtocolVersion => "bad_protocol_version",
            Kind::BannerInvalidFormat => "banner_invalid_format",
            Kind::MacIncorrect => "mac_incorrect",
            Kind::KexExchangeIdentification => "kex_exchange_identification",
            Kind::ConnectionClosedPreauth => "connection_closed_preauth",
            Kind::ConnectionClosedUserPreauth => "connection_closed_user_preauth",
            Kind::UnableToNegotiate => "unable_to_negotiate",
            Kind::NoSupportedAuthMethods => "no_supported_auth_methods",
            Kind::DisconnectedUserPreauth => "disconnected_user_preauth",
            Kind::Accepted => "accepted",
            Kind::ReverseMappingFailed => "reverse_mapping_failed",
            Kind::AddressMapMismatch => "address_map_mismatch",
            Kind::PostponedPublickey => "postponed_publickey",
            Kind::InputUserauthInvalidUser => "input_userauth_invalid_user",
            Kind::PamSession => "pam_session",
            Kind::ReceivedDisconnect => "received_disconnect",
            Kind::Disconnected => "disconnected",
            Kind::DropbearBadPassword => "dropbear_bad_password",
            Kind::DropbearNonexistentUser => "dropbear_nonexistent_user",
            Kind::DropbearMaxAuthTries => "dropbear_max_auth_tries",
            Kind::DropbearAuthSucceeded => "dropbear_auth_succeeded",
            Kind::DropbearExitBeforeAuth => "dropbear_exit_before_auth",
        }
    }

    /// Parses the stable name back (for stored events and corpus files).
    pub fn from_name(name: &str) -> Option<Kind> {
        Kind::ALL.iter().copied().find(|k| k.as_str() == name)
    }

    /// What this kind means in `mode`. This table is the specification's
    /// "Failures / Pending / Pre-auth noise / Negotiation / Success / Never
    /// a failure" sections, in one place.
    pub fn outcome(self, mode: Mode) -> Outcome {
        use Kind::*;
        match self {
            FailedAuth
            | InvalidUser
            | PamAuthFailure
            | PamUserUnknown
            | UserNotAllowed
            | RootLoginRefused
            | MaxAuthTries
            | UsernameChange
            | TcpWrappersRefused
            | AuthFailDisconnect
            | TooManyAuthFailures
            | AccountLocked
            | DropbearBadPassword
            | DropbearNonexistentUser
            | DropbearMaxAuthTries => Outcome::Failure,
            FailedPublickeyValidUser => {
                if mode == Mode::Aggressive {
                    Outcome::Failure
                } else {
                    Outcome::Context
                }
            }
            PamUnixAuthFailure => Outcome::Pending,
            NoIdentification
            | AuthTimeout
            | BadProtocolVersion
            | BannerInvalidFormat
            | MacIncorrect
            | KexExchangeIdentification
            | ConnectionClosedPreauth
            | ConnectionClosedUserPreauth => {
                if mode.counts_preauth_noise() {
                    Outcome::Failure
                } else {
                    Outcome::Context
                }
            }
            UnableToNegotiate | NoSupportedAuthMethods | DisconnectedUserPreauth => {
                if mode.counts_negotiation() {
                    Outcome::Failure
                } else {
                    Outcome::Context
                }
            }
            Accepted | DropbearAuthSucceeded => Outcome::Success,
            ReverseMappingFailed
            | AddressMapMismatch
            | PostponedPublickey
            | InputUserauthInvalidUser
            | PamSession
            | ReceivedDisconnect
            | Disconnected
            | DropbearExitBeforeAuth => Outcome::Context,
        }
    }

    /// Kinds whose line carries no address: the source comes from another
    /// line of the same connection (sshd PID).
    pub fn needs_connection(self) -> bool {
        matches!(
            self,
            Kind::TooManyAuthFailures | Kind::AccountLocked | Kind::KexExchangeIdentification
        )
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who an event comes from, exactly as sshd wrote it in the fixed position.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Source {
    /// An address, in canonical form (IPv4-mapped IPv6 is stored as IPv4).
    Addr(IpAddr),
    /// A host name written where the address belongs (sshd with `UseDNS
    /// yes`). It is attacker-influenced (reverse DNS), so it is never
    /// resolved and never banned by default: it is kept and marked
    /// unresolved.
    Hostname(String),
}

impl Source {
    /// The address, if this source is one.
    pub fn addr(&self) -> Option<IpAddr> {
        match self {
            Source::Addr(a) => Some(*a),
            Source::Hostname(_) => None,
        }
    }

    /// True for a host name that was not (and will not be) resolved.
    pub fn is_unresolved(&self) -> bool {
        matches!(self, Source::Hostname(_))
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Addr(a) => write!(f, "{a}"),
            Source::Hostname(h) => f.write_str(h),
        }
    }
}

/// Converts an address to its canonical form: an IPv4-mapped IPv6 address
/// (`::ffff:1.2.3.4`) is the IPv4 address it maps.
pub fn canonical_addr(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(v6),
        },
        v4 => v4,
    }
}

/// One recognised sshd (or Dropbear) log line, with its meaning resolved
/// for the configured [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthEvent {
    /// When sshd logged it (the log's timestamp, never the arrival time).
    pub time: Timestamp,
    /// The host from the syslog header, or from configuration (path).
    /// Shared (`Arc`): every event of a log repeats the same few names, so
    /// the parser converts each once instead of allocating per event.
    pub host: Option<Arc<str>>,
    /// `sshd`, `sshd-session`, `sshd-auth`, `dropbear`, ... (shared too).
    pub process: Arc<str>,
    /// The PID from `sshd[PID]`: identifies one connection.
    pub pid: Option<u32>,
    pub kind: Kind,
    pub outcome: Outcome,
    /// `None` only when no line of the connection revealed an address.
    pub source: Option<Source>,
    /// The user name sshd logged: attacker-chosen, opaque, never parsed.
    /// Bytes that are not UTF-8 are replaced (U+FFFD).
    pub user: Option<String>,
    pub port: Option<u16>,
}

/// How bad something is. Ordered: `Low < Medium < High < Critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Low,
    Medium,
    High,
    /// A possible compromise (e.g. a success after many failures).
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] =
        [Severity::Low, Severity::Medium, Severity::High, Severity::Critical];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| {
            format!("unknown severity {s:?}: expected low, medium, high or critical")
        })
    }
}
