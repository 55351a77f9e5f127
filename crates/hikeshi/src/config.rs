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
    /// `[team]`: the response team and what each member is alerted for.
    #[serde(default)]
    pub team: crate::notify::TeamConfig,
    /// `[alert]`: how alerts are sent (email, webhooks, stdout).
    #[serde(default)]
    pub alert: crate::notify::AlertConfig,
    /// Detection thresholds and windows.
    #[serde(default)]
    pub detect: hikeshi_core::detect::DetectConfig,
    /// Networks never acted on (besides loopback and the host's own
    /// addresses, which always are).
    #[serde(default)]
    pub allowlist: AllowlistConfig,
    /// Banning attack sources in the firewall.
    #[serde(default)]
    pub contain: crate::contain::ContainConfig,
    /// How much each incident remembers.
    #[serde(default)]
    pub incidents: IncidentsConfig,
    /// File integrity monitoring (`hikeshi fim`).
    #[serde(default)]
    pub fim: FimConfig,
    /// Recovery checks (`hikeshi verify`).
    #[serde(default)]
    pub verify: VerifyConfig,
    /// Eradication: the account audit, recent files, persistence.
    #[serde(default)]
    pub eradicate: EradicateConfig,
    /// `[watch]`: the live sources `hikeshi watch` reads.
    #[serde(default)]
    pub watch: WatchConfig,
}

/// `[watch]`: where `hikeshi watch` reads sshd's messages live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WatchConfig {
    /// `[watch.journal]`: the systemd journal.
    #[serde(default)]
    pub journal: crate::sources::journal::JournalConfig,
    /// `[[watch.syslog]]`: network syslog receivers.
    #[serde(default)]
    pub syslog: Vec<crate::sources::syslog_server::SyslogConfig>,
    /// `[[watch.files]]`: log files followed (globs allowed).
    #[serde(default)]
    pub files: Vec<crate::sources::tail::FileSourceConfig>,
    /// Items queued between the sources and detection at most. Files and
    /// the journal wait when it is full; network sources drop and count.
    #[serde(default = "default_watch_queue")]
    pub queue: usize,
    /// A source without a line for this long is reported by `hikeshi
    /// status` (s, m, h, d: "24h").
    #[serde(default = "default_silent_after")]
    pub silent_after: String,
    /// Where to serve Prometheus metrics (`GET /metrics`), e.g.
    /// "127.0.0.1:9464". Unset: no endpoint.
    #[serde(default)]
    pub metrics_listen: Option<String>,
}

impl Default for WatchConfig {
    fn default() -> Self {
        WatchConfig {
            journal: Default::default(),
            syslog: Vec::new(),
            files: Vec::new(),
            queue: default_watch_queue(),
            silent_after: default_silent_after(),
            metrics_listen: None,
        }
    }
}

fn default_watch_queue() -> usize {
    65_536
}

fn default_silent_after() -> String {
    "24h".to_string()
}

impl WatchConfig {
    /// `metrics_listen`, parsed.
    pub fn metrics_addr(&self) -> Result<Option<std::net::SocketAddr>> {
        self.metrics_listen
            .as_deref()
            .map(|text| {
                text.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "[watch] metrics_listen: {text:?} is not an address and port \
                         (e.g. \"127.0.0.1:9464\")"
                    )
                })
            })
            .transpose()
    }

    /// `silent_after` in seconds.
    pub fn silent_after_seconds(&self) -> Result<u64> {
        hikeshi_core::contain::parse_duration(&self.silent_after)
            .map(|d| d.as_secs())
            .map_err(|e| anyhow::anyhow!("[watch] silent_after: {e}"))
    }
}

/// `[allowlist]`: networks hikeshi never acts against. Their events are
/// still recorded and their findings flagged.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AllowlistConfig {
    /// CIDR blocks ("192.0.2.0/24", "2001:db8::/32") or single addresses.
    #[serde(default, deserialize_with = "networks")]
    pub networks: Vec<ipnet::IpNet>,
}

impl AllowlistConfig {
    /// The allowlist of these networks plus the host's own addresses
    /// (loopback is always in it).
    pub fn build(&self, host_addrs: Vec<std::net::IpAddr>) -> hikeshi_core::allowlist::Allowlist {
        hikeshi_core::allowlist::Allowlist::new(self.networks.clone(), host_addrs)
    }
}

/// Reads `allowlist.networks`, naming the entry that is not a network.
fn networks<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<ipnet::IpNet>, D::Error> {
    let texts = Vec::<String>::deserialize(d)?;
    texts
        .iter()
        .map(|text| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format_args!(
                        "allowlist.networks: {text:?} is not a network: expected a CIDR block \
                         such as \"192.0.2.0/24\" or \"2001:db8::/32\", or an address"
                    ))
                })
        })
        .collect()
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
    /// Hashing threads; 0 means one more than the CPUs.
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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyConfig {
    /// Also check that monitoring resumed: `hikeshi watch` runs with this
    /// data directory and its status has no warnings.
    #[serde(default = "default_true")]
    pub monitoring: bool,
    /// The checks, run in order.
    #[serde(default)]
    pub check: Vec<VerifyCheck>,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig { monitoring: true, check: Vec::new() }
    }
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
        assert!(config.watch.syslog.is_empty());
        // The commented [[watch.syslog]] example, uncommented, is the default.
        let example: String = text[text.find("\n# [[watch.syslog]]\n").unwrap() + 1..]
            .lines()
            .take_while(|line| !line.trim().is_empty() && *line != "#")
            .map(|line| format!("{}\n", line.strip_prefix("# ").unwrap_or(line)))
            .collect();
        let watch = Config::from_toml(&example, &path).unwrap().watch;
        assert_eq!(
            watch.syslog,
            vec![crate::sources::syslog_server::SyslogConfig::default()],
            "{example}"
        );
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

    fn error_of(text: &str) -> String {
        Config::from_toml(text, Path::new("x.toml")).unwrap_err().to_string()
    }

    #[test]
    fn detect_and_allowlist_sections_parse() {
        let config = Config::from_toml(
            "[detect]\nmaxretry = 3\nfindtime = \"1h\"\nipv4_prefix_len = 24\n\
             [detect.slow]\nfindtime = \"7d\"\n\
             [allowlist]\nnetworks = [\"192.0.2.0/24\", \"2001:db8::/32\", \"198.51.100.7\"]\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(config.detect.maxretry, 3);
        assert_eq!(config.detect.findtime.as_secs(), 3600);
        assert_eq!(config.detect.ipv4_prefix_len, Some(24));
        assert_eq!(config.detect.slow.findtime.as_secs(), 7 * 86_400);
        assert_eq!(config.detect.slow.maxretry, 20);
        assert_eq!(
            config.allowlist.networks,
            [
                "192.0.2.0/24".parse::<ipnet::IpNet>().unwrap(),
                "2001:db8::/32".parse().unwrap(),
                "198.51.100.7/32".parse().unwrap()
            ]
        );
        let allowlist = config.allowlist.build(vec!["203.0.113.1".parse().unwrap()]);
        assert!(allowlist.contains("198.51.100.7".parse().unwrap()));
        assert!(allowlist.contains("203.0.113.1".parse().unwrap()));
        assert!(!allowlist.contains("203.0.113.2".parse().unwrap()));
        config.detect.validate().unwrap();
    }

    #[test]
    fn empty_config_has_the_documented_detection_defaults() {
        let config = Config::from_toml("", Path::new("x.toml")).unwrap();
        assert_eq!(config.detect, hikeshi_core::detect::DetectConfig::default());
        assert!(config.allowlist.networks.is_empty());
    }

    #[test]
    fn bad_duration_names_the_field_and_line() {
        let err = error_of("[detect]\nmaxretry = 5\nfindtime = \"10 minutes\"\n");
        assert!(err.contains("line 3") && err.contains("findtime"), "{err}");
        assert!(err.contains("invalid duration") && err.contains("10m"), "{err}");
        let err = error_of("[detect.slow]\nfindtime = \"0s\"\n");
        assert!(err.contains("line 2") && err.contains("at least 1s"), "{err}");
        assert!(err.contains("detect.slow.findtime"), "{err}");
        let err = error_of("[detect]\nfindtime = 600\n");
        assert!(err.contains("findtime"), "{err}");
    }

    #[test]
    fn unknown_detect_fields_are_errors() {
        let err = error_of("[detect]\nmaxretry = 5\nmax_retry = 5\n");
        assert!(err.contains("line 3") && err.contains("max_retry"), "{err}");
        let err = error_of("[detect.enumeration]\ndistinct_user = 5\n");
        assert!(err.contains("distinct_user"), "{err}");
        let err = error_of("[allowlist]\nnetwork = []\n");
        assert!(err.contains("network"), "{err}");
    }

    #[test]
    fn out_of_range_values_name_the_field() {
        let err = error_of("[detect]\nipv6_prefix_len = 129\n");
        assert!(err.contains("ipv6_prefix_len") && err.contains("between 16 and 128"), "{err}");
        let err = error_of("[detect]\nipv4_prefix_len = 33\n");
        assert!(err.contains("ipv4_prefix_len") && err.contains("between 8 and 32"), "{err}");
        let err = error_of("[detect]\nmaxretry = 0\n");
        assert!(err.contains("maxretry") && err.contains("between 1 and 255"), "{err}");
        let err = error_of("[detect.slow]\nmaxretry = 1000\n");
        assert!(err.contains("detect.slow.maxretry") && err.contains("line 2"), "{err}");
        let err = error_of("[detect]\nmax_tracked_sources = 10\n");
        assert!(err.contains("detect.max_tracked_sources") && err.contains("got 10"), "{err}");
        let err = error_of("[detect]\nmax_tracked_sources = -5\n");
        assert!(err.contains("got -5"), "{err}");
    }

    #[test]
    fn bad_allowlist_network_names_the_field() {
        let err = error_of("[allowlist]\nnetworks = [\"192.0.2.0/24\", \"10.0.0.0/33\"]\n");
        assert!(err.contains("allowlist.networks") && err.contains("line 2"), "{err}");
        assert!(err.contains("\"10.0.0.0/33\" is not a network"), "{err}");
        let err = error_of("[allowlist]\nnetworks = \"192.0.2.0/24\"\n");
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn contain_section_is_checked() {
        let config = Config::from_toml(
            "[contain]\nbackend = \"ipset\"\nbantime = \"10m\"\npermanent_after = 3\n",
            Path::new("x.toml"),
        )
        .unwrap();
        assert_eq!(config.contain.backend, crate::contain::BackendKind::Ipset);
        assert_eq!(config.contain.policy().unwrap().bantime.as_secs(), 600);
        let err = Config::from_toml("[contain.nftables]\ntabel = \"x\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2") && err.contains("tabel"), "{err}");
        let err = Config::from_toml("[contain]\nbackend = \"pf\"\n", Path::new("x.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nftables") && err.contains("fail2ban"), "{err}");
        let bad =
            Config::from_toml("[contain]\nbantime = \"soon\"\n", Path::new("x.toml")).unwrap();
        assert!(bad.contain.policy().unwrap_err().contains("[contain] bantime"));
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

    #[test]
    fn watch_files_are_read_and_checked() {
        let text = r#"
[[watch.files]]
paths = ["/var/log/central/*/auth.log"]
host_from_path = "/var/log/central/{host}/auth.log"
start = "beginning"
max_line_bytes = 4096
"#;
        let config = Config::from_toml(text, Path::new("x.toml")).unwrap();
        assert_eq!(config.watch.files.len(), 1);
        assert_eq!(config.watch.files[0].start, crate::sources::tail::StartAt::Beginning);
        assert_eq!(config.watch.files[0].max_line_bytes, 4096);
        let typo = "[[watch.files]]\npaths = [\"/a\"]\nhost_form_path = \"x\"\n";
        assert!(Config::from_toml(typo, Path::new("x.toml")).is_err());
        assert!(Config::from_toml("", Path::new("x.toml")).unwrap().watch.files.is_empty());

        // The commented example, uncommented, is valid.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hikeshi.toml");
        let example = std::fs::read_to_string(&path).unwrap();
        let section = &example[example.find("# [[watch.files]]").unwrap()..];
        let uncommented: String = section
            .lines()
            .filter_map(|l| l.strip_prefix("# "))
            .filter(|l| l.starts_with("[[") || l.contains(" = "))
            .map(|l| format!("{l}\n"))
            .collect();
        let config = Config::from_toml(&uncommented, &path).unwrap();
        assert_eq!(config.watch.files.len(), 2, "{uncommented}");
        let central = &config.watch.files[1];
        assert_eq!(central.paths, ["/var/log/central/*/auth.log"]);
        assert_eq!(config.watch.files[0].max_line_bytes, hikeshi_core::parse::DEFAULT_MAX_LINE_LEN);
    }
}
