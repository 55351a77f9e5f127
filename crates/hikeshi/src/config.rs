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
}

/// `[parse]`: how log lines are read and interpreted.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParseConfig {
    /// Which message kinds count as failures: normal, ddos, extra, aggressive.
    #[serde(default)]
    pub mode: hikeshi_core::Mode,
    /// Time zone of classic syslog timestamps, which carry none: an IANA
    /// name such as "Asia/Tokyo" or "UTC". Default: the system's local zone.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Lines longer than this many bytes are skipped (and counted), never
    /// buffered whole.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Open sshd connections tracked at once to join lines of the same
    /// connection; the least recently used are resolved and dropped first.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
}

fn default_max_line_bytes() -> usize {
    hikeshi_core::parse::DEFAULT_MAX_LINE_LEN
}

fn default_max_connections() -> usize {
    hikeshi_core::parse::DEFAULT_MAX_CONNECTIONS
}

impl Default for ParseConfig {
    fn default() -> Self {
        ParseConfig {
            mode: hikeshi_core::Mode::default(),
            timezone: None,
            max_line_bytes: default_max_line_bytes(),
            max_connections: default_max_connections(),
        }
    }
}

impl ParseConfig {
    /// The zone of classic syslog timestamps: the configured one, or the
    /// system's local zone.
    pub fn time_zone(&self) -> Result<jiff::tz::TimeZone> {
        match &self.timezone {
            Some(name) => jiff::tz::TimeZone::get(name)
                .with_context(|| format!("[parse] timezone: unknown time zone {name:?}")),
            None => Ok(jiff::tz::TimeZone::system()),
        }
    }
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
    fn parse_limits_have_defaults_and_can_be_set() {
        let config = Config::from_toml("", Path::new("x.toml")).unwrap();
        assert_eq!(config.parse.max_line_bytes, 16 * 1024);
        assert_eq!(config.parse.max_connections, 65_536);
        let config = Config::from_toml(
            "[parse]\nmax_line_bytes = 100\nmax_connections = 10\ntimezone = \"Asia/Tokyo\"\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!((config.parse.max_line_bytes, config.parse.max_connections), (100, 10));
        assert_eq!(config.parse.time_zone().unwrap().iana_name(), Some("Asia/Tokyo"));
        let bad = Config::from_toml("[parse]\ntimezone = \"Mars/Olympus\"\n", Path::new("x"));
        let err = format!("{:#}", bad.unwrap().parse.time_zone().unwrap_err());
        assert!(err.contains("Mars/Olympus"), "{err}");
    }

    #[test]
    fn bad_value_says_what_is_expected() {
        let err = Config::from_toml("[parse]\nmode = \"fast\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("normal"), "{err}");
    }
}
