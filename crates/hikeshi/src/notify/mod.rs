//! Telling the team: the `[team]` and `[alert]` configuration, the
//! [`Sender`]s (email over SMTP, webhooks, stdout) and the [`Notifier`]
//! that renders an incident's [`AlertFacts`] into the [`outbox`] and
//! delivers what is due.
//!
//! An alert is first written to the SQLite outbox, then sent. A send that
//! fails is recorded and retried later with backoff (never lost), and no
//! send waits longer than its configured timeout, so detection never waits
//! on a mail server. Everything here is synchronous: the daemon calls
//! [`Notifier::deliver_due`] from its alert worker thread, `hikeshi scan`
//! inline.

pub mod email;
pub mod outbox;
pub mod webhook;

use std::collections::HashMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use hikeshi_core::alert::{
    self, AlertFacts, DigestFormat, Member, RateLimit, RetryPolicy, Role, DEFAULT_SUBJECT,
};
use hikeshi_core::Severity;
use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;
use thiserror::Error;

pub use outbox::{DeliveryReport, FailedDelivery, OutboxPolicy};

/// `[team]`: the runbook's response team.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamConfig {
    /// One `[[team.members]]` per person or mailing list.
    #[serde(default)]
    pub members: Vec<MemberConfig>,
}

/// `[[team.members]]`: one member and the severities they are alerted for.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MemberConfig {
    /// incident_manager, security_analyst, system_administrator or
    /// communication_lead.
    pub role: Role,
    /// The person's name, for reports.
    pub name: String,
    /// Where email alerts go.
    pub email: String,
    /// The severities this member is alerted for. Default: all.
    #[serde(default = "all_severities")]
    pub receives: Vec<Severity>,
}

fn all_severities() -> Vec<Severity> {
    Severity::ALL.to_vec()
}

/// `[alert]`: how alerts are sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The subject's first words (`hikeshi scan -s` overrides it).
    #[serde(default = "default_subject")]
    pub subject: String,
    /// Also print every alert on standard output (for cron, which mails
    /// what a job prints).
    #[serde(default)]
    pub stdout: bool,
    /// At most this many messages per channel and recipient per window;
    /// the rest is held and sent as one digest when the window allows.
    #[serde(default = "default_rate_limit_max")]
    pub rate_limit_max: u32,
    /// The rate limit's sliding window, in seconds.
    #[serde(default = "default_rate_limit_window_secs")]
    pub rate_limit_window_secs: u32,
    /// Delay before the first retry of a failed send, in seconds; doubles
    /// after each failure.
    #[serde(default = "default_retry_initial_secs")]
    pub retry_initial_secs: u32,
    /// The longest delay between retries, in seconds. Sends are retried
    /// forever: an alert is never dropped.
    #[serde(default = "default_retry_max_secs")]
    pub retry_max_secs: u32,
    /// After this many failed attempts a message is reported as stuck.
    #[serde(default = "default_retry_stuck_after")]
    pub retry_stuck_after: u32,
    /// `[alert.email]`: email over SMTP. Absent: no email.
    #[serde(default)]
    pub email: Option<EmailConfig>,
    /// `[[alert.webhook]]`: HTTP POST to chat or ticketing systems.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
}

fn default_subject() -> String {
    DEFAULT_SUBJECT.to_string()
}
fn default_rate_limit_max() -> u32 {
    10
}
fn default_rate_limit_window_secs() -> u32 {
    600
}
fn default_retry_initial_secs() -> u32 {
    30
}
fn default_retry_max_secs() -> u32 {
    3600
}
fn default_retry_stuck_after() -> u32 {
    8
}

impl Default for AlertConfig {
    fn default() -> Self {
        AlertConfig {
            subject: default_subject(),
            stdout: false,
            rate_limit_max: default_rate_limit_max(),
            rate_limit_window_secs: default_rate_limit_window_secs(),
            retry_initial_secs: default_retry_initial_secs(),
            retry_max_secs: default_retry_max_secs(),
            retry_stuck_after: default_retry_stuck_after(),
            email: None,
            webhook: Vec::new(),
        }
    }
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text (only for a relay on this host; no password is ever sent).
    None,
    /// Plain connection upgraded with STARTTLS, which is required (port 587).
    #[default]
    Starttls,
    /// TLS from the first byte, "SMTPS" (port 465).
    Tls,
}

impl TlsMode {
    fn default_port(self) -> u16 {
        match self {
            TlsMode::None => 25,
            TlsMode::Starttls => 587,
            TlsMode::Tls => 465,
        }
    }
}

/// `[alert.email]`: the SMTP server alerts are sent through.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    /// Host name or address of the SMTP server.
    pub server: String,
    /// Default: 25 (none), 587 (starttls), 465 (tls).
    #[serde(default)]
    pub port: Option<u16>,
    /// none, starttls (default) or tls.
    #[serde(default)]
    pub tls: TlsMode,
    /// PEM file of a certificate authority to trust in addition to the
    /// built-in Mozilla roots (for a company CA or a self-signed server).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// SMTP AUTH user name. Requires tls = starttls or tls.
    #[serde(default)]
    pub username: Option<String>,
    /// File whose first line is the password (keep it mode 0600). The
    /// password is never written in this file.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Environment variable holding the password (e.g. from systemd's
    /// `LoadCredential`/`EnvironmentFile`).
    #[serde(default)]
    pub password_env: Option<String>,
    /// The From address, e.g. "hikeshi <hikeshi@server1.example.com>".
    pub from: String,
    /// Longest wait for any step of one send (connect, each reply), in seconds.
    #[serde(default = "default_email_timeout_secs")]
    pub timeout_secs: u32,
}

fn default_email_timeout_secs() -> u32 {
    15
}

/// A webhook body format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// hikeshi's own JSON (`schema = "hikeshi.alert.v1"`).
    #[default]
    Json,
    /// `{"text", "blocks"}` for Slack (and Mattermost, Rocket.Chat).
    Slack,
}

/// `[[alert.webhook]]`: one URL alerts are POSTed to.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// http:// or https:// URL.
    pub url: String,
    /// json (default) or slack.
    #[serde(default)]
    pub format: WebhookFormat,
    /// Longest wait for the whole request, in seconds.
    #[serde(default = "default_webhook_timeout_secs")]
    pub timeout_secs: u32,
    /// The severities posted here. Default: all.
    #[serde(default = "all_severities")]
    pub receives: Vec<Severity>,
}

fn default_webhook_timeout_secs() -> u32 {
    10
}

/// Errors of the notify module: bad settings and the outbox's database.
#[derive(Debug, Error)]
pub enum NotifyError {
    /// A setting that cannot work; names the setting.
    #[error("{setting}: {message}")]
    Config { setting: String, message: String },
    #[error("alert outbox: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl NotifyError {
    pub(crate) fn config(setting: impl Into<String>, message: impl Into<String>) -> Self {
        NotifyError::Config { setting: setting.into(), message: message.into() }
    }
}

/// An outbox channel: which sender delivers a message and how digests of
/// it are rendered. Stored in the outbox's `channel` column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    Email,
    WebhookJson,
    WebhookSlack,
    Stdout,
}

impl Channel {
    pub const ALL: [Channel; 4] =
        [Channel::Email, Channel::WebhookJson, Channel::WebhookSlack, Channel::Stdout];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::WebhookJson => "webhook_json",
            Channel::WebhookSlack => "webhook_slack",
            Channel::Stdout => "stdout",
        }
    }

    pub fn from_name(name: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// How a digest of this channel's messages is rendered.
    pub fn digest_format(self) -> DigestFormat {
        match self {
            Channel::Email | Channel::Stdout => DigestFormat::Text,
            Channel::WebhookJson => DigestFormat::Json,
            Channel::WebhookSlack => DigestFormat::Slack,
        }
    }
}

/// One message as a sender sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The outbox row (the first row, for a digest).
    pub id: i64,
    pub incident_id: Option<i64>,
    /// When the alert was raised: the email's `Date`.
    pub created_at: Timestamp,
    /// An email address, a webhook URL, or `-` for stdout.
    pub recipient: String,
    pub subject: String,
    /// Plain text (email, stdout) or the JSON payload (webhooks).
    pub body: String,
}

/// What a failure affects, which decides whether the other messages for
/// the same server are tried in this round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureScope {
    /// This message only (e.g. a recipient the server rejected).
    Message,
    /// The server (unreachable, timeout, TLS, authentication): the other
    /// messages to it wait for the next round instead of waiting for their
    /// own timeouts.
    Server,
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{message}")]
pub struct SendError {
    pub scope: FailureScope,
    pub message: String,
}

impl SendError {
    pub fn server(message: impl Into<String>) -> Self {
        SendError { scope: FailureScope::Server, message: message.into() }
    }
    pub fn message(message: impl Into<String>) -> Self {
        SendError { scope: FailureScope::Message, message: message.into() }
    }
}

/// Delivers messages of one channel. Implementations block for at most
/// their configured timeout and are usable from any thread.
pub trait Sender: Send + Sync {
    /// Sends one message (or one digest).
    fn send(&self, message: &Outgoing) -> Result<(), SendError>;

    /// Messages whose recipients share a key share a server: after a
    /// server-scoped failure the others wait for the next round.
    fn server_key(&self, recipient: &str) -> String {
        recipient.to_string()
    }
}

/// The senders of each configured channel.
#[derive(Default)]
pub struct Senders {
    by_channel: HashMap<Channel, Box<dyn Sender>>,
}

impl std::fmt::Debug for Senders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut channels: Vec<_> = self.by_channel.keys().map(|c| c.as_str()).collect();
        channels.sort();
        f.debug_struct("Senders").field("channels", &channels).finish()
    }
}

impl Senders {
    pub fn new() -> Self {
        Senders::default()
    }

    /// Sets the sender of `channel` (replacing any).
    pub fn insert(&mut self, channel: Channel, sender: Box<dyn Sender>) -> &mut Self {
        self.by_channel.insert(channel, sender);
        self
    }

    pub fn get(&self, channel: Channel) -> Option<&dyn Sender> {
        self.by_channel.get(&channel).map(|s| s.as_ref())
    }
}

/// Prints alerts on a writer (standard output for cron): subject, a blank
/// line, the body, a separator line.
pub struct StdoutSender {
    out: Mutex<Box<dyn Write + Send>>,
}

impl StdoutSender {
    /// Prints on the process's standard output.
    pub fn stdout() -> Self {
        StdoutSender::to_writer(Box::new(std::io::stdout()))
    }

    /// Prints on `out` (tests use a buffer).
    pub fn to_writer(out: Box<dyn Write + Send>) -> Self {
        StdoutSender { out: Mutex::new(out) }
    }
}

impl Sender for StdoutSender {
    fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let mut out = self.out.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let result = write!(out, "{}\n\n{}\n----\n", message.subject, message.body)
            .and_then(|()| out.flush());
        result.map_err(|e| SendError::server(format!("cannot write to standard output: {e}")))
    }
}

/// Renders alerts into the outbox and delivers them, as configured.
#[derive(Debug)]
pub struct Notifier {
    subject: String,
    team: Vec<Member>,
    email: bool,
    webhooks: Vec<WebhookConfig>,
    stdout: bool,
    senders: Senders,
    policy: OutboxPolicy,
}

impl Notifier {
    /// Builds the notifier from `[team]` and `[alert]`: checks every
    /// address and URL, reads the SMTP password, and prepares the senders.
    /// `stdout` prints alerts whatever `[alert] stdout` says (for `hikeshi
    /// scan`).
    pub fn from_config(
        team: &TeamConfig,
        alert: &AlertConfig,
        stdout: bool,
    ) -> Result<Notifier, NotifyError> {
        let mut senders = Senders::new();
        let mut members = Vec::new();
        for (i, m) in team.members.iter().enumerate() {
            email::parse_mailbox(&m.email)
                .map_err(|e| NotifyError::config(format!("team.members[{i}].email"), e))?;
            members.push(Member {
                role: m.role,
                name: m.name.clone(),
                email: m.email.clone(),
                receives: m.receives.clone(),
            });
        }
        if let Some(cfg) = &alert.email {
            senders.insert(Channel::Email, Box::new(email::EmailSender::from_config(cfg)?));
        }
        if !alert.webhook.is_empty() {
            let sender = webhook::WebhookSender::from_config(&alert.webhook)?;
            senders.insert(Channel::WebhookJson, Box::new(sender.clone()));
            senders.insert(Channel::WebhookSlack, Box::new(sender));
        }
        let stdout = stdout || alert.stdout;
        if stdout {
            senders.insert(Channel::Stdout, Box::new(StdoutSender::stdout()));
        }
        if alert.rate_limit_max == 0 {
            return Err(NotifyError::config("alert.rate_limit_max", "must be at least 1"));
        }
        let policy = OutboxPolicy {
            retry: RetryPolicy {
                initial: SignedDuration::from_secs(alert.retry_initial_secs.max(1).into()),
                max_delay: SignedDuration::from_secs(alert.retry_max_secs.max(1).into()),
                stuck_after: alert.retry_stuck_after.max(1),
            },
            rate_limit: RateLimit {
                max_per_window: alert.rate_limit_max,
                window: SignedDuration::from_secs(alert.rate_limit_window_secs.into()),
            },
            subject_prefix: alert.subject.clone(),
            ..OutboxPolicy::default()
        };
        Ok(Notifier {
            subject: alert.subject.clone(),
            team: members,
            email: alert.email.is_some(),
            webhooks: alert.webhook.clone(),
            stdout,
            senders,
            policy,
        })
    }

    /// Overrides the subject (`hikeshi scan -s SUBJECT`).
    pub fn set_subject(&mut self, subject: &str) {
        self.subject = subject.to_string();
        self.policy.subject_prefix = subject.to_string();
    }

    /// Replaces the senders (tests, or a daemon that built its own).
    pub fn set_senders(&mut self, senders: Senders) {
        self.senders = senders;
    }

    /// The retry and rate-limit policy in force.
    pub fn policy(&self) -> &OutboxPolicy {
        &self.policy
    }

    /// The team members an alert of `facts` is emailed to.
    pub fn email_recipients<'a>(&'a self, facts: &AlertFacts) -> Vec<&'a Member> {
        if !self.email {
            return Vec::new();
        }
        alert::recipients(&self.team, facts.kind, facts.severity)
    }

    /// Renders `facts` for every configured channel and recipient and
    /// stores the messages in the outbox, due at `now`, in one
    /// transaction. Returns the new rows' ids: none when no channel wants
    /// this severity, or when this alert ([`AlertFacts::once_key`]) was
    /// already enqueued. Sends nothing: see [`Notifier::deliver_due`].
    pub fn enqueue(
        &self,
        conn: &rusqlite::Connection,
        facts: &AlertFacts,
        now: Timestamp,
    ) -> Result<Vec<i64>, NotifyError> {
        let members = self.email_recipients(facts);
        let webhook_wanted = self.webhooks.iter().any(|h| h.receives.contains(&facts.severity));
        if members.is_empty() && !webhook_wanted && !self.stdout {
            // Nobody receives this alert: render nothing (a scan through a
            // long log on a host without alert channels pays nothing).
            return Ok(Vec::new());
        }
        let subject = alert::email_subject(facts, &self.subject);
        let text = alert::plain_text(facts);
        let alert_key = Some(facts.once_key());
        let mut messages = Vec::new();
        for member in members {
            messages.push(outbox::NewMessage {
                incident_id: Some(facts.incident_id),
                alert_key: alert_key.clone(),
                channel: Channel::Email,
                recipient: member.email.clone(),
                subject: subject.clone(),
                body: text.clone(),
            });
        }
        for hook in &self.webhooks {
            if !hook.receives.contains(&facts.severity) {
                continue;
            }
            let (channel, body) = match hook.format {
                WebhookFormat::Json => {
                    (Channel::WebhookJson, alert::json_payload(facts, &self.subject))
                }
                WebhookFormat::Slack => {
                    (Channel::WebhookSlack, alert::slack_payload(facts, &self.subject))
                }
            };
            messages.push(outbox::NewMessage {
                incident_id: Some(facts.incident_id),
                alert_key: alert_key.clone(),
                channel,
                recipient: hook.url.clone(),
                subject: subject.clone(),
                body: body.to_string(),
            });
        }
        if self.stdout {
            messages.push(outbox::NewMessage {
                incident_id: Some(facts.incident_id),
                alert_key: alert_key.clone(),
                channel: Channel::Stdout,
                recipient: "-".to_string(),
                subject: subject.clone(),
                body: text.clone(),
            });
        }
        Ok(outbox::enqueue_all(conn, &messages, now)?)
    }

    /// Sends what is due at `now` (see [`outbox::deliver_due`]).
    pub fn deliver_due(
        &self,
        conn: &rusqlite::Connection,
        now: Timestamp,
    ) -> Result<DeliveryReport, NotifyError> {
        Ok(outbox::deliver_due(conn, now, &self.senders, &self.policy)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert_config(text: &str) -> Result<AlertConfig, String> {
        toml::from_str::<AlertConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_notifier_can_move_to_the_alert_worker_thread() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Notifier>();
        assert_send_sync::<Senders>();
    }

    #[test]
    fn an_inline_password_is_refused() {
        let err = alert_config(
            "[email]\nserver = \"smtp.example.com\"\nfrom = \"a@example.com\"\npassword = \"x\"\n",
        )
        .unwrap_err();
        assert!(err.contains("password"), "{err}");
    }

    #[test]
    fn a_password_over_plain_text_is_refused() {
        let cfg = alert_config(
            "[email]\nserver = \"smtp.example.com\"\ntls = \"none\"\nfrom = \"a@example.com\"\nusername = \"u\"\npassword_env = \"HIKESHI_TEST_UNSET\"\n",
        )
        .unwrap();
        let err = Notifier::from_config(&TeamConfig::default(), &cfg, false).unwrap_err();
        assert!(err.to_string().contains("alert.email.tls"), "{err}");
    }

    #[test]
    fn bad_addresses_and_urls_name_the_setting() {
        let team: TeamConfig = toml::from_str(
            "[[members]]\nrole = \"incident_manager\"\nname = \"A\"\nemail = \"not an address\"\n",
        )
        .unwrap();
        let err = Notifier::from_config(&team, &AlertConfig::default(), false).unwrap_err();
        assert!(err.to_string().starts_with("team.members[0].email"), "{err}");

        let cfg = alert_config("[[webhook]]\nurl = \"ftp://example.com/x\"\n").unwrap();
        let err = Notifier::from_config(&TeamConfig::default(), &cfg, false).unwrap_err();
        assert!(err.to_string().starts_with("alert.webhook[0].url"), "{err}");

        let cfg = alert_config("[email]\nserver = \"s\"\nfrom = \"<<bad\"\n").unwrap();
        let err = Notifier::from_config(&TeamConfig::default(), &cfg, false).unwrap_err();
        assert!(err.to_string().starts_with("alert.email.from"), "{err}");
    }

    #[test]
    fn unknown_role_and_severity_are_config_errors() {
        let err = toml::from_str::<TeamConfig>(
            "[[members]]\nrole = \"boss\"\nname = \"A\"\nemail = \"a@example.com\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("incident_manager"), "{err}");
        let err = toml::from_str::<TeamConfig>(
            "[[members]]\nrole = \"incident_manager\"\nname = \"A\"\nemail = \"a@example.com\"\nreceives = [\"urgent\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("critical"), "{err}");
    }

    #[test]
    fn an_empty_password_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "\nsecond line\n").unwrap();
        let cfg = alert_config(&format!(
            "[email]\nserver = \"s\"\nfrom = \"a@example.com\"\nusername = \"u\"\npassword_file = \"{}\"\n",
            pw.display()
        ))
        .unwrap();
        let err = Notifier::from_config(&TeamConfig::default(), &cfg, false).unwrap_err();
        assert!(err.to_string().contains("is empty"), "{err}");
    }

    #[test]
    fn password_file_must_exist_and_is_named() {
        let cfg = alert_config(
            "[email]\nserver = \"s\"\nfrom = \"a@example.com\"\nusername = \"u\"\npassword_file = \"/nonexistent/hikeshi-pw\"\n",
        )
        .unwrap();
        let err = Notifier::from_config(&TeamConfig::default(), &cfg, false).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("alert.email.password_file") && text.contains("/nonexistent/hikeshi-pw"),
            "{text}"
        );
    }
}
