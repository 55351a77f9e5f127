//! Who hears of incidents: SMTP, webhooks, the routing of each severity,
//! and the runbook's team roles.

use hikeshi_core::alert::Role;
use hikeshi_core::Severity;

use super::{Check, Doctor};

impl Doctor<'_> {
    /// `[alert.email]`: connect, EHLO (STARTTLS and AUTH when configured).
    pub fn check_smtp(&self) -> Vec<Check> {
        let Some(email) = &self.config.alert.email else {
            return Vec::new();
        };
        let port = email.port.map_or_else(|| "default port".to_string(), |p| p.to_string());
        let subject = format!("{}:{port}", email.server);
        let sender = match crate::notify::email::EmailSender::from_config(email) {
            Ok(s) => s,
            Err(e) => {
                return vec![Check::fail(
                    "smtp",
                    subject,
                    e.to_string(),
                    "correct the [alert.email] setting named",
                )]
            }
        };
        let subject = sender.server().to_string();
        vec![match sender.test_connection() {
            Ok(()) => Check::ok(
                "smtp",
                subject,
                "connected, EHLO accepted (and STARTTLS/AUTH as configured); no mail sent",
            ),
            Err(e) => Check::fail(
                "smtp",
                subject.clone(),
                // The subject already names the server.
                e.strip_prefix(&format!("SMTP {subject}: ")).unwrap_or(&e).to_string(),
                "check [alert.email] server, port and tls against the mail server, and that \
                 it runs and a firewall lets this host reach it",
            ),
        }]
    }

    /// `[[alert.webhook]]`: each URL is one hikeshi can post to. Nothing
    /// is posted: a test message would page people.
    pub fn check_webhooks(&self) -> Vec<Check> {
        self.config
            .alert
            .webhook
            .iter()
            .enumerate()
            .map(|(i, hook)| {
                let subject = crate::notify::webhook::redact_url(&hook.url);
                match crate::notify::webhook::WebhookSender::from_config(std::slice::from_ref(hook))
                {
                    Ok(_) => Check::ok(
                        "webhook",
                        subject,
                        "URL is valid (nothing posted: a test message would page people)",
                    ),
                    Err(e) => Check::fail(
                        "webhook",
                        subject,
                        e.to_string().replace("alert.webhook[0]", &format!("alert.webhook[{i}]")),
                        "give an http:// or https:// URL with a host",
                    ),
                }
            })
            .collect()
    }

    /// Every severity reaches someone: a team member by email (when
    /// `[alert.email]` is set), a webhook, or standard output.
    pub fn check_alert_routing(&self) -> Vec<Check> {
        let alert = &self.config.alert;
        let members = &self.config.team.members;
        let mut checks = Vec::new();
        if alert.email.is_none() && !members.is_empty() {
            checks.push(Check::warn(
                "alerts",
                "email",
                format!(
                    "{} team member(s) have email addresses but [alert.email] is not set: no \
                     email is sent",
                    members.len()
                ),
                "add [alert.email] with server and from (see config/hikeshi.toml)",
            ));
        }
        let mut unrouted = Vec::new();
        let mut routes = Vec::new();
        for severity in Severity::ALL {
            let by_email = if alert.email.is_some() {
                members.iter().filter(|m| m.receives.contains(&severity)).count()
            } else {
                0
            };
            let by_webhook =
                alert.webhook.iter().filter(|w| w.receives.contains(&severity)).count();
            let total = by_email + by_webhook + usize::from(alert.stdout);
            if total == 0 {
                unrouted.push(severity);
            }
            routes.push(format!("{severity}: {total}"));
        }
        let serious: Vec<&str> =
            unrouted.iter().filter(|s| **s >= Severity::High).map(|s| s.as_str()).collect();
        let names: Vec<&str> = unrouted.iter().map(|s| s.as_str()).collect();
        let fix = "add receives = [..] with these severities to a [[team.members]] (with \
                   [alert.email] set) or to an [[alert.webhook]]";
        checks.push(if !serious.is_empty() {
            Check::fail(
                "alerts",
                "severities",
                format!("nobody is alerted for: {}", names.join(", ")),
                fix,
            )
        } else if !unrouted.is_empty() {
            Check::warn(
                "alerts",
                "severities",
                format!("nobody is alerted for: {}", names.join(", ")),
                fix,
            )
        } else {
            Check::ok(
                "alerts",
                "severities",
                format!("receivers per severity: {}", routes.join(", ")),
            )
        });
        checks
    }

    // ---- team ----------------------------------------------------------

    /// The runbook's four roles each have a contact.
    pub fn check_team(&self) -> Vec<Check> {
        let members = &self.config.team.members;
        if members.is_empty() {
            return vec![Check::fail(
                "team",
                "[team]",
                "no team members: nobody is told about incidents and no report names a \
                 responsible person",
                "add a [[team.members]] (role, name, email) for each of incident_manager, \
                 security_analyst, system_administrator, communication_lead",
            )];
        }
        Role::ALL
            .iter()
            .map(|&role| {
                let holders: Vec<String> = members
                    .iter()
                    .filter(|m| m.role == role)
                    .map(|m| format!("{} <{}>", m.name, m.email))
                    .collect();
                if holders.is_empty() {
                    Check::warn(
                        "team",
                        role.title_en(),
                        "nobody has this role",
                        format!(
                            "add [[team.members]] role = \"{}\", name = \"..\", email = \"..\"",
                            role.as_str()
                        ),
                    )
                } else {
                    Check::ok("team", role.title_en(), holders.join(", "))
                }
            })
            .collect()
    }
}
