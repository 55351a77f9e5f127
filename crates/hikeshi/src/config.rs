//! The configuration file (`hikeshi.toml`): its schema and how it is loaded.
//!
//! Every section rejects unknown fields, so a typo is an error that names
//! the file, the line and the field rather than a silently ignored
//! setting. `config/hikeshi.toml` is the fully commented example; a test
//! parses it.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

/// Where the configuration is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/hikeshi/hikeshi.toml";

/// The whole configuration. Every section has defaults, so an empty file
/// (or none at all) is a valid configuration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// How log lines are read and interpreted.
    #[serde(default)]
    pub parse: ParseConfig,
    /// How much each incident remembers.
    #[serde(default)]
    pub incidents: IncidentsConfig,
}

/// `[incidents]`: how much each incident remembers. Whatever is not kept
/// is still counted (and, for evidence, digested), never silently lost.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentsConfig {
    /// Raw log lines kept as evidence per incident: the first half and
    /// the latest half. Every line is counted and folded into the
    /// incident's SHA-256 evidence digest, kept or not.
    #[serde(default = "default_evidence_max_lines")]
    pub evidence_max_lines: u64,
    /// Distinct user names kept per incident; further names are counted.
    #[serde(default = "default_max_users")]
    pub max_users: usize,
}

fn default_evidence_max_lines() -> u64 {
    hikeshi_core::incident::DEFAULT_EVIDENCE_MAX_LINES
}

fn default_max_users() -> usize {
    hikeshi_core::incident::Limits::default().max_users
}

impl Default for IncidentsConfig {
    fn default() -> Self {
        IncidentsConfig {
            evidence_max_lines: default_evidence_max_lines(),
            max_users: default_max_users(),
        }
    }
}

impl IncidentsConfig {
    /// The store limits these settings give.
    pub fn limits(&self) -> hikeshi_core::incident::Limits {
        hikeshi_core::incident::Limits {
            max_users: self.max_users,
            evidence: hikeshi_core::incident::EvidenceCap::from_max_lines(self.evidence_max_lines),
            ..hikeshi_core::incident::Limits::default()
        }
    }
}

/// `[parse]`: how log lines are read and interpreted.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    /// Which message kinds count as failures: normal, ddos, extra, aggressive.
    #[serde(default)]
    pub mode: hikeshi_core::Mode,
    /// Time zone of classic syslog timestamps, which carry none: an IANA
    /// name such as "Asia/Tokyo" or "UTC". Default: the system's local zone.
    #[serde(default)]
    pub timezone: Option<String>,
}

impl Config {
    /// Parses configuration text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Config> {
        toml::from_str(text).map_err(|e| anyhow::anyhow!("{}: {e}", origin.display()))
    }

    /// Loads `path`, or the default location if `path` is `None` and that
    /// file exists, or the built-in defaults.
    pub fn load(path: Option<&Path>) -> Result<(Config, Option<PathBuf>)> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                let default = PathBuf::from(DEFAULT_CONFIG_PATH);
                if !default.exists() {
                    return Ok((Config::default(), None));
                }
                default
            }
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read configuration file {}", path.display()))?;
        let config = Config::from_toml(&text, &path)?;
        Ok((config, Some(path)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commented_example_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hikeshi.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        Config::from_toml(&text, &path).unwrap();
    }

    #[test]
    fn unknown_field_names_file_line_and_field() {
        let err = Config::from_toml("[parse]\nmode = \"normal\"\nmdoe = 1\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        assert!(err.contains("mdoe"), "{err}");
    }

    #[test]
    fn incident_limits_come_from_the_incidents_section() {
        let config = Config::from_toml(
            "[incidents]\nevidence_max_lines = 10\nmax_users = 5\n",
            Path::new("x.toml"),
        )
        .unwrap();
        let limits = config.incidents.limits();
        assert_eq!((limits.evidence.first, limits.evidence.latest, limits.max_users), (5, 5, 5));
        assert_eq!(Config::default().incidents.evidence_max_lines, 1_000);
    }

    #[test]
    fn bad_value_says_what_is_expected() {
        let err = Config::from_toml("[parse]\nmode = \"fast\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("normal"), "{err}");
    }
}
