//! Webhook alerts: the outbox's JSON payload POSTed with ureq (blocking,
//! rustls), one bounded timeout per request. Redirects are not followed (a
//! POST body must not wander), and any status but 2xx is a failure to
//! retry.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ureq::Agent;

use super::{NotifyError, Outgoing, SendError, Sender, WebhookConfig};

/// How much of an error response is kept in `last_error`.
const ERROR_BODY_BYTES: u64 = 512;

/// POSTs payloads to the configured URLs.
#[derive(Clone)]
pub struct WebhookSender {
    agent: Agent,
    timeouts: Arc<HashMap<String, Duration>>,
}

impl std::fmt::Debug for WebhookSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSender").field("urls", &self.timeouts.keys()).finish()
    }
}

/// The default timeout for a URL that is no longer configured but still
/// has messages in the outbox.
const FALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

impl WebhookSender {
    /// Checks every URL (http or https, with a host) and prepares the agent.
    pub fn from_config(hooks: &[WebhookConfig]) -> Result<WebhookSender, NotifyError> {
        let mut timeouts = HashMap::new();
        for (i, hook) in hooks.iter().enumerate() {
            check_url(&hook.url)
                .map_err(|e| NotifyError::config(format!("alert.webhook[{i}].url"), e))?;
            timeouts.insert(hook.url.clone(), Duration::from_secs(hook.timeout_secs.max(1).into()));
        }
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("hikeshi/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        Ok(WebhookSender { agent, timeouts: Arc::new(timeouts) })
    }
}

/// A webhook URL fit for logs and reports: the scheme and host only.
/// Webhook paths and queries often carry the secret token (Slack's
/// `/services/T…/B…/secret`).
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some(parts) => parts,
        None => return "<webhook>".to_string(),
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Credentials in the authority (`user:pass@host`) are secret too.
    let host = host.rsplit('@').next().unwrap_or(host);
    let tail = if rest.len() > host.len() { "/…" } else { "" };
    hikeshi_core::alert::clean_inline(&format!("{scheme}://{host}{tail}"), 200)
}

fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} is not a valid URL"));
    }
    Ok(())
}

impl Sender for WebhookSender {
    fn send(&self, message: &Outgoing) -> Result<(), SendError> {
        let url = &message.recipient;
        let timeout = self.timeouts.get(url).copied().unwrap_or(FALLBACK_TIMEOUT);
        let result = self
            .agent
            .post(url)
            .config()
            .timeout_global(Some(timeout))
            .build()
            .header("Content-Type", "application/json")
            .send(message.body.as_bytes());
        let shown = redact_url(url);
        let mut response = result.map_err(|e| SendError::server(format!("POST {shown}: {e}")))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let mut snippet = Vec::new();
        let _ = response.body_mut().as_reader().take(ERROR_BODY_BYTES).read_to_end(&mut snippet);
        let snippet = hikeshi_core::alert::clean_inline(&String::from_utf8_lossy(&snippet), 200);
        Err(SendError::server(format!("POST {shown}: HTTP {status}: {snippet}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacted_urls_keep_the_host_and_drop_the_secret() {
        assert_eq!(
            redact_url("https://hooks.slack.com/services/T000/B000/XXXX"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(redact_url("http://u:pw@127.0.0.1:8080/x?token=1"), "http://127.0.0.1:8080/…");
        assert_eq!(redact_url("http://127.0.0.1:8080"), "http://127.0.0.1:8080");
        assert_eq!(redact_url("garbage"), "<webhook>");
    }

    #[test]
    fn urls_are_checked() {
        assert!(check_url("https://example.com/x").is_ok());
        assert!(check_url("http://127.0.0.1:9/").is_ok());
        for bad in
            ["ftp://example.com", "https://", "https:///x", "https://exa mple.com", "example.com"]
        {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
