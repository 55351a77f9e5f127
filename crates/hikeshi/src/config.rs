//! The configuration file (`hikeshi.toml`): its schema and how it is loaded.
//!
//! Every section rejects unknown fields, so a typo is an error that names
//! the file, the line and the field rather than a silently ignored
//! setting. `config/hikeshi.toml` is the fully commented example; a test
//! parses it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hikeshi_core::fim::{HashAlgo, Scope};
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
    /// File integrity monitoring (`hikeshi fim`).
    #[serde(default)]
    pub fim: FimConfig,
    /// Recovery checks (`hikeshi verify`).
    #[serde(default)]
    pub verify: VerifyConfig,
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

/// `[fim]`: what file integrity monitoring watches, and how.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FimConfig {
    /// Content hash where an expression says `H` (and in the `R` group):
    /// "sha256" or "blake3".
    #[serde(default)]
    pub hash: HashAlgo,
    /// Baseline file. Default: `<data dir>/fim/baseline.hfim`.
    #[serde(default)]
    pub baseline: Option<PathBuf>,
    /// Ed25519 public key (`hikeshi-fim-ed25519-public <hex>` or bare hex)
    /// that must have signed the baseline. When set, an unsigned or
    /// wrongly signed baseline is refused.
    #[serde(default)]
    pub public_key: Option<String>,
    /// Hashing threads; 0 means one per CPU.
    #[serde(default)]
    pub threads: usize,
    /// Named attribute groups, e.g. `BIN = "p+i+n+u+g+s+m+c+sha256"`.
    #[serde(default)]
    pub groups: BTreeMap<String, String>,
    /// What to watch. Giving any `[[fim.rule]]` replaces the default set.
    #[serde(default = "default_fim_rules")]
    pub rule: Vec<FimRule>,
    /// Paths not to watch: a plain path (and everything below it),
    /// `glob:PATTERN` or `re:REGEX` (matched from the start of the path).
    /// Giving `exclude` replaces the default list.
    #[serde(default = "default_fim_excludes")]
    pub exclude: Vec<String>,
}

impl Default for FimConfig {
    fn default() -> Self {
        FimConfig {
            hash: HashAlgo::default(),
            baseline: None,
            public_key: None,
            threads: 0,
            groups: BTreeMap::new(),
            rule: default_fim_rules(),
            exclude: default_fim_excludes(),
        }
    }
}

/// `[[fim.rule]]`: watch `path` for `attrs`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FimRule {
    /// Absolute path.
    pub path: String,
    /// Attribute expression: `p+i+n+u+g+s+m+c+sha256`, `R`, `R-m`, a group.
    pub attrs: String,
    /// "tree" (recursive, default), "children" (the path and its direct
    /// entries) or "self" (the path only).
    #[serde(default)]
    pub scope: Scope,
}

/// The default watch list for a Debian server: binaries, libraries, boot
/// files, configuration, root's SSH keys and the cron spools.
pub fn default_fim_rules() -> Vec<FimRule> {
    [
        "/bin",
        "/sbin",
        "/lib",
        "/lib64",
        "/usr/bin",
        "/usr/sbin",
        "/usr/lib",
        "/usr/libexec",
        "/usr/local/bin",
        "/usr/local/sbin",
        "/usr/local/lib",
        "/boot",
        "/etc",
        "/root/.ssh",
        "/var/spool/cron",
    ]
    .into_iter()
    .map(|path| FimRule { path: path.into(), attrs: "R".into(), scope: Scope::Tree })
    .collect()
}

/// Files under the default rules that change in normal operation.
pub fn default_fim_excludes() -> Vec<String> {
    [
        "/etc/mtab",
        "/etc/adjtime",
        "/etc/resolv.conf",
        "/etc/.pwd.lock",
        "/etc/lvm/archive",
        "/etc/lvm/backup",
        "/etc/lvm/cache",
        "glob:**/__pycache__",
        "re:/etc/.*~$",
        "re:/etc/.*\\.swp$",
    ]
    .into_iter()
    .map(String::from)
    .collect()
}

/// `[verify]`: recovery checks for `hikeshi verify`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// The checks, run in order.
    #[serde(default)]
    pub check: Vec<VerifyCheck>,
}

/// `[[verify.check]]`: one recovery check.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum VerifyCheck {
    /// `systemctl is-active UNIT` says "active".
    Systemd {
        unit: String,
        /// Label in reports; default: the unit.
        #[serde(default)]
        name: Option<String>,
    },
    /// A TCP connection to `address` (`host:port`) succeeds.
    Tcp {
        address: String,
        #[serde(default)]
        name: Option<String>,
        /// Connection timeout.
        #[serde(default = "default_check_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// A program (argument vector, no shell) exits with status 0.
    Command {
        argv: Vec<String>,
        #[serde(default)]
        name: Option<String>,
        /// Killed and failed after this long.
        #[serde(default = "default_check_timeout_seconds")]
        timeout_seconds: u64,
    },
    /// A file's SHA-256 is `sha256` (hex).
    File {
        path: PathBuf,
        sha256: String,
        #[serde(default)]
        name: Option<String>,
    },
}

fn default_check_timeout_seconds() -> u64 {
    10
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
        let config = Config::from_toml(&text, &path).unwrap();
        // The example shows the defaults: it must not drift from them.
        assert_eq!(config.fim.exclude, default_fim_excludes());
        crate::fim::rule_set(&config.fim).unwrap();
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
    fn fim_and_verify_sections() {
        let text = r#"
[fim]
hash = "blake3"
groups = { BIN = "p+u+g+H" }
exclude = ["glob:/opt/**/*.log"]
[[fim.rule]]
path = "/opt"
attrs = "BIN"
scope = "children"
[[verify.check]]
type = "tcp"
address = "127.0.0.1:22"
[[verify.check]]
type = "command"
argv = ["true"]
timeout_seconds = 3
"#;
        let config = Config::from_toml(text, Path::new("x.toml")).unwrap();
        assert_eq!(config.fim.rule.len(), 1);
        assert_eq!(config.fim.rule[0].scope, Scope::Children);
        assert_eq!(config.fim.hash, HashAlgo::Blake3);
        assert_eq!(config.verify.check.len(), 2);
        assert!(Config::default().fim.rule.iter().any(|r| r.path == "/usr/bin"));
        let err = Config::from_toml(
            "[[verify.check]]\ntype = \"tcp\"\naddress = \"x:1\"\nport = 2\n",
            Path::new("x.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("port"), "{err}");
        let err = Config::from_toml("[[verify.check]]\ntype = \"ping\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("ping"), "{err}");
    }

    #[test]
    fn bad_value_says_what_is_expected() {
        let err = Config::from_toml("[parse]\nmode = \"fast\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("normal"), "{err}");
    }
}
