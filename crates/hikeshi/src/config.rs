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
    /// Eradication: the account audit, recent files, persistence.
    #[serde(default)]
    pub eradicate: EradicateConfig,
}

/// `[eradicate]`: the account audit, `recent` and `persistence`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EradicateConfig {
    /// Words looked for in account names and GECOS fields, matched as whole
    /// words (`admin` matches `web-admin` and `Admin User`, not `badminton`).
    #[serde(default = "default_keywords")]
    pub keywords: Vec<String>,
    /// A usable password changed within this many days is reported.
    #[serde(default = "default_recent_password_days")]
    pub recent_password_days: u32,
    /// Overrides `UID_MIN` from the audited system's `/etc/login.defs`.
    #[serde(default)]
    pub uid_min: Option<u32>,
    /// Globs of paths `recent` and the setuid scan never enter (added to `--exclude`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Whether `persistence` walks the whole root for setuid/setgid files.
    #[serde(default = "default_true")]
    pub setuid_scan: bool,
}

fn default_keywords() -> Vec<String> {
    hikeshi_core::eradicate::accounts::DEFAULT_KEYWORDS.iter().map(|k| k.to_string()).collect()
}

fn default_recent_password_days() -> u32 {
    7
}

fn default_true() -> bool {
    true
}

impl Default for EradicateConfig {
    fn default() -> Self {
        EradicateConfig {
            keywords: default_keywords(),
            recent_password_days: default_recent_password_days(),
            uid_min: None,
            exclude: Vec::new(),
            setuid_scan: true,
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
    fn eradicate_defaults_match_the_example_and_the_runbook() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hikeshi.toml");
        let text = std::fs::read_to_string(&path).unwrap();
        let config = Config::from_toml(&text, &path).unwrap();
        assert_eq!(config.eradicate, EradicateConfig::default());
        assert_eq!(config.eradicate.keywords, ["test", "admin", "backup", "temp"]);
        let err =
            Config::from_toml("[eradicate]\nkeyword = []\n", Path::new("x.toml")).unwrap_err();
        assert!(err.to_string().contains("keyword"), "{err}");
    }

    #[test]
    fn bad_value_says_what_is_expected() {
        let err = Config::from_toml("[parse]\nmode = \"fast\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("normal"), "{err}");
    }
}
