//! Email alerts over SMTP with lettre's blocking transport: plain,
//! STARTTLS (required, never opportunistic) or TLS from the first byte,
//! with optional AUTH, and rustls for TLS.
//!
//! The subject and body arrive already cleaned by the core renderer; lettre
//! encodes non-ASCII subjects (RFC 2047) and bodies (quoted-printable or
//! base64) and dot-stuffs the data.

use std::time::{Duration, SystemTime};

use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::{EmailConfig, NotifyError, Outgoing, SendError, Sender, TlsMode};

/// Parses one address (`a@example.com` or `Name <a@example.com>`).
pub fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.parse::<Mailbox>().map_err(|e| format!("{text:?} is not an email address: {e}"))
}

/// Sends alerts through one SMTP server.
pub struct EmailSender {
    transport: SmtpTransport,
    from: Mailbox,
    server: String,
    timeout: Duration,
}

impl std::fmt::Debug for EmailSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailSender")
            .field("server", &self.server)
            .field("from", &self.from)
            .finish()
    }
}

impl EmailSender {
    /// Prepares the transport; reads the password and the CA file now, so
    /// that a mistake shows at startup rather than at the first incident.
    pub fn from_config(cfg: &EmailConfig) -> Result<EmailSender, NotifyError> {
        let from =
            parse_mailbox(&cfg.from).map_err(|e| NotifyError::config("alert.email.from", e))?;
        if cfg.server.trim().is_empty() {
            return Err(NotifyError::config("alert.email.server", "is empty"));
        }
        let port = cfg.port.unwrap_or(cfg.tls.default_port());
        let timeout = Duration::from_secs(cfg.timeout_secs.max(1).into());
        let mut builder =
            SmtpTransport::builder_dangerous(&cfg.server).port(port).timeout(Some(timeout));
        if cfg.tls != TlsMode::None {
            let mut params = TlsParameters::builder(cfg.server.clone());
            if let Some(ca_file) = &cfg.ca_file {
                let pem = std::fs::read(ca_file).map_err(|e| {
                    NotifyError::config(
                        "alert.email.ca_file",
                        format!("cannot read {}: {e}", ca_file.display()),
                    )
                })?;
                let cert = Certificate::from_pem(&pem).map_err(|e| {
                    NotifyError::config(
                        "alert.email.ca_file",
                        format!("{} is not a PEM certificate: {e}", ca_file.display()),
                    )
                })?;
                params = params.add_root_certificate(cert);
            }
            let params = params
                .build_rustls()
                .map_err(|e| NotifyError::config("alert.email.tls", e.to_string()))?;
            builder = builder.tls(match cfg.tls {
                TlsMode::Starttls => Tls::Required(params),
                _ => Tls::Wrapper(params),
            });
        }
        match (&cfg.username, &cfg.password_file, &cfg.password_env) {
            (None, None, None) => {}
            (None, _, _) => {
                return Err(NotifyError::config(
                    "alert.email.username",
                    "a password is configured but no username",
                ))
            }
            (Some(user), file, env) => {
                if cfg.tls == TlsMode::None {
                    return Err(NotifyError::config(
                        "alert.email.tls",
                        "refusing to send the SMTP password unencrypted: set tls = \"starttls\" or \"tls\"",
                    ));
                }
                let password = read_password(file.as_deref(), env.as_deref())?;
                builder = builder.credentials(Credentials::new(user.clone(), password));
            }
        }
        Ok(EmailSender {
            transport: builder.build(),
            from,
            server: format!("{}:{port}", cfg.server),
            timeout,
        })
    }
}

impl EmailSender {
    /// The server as `host:port`.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Connects, says EHLO (and STARTTLS and AUTH when configured), then
    /// NOOP and QUIT: proves alerts could be sent, without sending one
    /// (`hikeshi doctor`).
    pub fn test_connection(&self) -> Result<(), String> {
        match self.transport.test_connection() {
            Ok(true) => Ok(()),
            Ok(false) => Err(format!("SMTP {}: the server did not answer NOOP", self.server)),
            Err(e) if is_timeout(&e) => Err(format!(
                "SMTP {}: timed out after {}s waiting for the server ({})",
                self.server,
                self.timeout.as_secs(),
                error_chain(&e)
            )),
            Err(e) => Err(format!("SMTP {}: {}", self.server, error_chain(&e))),
        }
    }
}

fn read_password(file: Option<&std::path::Path>, env: Option<&str>) -> Result<String, NotifyError> {
    match (file, env) {
        (Some(_), Some(_)) => Err(NotifyError::config(
            "alert.email.password_file",
            "set password_file or password_env, not both",
        )),
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                NotifyError::config(
                    "alert.email.password_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            warn_if_readable_by_others(path);
            let password = text.lines().next().unwrap_or("");
            if password.is_empty() {
                return Err(NotifyError::config(
                    "alert.email.password_file",
                    format!("{} is empty: its first line must be the password", path.display()),
                ));
            }
            Ok(password.to_string())
        }
        (None, Some(var)) => std::env::var(var).map_err(|_| {
            NotifyError::config(
                "alert.email.password_env",
                format!("environment variable {var} is not set"),
            )
        }),
        (None, None) => Err(NotifyError::config(
            "alert.email.username",
            "a username needs password_file or password_env",
        )),
    }
}

/// A password file others can read is a leak waiting to happen; say so,
/// but keep working (refusing would silence every alert).
fn warn_if_readable_by_others(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                "{}: the SMTP password file is readable by group or others (mode {:o}); chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
}

impl Sender for EmailSender {
    fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let to = parse_mailbox(&message.recipient).map_err(SendError::message)?;
        let date = SystemTime::UNIX_EPOCH
            + Duration::from_secs(message.created_at.as_second().max(0).unsigned_abs());
        let email = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(message.subject.as_str())
            .date(date)
            .message_id(None)
            .header(ContentType::TEXT_PLAIN)
            .body(message.body.clone())
            .map_err(|e| SendError::message(format!("cannot build the email: {e}")))?;
        self.transport.send(&email).map(|_| ()).map_err(|e| {
            let text = if is_timeout(&e) {
                format!(
                    "SMTP {}: timed out after {}s waiting for the server ({})",
                    self.server,
                    self.timeout.as_secs(),
                    error_chain(&e)
                )
            } else {
                format!("SMTP {}: {}", self.server, error_chain(&e))
            };
            if e.is_permanent() {
                SendError::message(text)
            } else {
                SendError::server(text)
            }
        })
    }

    fn server_key(&self, _recipient: &str) -> String {
        // Every recipient goes through the one server.
        self.server.clone()
    }
}

/// A read timeout shows as `WouldBlock` (EAGAIN) on Linux sockets.
fn is_timeout(err: &lettre::transport::smtp::Error) -> bool {
    if err.is_timeout() {
        return true;
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) {
                return true;
            }
        }
        source = cause.source();
    }
    false
}

/// lettre's `Display` omits the cause (e.g. "Connection refused"): add it.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
