//! Scripts of whole connections and daemon activities: an attack session,
//! a legitimate login, a cron job. Each is a short list of lines sharing one
//! PID (and one address and port), which the generator interleaves with
//! the other sessions open at the same time.

use crate::envelope::Origin;
use crate::message::{Msg, Peer};
use crate::rng::Rng;

/// Which share of the corpus a session belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Lines of hostile connections (guessing, scanning).
    Attack,
    /// Lines of legitimate logins and their sessions.
    Legit,
    /// Other daemons (cron, sudo, su, systemd, kernel).
    Noise,
}

/// One line waiting to be written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Step {
    pub origin: Origin,
    pub msg: Msg,
}

/// A connection or activity in progress.
#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub peer: Peer,
    /// The lines still to write, last first (so that `pop` yields them in
    /// order).
    pending: Vec<Step>,
}

impl Session {
    /// The next line, or `None` once the session is over.
    pub fn pop(&mut self) -> Option<Step> {
        self.pending.pop()
    }

    pub fn is_done(&self) -> bool {
        self.pending.is_empty()
    }
}

/// Syslog priorities: auth.info (sshd), authpriv.info (PAM-using daemons),
/// authpriv.notice (sudo), kern.warning.
const AUTH_INFO: u8 = 38;
const AUTHPRIV_INFO: u8 = 86;
const AUTHPRIV_NOTICE: u8 = 85;
const KERN_WARNING: u8 = 4;

/// User names from real brute-force dictionaries.
pub(crate) const DICTIONARY: &[&str] = &[
    "admin",
    "test",
    "user",
    "oracle",
    "postgres",
    "ubuntu",
    "git",
    "ftpuser",
    "pi",
    "guest",
    "deploy",
    "support",
    "mysql",
    "www",
    "www-data",
    "jenkins",
    "hadoop",
    "tomcat",
    "nagios",
    "dev",
    "developer",
    "minecraft",
    "steam",
    "teamspeak",
    "ts3",
    "student",
    "demo",
    "backup",
    "info",
    "operator",
    "web",
    "server",
    "ansible",
    "docker",
    "elastic",
    "es",
    "kafka",
    "redis",
    "zabbix",
    "odoo",
    "sftp",
    "ftp",
    "test1",
    "test2",
    "user1",
    "admin1",
    "administrator",
    "centos",
    "debian",
    "ec2-user",
    "azureuser",
    "vagrant",
    "sysadmin",
    "hdfs",
    "spark",
    "ubnt",
    "solana",
    "sol",
    "validator",
    "node",
    "gitlab-runner",
    "testuser",
    "apache",
    "nginx",
];

/// Attacker-chosen names that imitate the fixed parts of a line.
pub(crate) const HOSTILE: &[&str] = &[
    "admin from 192.0.2.1 port 22 ssh2",
    "x 192.0.2.1 port 1: y",
    "root from 192.0.2.1",
    "invalid user root from 192.0.2.1 port 2222",
    "\\033[2J\\033[H",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
];

/// Local accounts that log in legitimately: (name, uid).
pub(crate) const LOCAL_USERS: &[(&str, u32)] =
    &[("alice", 1000), ("bob", 1001), ("carol", 1002), ("deploy", 1003), ("backup", 1004)];

const SUDO_COMMANDS: &[&str] = &[
    "/usr/bin/apt update",
    "/usr/bin/systemctl restart nginx",
    "/usr/bin/journalctl -u ssh",
    "/usr/bin/tail -f /var/log/syslog",
    "/usr/sbin/nft list ruleset",
];

const KEX_DETAILS: &[&str] = &[
    "Connection closed by remote host",
    "read: Connection reset by peer",
    "banner line contains invalid characters",
    "client sent invalid protocol identifier \"GET / HTTP/1.1\"",
];

const NEGOTIATION: &[(&str, &str)] = &[
    (
        "key exchange method",
        "diffie-hellman-group14-sha1,diffie-hellman-group-exchange-sha1,diffie-hellman-group1-sha1",
    ),
    ("host key type", "ssh-rsa,ssh-dss"),
    ("cipher", "aes128-cbc,3des-cbc,aes256-cbc"),
];

const NOT_ALLOWED_REASONS: &[&str] = &[
    "not listed in AllowUsers",
    "listed in DenyUsers",
    "none of user's groups are listed in AllowGroups",
];

/// What kind of attacker an address is: it decides which sessions it opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Profile {
    /// Tries names from a dictionary (mostly invalid users).
    Dictionary,
    /// Guesses root's password.
    RootGuesser,
    /// Scans: connects, looks at the banner, leaves.
    Scanner,
    /// A client library (JSch, paramiko) that disconnects on failure.
    Library,
}

impl Profile {
    pub(crate) fn of(attacker_index: u64, ipv6: bool) -> Profile {
        let h = attacker_index.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ u64::from(ipv6);
        match (h >> 60) % 8 {
            0..=2 => Profile::Dictionary,
            3..=4 => Profile::RootGuesser,
            5..=6 => Profile::Scanner,
            _ => Profile::Library,
        }
    }
}

/// Everything a script needs besides the peer: fresh PIDs, randomness and
/// the knobs from the configuration.
pub(crate) struct Scripter<'a> {
    pub rng: &'a mut Rng,
    pub next_pid: &'a mut u32,
    pub next_logind_session: &'a mut u32,
    pub hostile_share: f64,
    pub dropbear_share: f64,
}

/// Lowest and highest PID handed out (Linux's default `pid_max` is 2^22).
const PID_MIN: u32 = 300;
const PID_MAX: u32 = 4_194_303;

impl Scripter<'_> {
    fn pid(&mut self) -> u32 {
        let pid = *self.next_pid;
        let step = 1 + self.rng.below(40) as u32;
        *self.next_pid = if pid + step > PID_MAX { PID_MIN } else { pid + step };
        pid
    }

    fn sshd(&mut self) -> Origin {
        Origin { process: "sshd", pid: Some(self.pid()), priority: AUTH_INFO }
    }

    fn attack_user(&mut self) -> String {
        if self.rng.chance(self.hostile_share) {
            return self.rng.pick(HOSTILE).to_string();
        }
        self.rng.pick(DICTIONARY).to_string()
    }

    /// One attack connection from `addr`.
    pub fn attack(&mut self, addr: String, profile: Profile) -> Session {
        let port = self.rng.range(1024, 65535) as u16;
        let mut peer = Peer { addr, port, user: String::new(), uid: 0 };
        let mut lines = Vec::with_capacity(12);
        if self.rng.chance(self.dropbear_share) {
            self.dropbear_attack(&mut peer, &mut lines);
        } else {
            let sshd = self.sshd();
            let mut add = |msg| lines.push(Step { origin: sshd, msg });
            // The profile decides most sessions; the rest are anything.
            let roll = self.rng.below(100);
            let profile = if roll < 75 {
                profile
            } else {
                self.rng.pick(&[
                    Profile::Dictionary,
                    Profile::RootGuesser,
                    Profile::Scanner,
                    Profile::Library,
                ])
            };
            if self.rng.chance(0.04) {
                add(Msg::ReverseMappingFailed);
            } else if self.rng.chance(0.01) {
                add(Msg::AddressMapMismatch);
            }
            match profile {
                Profile::Dictionary => {
                    peer.user = self.attack_user();
                    self.guess(&mut add, true);
                }
                Profile::RootGuesser => {
                    peer.user = "root".to_string();
                    self.guess(&mut add, false);
                }
                Profile::Scanner => {
                    peer.user = self.attack_user();
                    self.scan(&mut add);
                }
                Profile::Library => {
                    let invalid = self.rng.chance(0.5);
                    peer.user = if invalid { self.attack_user() } else { "root".to_string() };
                    self.library(&mut add, invalid);
                }
            }
        }
        lines.reverse();
        Session { peer, pending: lines }
    }

    /// Password guessing: one or more tries, then a way out.
    fn guess(&mut self, add: &mut impl FnMut(Msg), invalid: bool) {
        let rare = self.rng.below(1000);
        if invalid {
            match rare {
                0..=19 => add(Msg::UserNotAllowed { reason: self.rng.pick(NOT_ALLOWED_REASONS) }),
                20..=24 => add(Msg::AccountLocked),
                _ => add(Msg::InvalidUser),
            }
            if self.rng.chance(0.05) {
                add(Msg::InputUserauthInvalidUser);
            }
        } else if rare < 5 {
            add(Msg::RootLoginRefused);
            add(Msg::ConnectionClosedPreauth);
            return;
        }
        // Keyboard-interactive through PAM writes its own failure lines.
        let kbd_interactive = self.rng.chance(0.04);
        if self.rng.chance(0.05) {
            add(Msg::Failed { method: "none", invalid });
        }
        let tries = if self.rng.chance(0.7) { 1 } else { self.rng.range(2, 6) as u8 };
        for _ in 0..tries {
            if kbd_interactive {
                if invalid && self.rng.chance(0.3) {
                    add(Msg::PamUserUnknown);
                } else {
                    add(Msg::PamAuthFailure { invalid });
                }
                add(Msg::Failed { method: "keyboard-interactive/pam", invalid });
            } else {
                if invalid {
                    add(Msg::PamCheckPassUserUnknown);
                }
                add(Msg::PamUnixAuthFailure { with_user: !invalid });
                add(Msg::Failed { method: "password", invalid });
            }
        }
        if tries == 6 {
            add(Msg::MaxAuthTries { invalid });
            add(Msg::DisconnectingTooManyFailures { invalid });
            if !invalid {
                add(Msg::PamMoreFailures { more: 5 });
                add(Msg::PamIgnoringMaxRetries { tries: 6 });
            }
            return;
        }
        match self.rng.below(100) {
            0..=64 => {
                add(Msg::ReceivedDisconnect { code: 11, text: "Bye Bye", preauth: true });
                add(Msg::DisconnectedUserPreauth { invalid });
            }
            65..=89 => add(Msg::ConnectionClosedUser { invalid, reset: false }),
            90..=97 => add(Msg::ConnectionClosedUser { invalid, reset: true }),
            _ => {
                if invalid {
                    add(Msg::UsernameChange);
                } else {
                    add(Msg::ConnectionClosedUser { invalid, reset: false });
                }
            }
        }
    }

    /// Scanners and broken clients: no password tried.
    fn scan(&mut self, add: &mut impl FnMut(Msg)) {
        match self.rng.below(1000) {
            0..=399 => add(Msg::ConnectionClosedPreauth),
            400..=599 => {
                add(Msg::KexExchangeIdentification { detail: self.rng.pick(KEX_DETAILS) });
                add(Msg::ConnectionClosed);
            }
            600..=699 => add(Msg::NoIdentification),
            700..=779 => {
                add(Msg::KexExchangeIdentification {
                    detail: "client sent invalid protocol identifier \"GET / HTTP/1.1\"",
                });
                add(Msg::BannerInvalidFormat);
            }
            780..=819 => add(Msg::BadProtocolVersion { offered: "GET / HTTP/1.1" }),
            820..=909 => {
                let (what, offer) = self.rng.pick(NEGOTIATION);
                add(Msg::UnableToNegotiate { what, offer });
            }
            910..=959 => add(Msg::AuthTimeout),
            960..=984 => {
                add(Msg::ReceivedDisconnect {
                    code: 14,
                    text: "No supported authentication methods available",
                    preauth: true,
                });
            }
            985..=994 => add(Msg::MacIncorrect),
            _ => add(Msg::TcpWrappersRefused),
        }
    }

    /// A client library that gives up after one failure.
    fn library(&mut self, add: &mut impl FnMut(Msg), invalid: bool) {
        if invalid {
            add(Msg::InvalidUser);
            add(Msg::PamCheckPassUserUnknown);
        }
        add(Msg::PamUnixAuthFailure { with_user: !invalid });
        add(Msg::Failed { method: "password", invalid });
        add(Msg::ReceivedDisconnect {
            code: 3,
            text: "com.jcraft.jsch.JSchException: Auth fail",
            preauth: true,
        });
        add(Msg::DisconnectedUserPreauth { invalid });
    }

    fn dropbear_attack(&mut self, peer: &mut Peer, lines: &mut Vec<Step>) {
        let origin = Origin { process: "dropbear", pid: Some(self.pid()), priority: AUTH_INFO };
        let mut add = |msg| lines.push(Step { origin, msg });
        add(Msg::DropbearChildConnection);
        if self.rng.chance(0.5) {
            peer.user = self.attack_user();
            add(Msg::DropbearNonexistentUser);
            add(Msg::DropbearExitBeforeAuth { reason: "Exited normally" });
        } else {
            peer.user = "root".to_string();
            let tries = self.rng.range(1, 10);
            for _ in 0..tries {
                add(Msg::DropbearBadPassword);
            }
            if tries == 10 {
                add(Msg::DropbearMaxAuthTries);
                add(Msg::DropbearExitBeforeAuth {
                    reason: "(user 'root', 10 fails): Max auth tries reached - user 'root'",
                });
            } else {
                add(Msg::DropbearExitBeforeAuth { reason: "Exited normally" });
            }
        }
    }

    /// A legitimate login and its whole session, from `addr`.
    pub fn legit(&mut self, addr: String) -> Session {
        let (user, uid) = self.rng.pick(LOCAL_USERS);
        let port = self.rng.range(1024, 65535) as u16;
        let peer = Peer { addr, port, user: user.to_string(), uid };
        let mut lines = Vec::with_capacity(16);
        if self.rng.chance(self.dropbear_share) {
            let origin = Origin { process: "dropbear", pid: Some(self.pid()), priority: AUTH_INFO };
            for msg in [
                Msg::DropbearChildConnection,
                Msg::DropbearPasswordSucceeded,
                Msg::DropbearExitNormally,
            ] {
                lines.push(Step { origin, msg });
            }
            lines.reverse();
            return Session { peer, pending: lines };
        }
        let sshd = self.sshd();
        let logind = Origin { process: "systemd-logind", pid: Some(410), priority: AUTHPRIV_INFO };
        let session = *self.next_logind_session;
        *self.next_logind_session += 1;
        let mut add = |origin, msg| lines.push(Step { origin, msg });
        let password = self.rng.chance(0.2);
        if password {
            if self.rng.chance(0.1) {
                // A typo: the legitimate user fails once before succeeding.
                add(sshd, Msg::PamUnixAuthFailure { with_user: true });
                add(sshd, Msg::Failed { method: "password", invalid: false });
            }
            add(sshd, Msg::Accepted { method: "password" });
        } else {
            if self.rng.chance(0.05) {
                add(sshd, Msg::Failed { method: "publickey", invalid: false });
            }
            if self.rng.chance(0.05) {
                add(sshd, Msg::PostponedPublickey);
            }
            add(sshd, Msg::Accepted { method: "publickey" });
        }
        add(sshd, Msg::SshdSessionOpened);
        add(logind, Msg::LogindNewSession { session });
        if self.rng.chance(0.3) {
            let systemd =
                Origin { process: "systemd", pid: Some(self.pid()), priority: AUTHPRIV_INFO };
            add(systemd, Msg::SystemdUserSessionOpened);
        }
        if self.rng.chance(0.4) {
            let sudo = Origin { process: "sudo", pid: None, priority: AUTHPRIV_NOTICE };
            add(sudo, Msg::SudoCommand { command: self.rng.pick(SUDO_COMMANDS) });
            add(sudo, Msg::SudoSessionOpened);
            add(sudo, Msg::SudoSessionClosed);
        }
        add(
            sshd,
            Msg::ReceivedDisconnect { code: 11, text: "disconnected by user", preauth: false },
        );
        add(sshd, Msg::DisconnectedUser);
        add(sshd, Msg::SshdSessionClosed);
        add(logind, Msg::LogindLoggedOut { session });
        add(logind, Msg::LogindRemoved { session });
        lines.reverse();
        Session { peer, pending: lines }
    }

    /// Activity of other daemons: cron jobs, sudo, su, the kernel.
    /// `addr` is used only by the kernel's firewall lines.
    pub fn noise(&mut self, addr: String) -> Session {
        let mut lines = Vec::with_capacity(4);
        let activity = self.rng.below(100);
        // Cron runs mostly root's jobs; sudo and su are run by people.
        let (user, uid) = if activity < 80 && self.rng.chance(0.7) {
            ("root", 0)
        } else {
            self.rng.pick(LOCAL_USERS)
        };
        let port = self.rng.range(1024, 65535) as u16;
        let peer = Peer { addr, port, user: user.to_string(), uid };
        let mut add = |origin, msg| lines.push(Step { origin, msg });
        match activity {
            0..=79 => {
                let cron =
                    Origin { process: "CRON", pid: Some(self.pid()), priority: AUTHPRIV_INFO };
                add(cron, Msg::CronSessionOpened);
                add(cron, Msg::CronSessionClosed);
            }
            80..=87 => {
                let sudo = Origin { process: "sudo", pid: None, priority: AUTHPRIV_NOTICE };
                add(sudo, Msg::SudoCommand { command: self.rng.pick(SUDO_COMMANDS) });
                add(sudo, Msg::SudoSessionOpened);
                add(sudo, Msg::SudoSessionClosed);
            }
            88..=91 => {
                let su = Origin { process: "su", pid: Some(self.pid()), priority: AUTHPRIV_INFO };
                add(su, Msg::SuTo);
                add(su, Msg::SuSessionOpened);
                add(su, Msg::SuSessionClosed);
            }
            92..=97 => {
                let kernel = Origin { process: "kernel", pid: None, priority: KERN_WARNING };
                add(kernel, Msg::KernelUfwBlock);
            }
            _ => {
                let logind =
                    Origin { process: "systemd-logind", pid: Some(410), priority: AUTHPRIV_INFO };
                let text = self.rng.pick(&[
                    "Watching system buttons on Power Button (/dev/input/event0)",
                    "New seat seat0.",
                    "Power key pressed short.",
                ]);
                add(logind, Msg::Static(text));
            }
        }
        lines.reverse();
        Session { peer, pending: lines }
    }
}
