//! The configuration: the settings serde cannot check on its own.

use std::os::unix::fs::PermissionsExt;

use hikeshi_core::detect::Rule;

use super::{Check, Doctor};

impl Doctor<'_> {
    /// The file loaded (it did, or we would not be here) and the settings
    /// serde cannot check on its own.
    pub fn check_config(&self) -> Vec<Check> {
        let mut checks = Vec::new();
        let subject = self
            .config_path
            .map_or_else(|| "(built-in defaults)".to_string(), |p| p.display().to_string());
        let config = self.config;
        let mut problems = Vec::new();
        if let Err(e) = config.parse.time_zone() {
            problems.push(Check::fail(
                "config",
                "parse.timezone",
                format!("{e:#}"),
                "set [parse] timezone to an IANA name such as \"UTC\" or \"Asia/Tokyo\"",
            ));
        }
        if let Err(e) = config.detect.validate() {
            problems.push(Check::fail(
                "config",
                "detect",
                e.to_string(),
                "set the [detect] value named to one in its range (see config/hikeshi.toml)",
            ));
        }
        if let Err(e) = config.contain.policy() {
            problems.push(Check::fail(
                "config",
                "contain",
                e,
                "write durations like \"10m\", \"1h\", \"7d\" with bantime <= max_bantime and \
                 multiplier >= 1",
            ));
        }
        let unknown: Vec<&String> =
            config.contain.ban_rules.iter().filter(|r| Rule::from_name(r).is_none()).collect();
        if !unknown.is_empty() {
            let known: Vec<&str> = Rule::ALL.iter().map(|r| r.as_str()).collect();
            problems.push(Check::fail(
                "config",
                "contain.ban_rules",
                format!("unknown rule(s) {unknown:?}"),
                format!("use rule names from: {}", known.join(", ")),
            ));
        }
        if let Err(e) = crate::notify::Notifier::from_config(&config.team, &config.alert, false) {
            problems.push(Check::fail(
                "config",
                "alert",
                e.to_string(),
                "correct the [alert]/[team] setting named; alerts cannot be sent until it is",
            ));
        }
        if let Err(e) = config.watch.metrics_addr() {
            problems.push(Check::fail(
                "config",
                "watch.metrics_listen",
                format!("{e:#}"),
                "give an address and port such as \"127.0.0.1:9464\", or remove it",
            ));
        }
        if let Err(e) = config.watch.silent_after_seconds() {
            problems.push(Check::fail(
                "config",
                "watch.silent_after",
                format!("{e:#}"),
                "write a duration such as \"24h\" or \"30m\"",
            ));
        }
        if self.journal_enabled() {
            if let Err(e) = config.watch.journal.validate() {
                problems.push(Check::fail(
                    "config",
                    "watch.journal",
                    e.to_string(),
                    "correct [watch.journal], or set enabled = false",
                ));
            }
        }
        for (i, entry) in config.watch.syslog.iter().enumerate() {
            if let Err(e) = entry.validate() {
                problems.push(Check::fail(
                    "config",
                    format!("watch.syslog[{i}]"),
                    e.to_string(),
                    "correct the [[watch.syslog]] entry",
                ));
            }
        }
        if let Some(path) = self.config_path {
            if let Ok(meta) = std::fs::metadata(path) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o022 != 0 {
                    problems.push(Check::fail(
                        "config",
                        subject.clone(),
                        format!(
                            "writable by group or others (mode {mode:03o}): anyone who can \
                             write it can turn bans and alerts off"
                        ),
                        format!("chmod go-w {}", path.display()),
                    ));
                }
            }
        }
        if problems.is_empty() {
            checks.push(match self.config_path {
                Some(_) => Check::ok("config", subject, "loaded and valid"),
                None => Check::warn(
                    "config",
                    subject,
                    format!(
                        "no configuration file ({} does not exist): no team, no alerts",
                        crate::config::DEFAULT_CONFIG_PATH
                    ),
                    format!(
                        "install the commented example: install -D -m 640 config/hikeshi.toml \
                         {} and edit it (or pass --config FILE)",
                        crate::config::DEFAULT_CONFIG_PATH
                    ),
                ),
            });
        }
        checks.extend(problems);
        checks
    }
}
