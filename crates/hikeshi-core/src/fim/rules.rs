//! Which paths are watched and for which attributes: selection rules
//! (a path, an attribute set, a scope) and exclusions (a path, a glob or a
//! regex). The most specific applicable rule wins, so `/usr` can be
//! watched with one set and `/usr/lib/x86_64-linux-gnu` with another.

use std::os::unix::ffi::OsStrExt;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::bytes::RegexSet;
use serde::Serialize;
use sha2::{Digest, Sha256};
use thiserror::Error;

use super::attrs::{AttrSet, HashAlgo};
use super::path::{is_within, normalize, parent};

/// How far below its path a rule reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The path and everything below it (recursive).
    #[default]
    Tree,
    /// The path and, if it is a directory, its direct entries (not recursive).
    Children,
    /// The path itself only (AIDE's `=/path`).
    #[serde(rename = "self")]
    SelfOnly,
}

/// One selection rule: watch `path` for `attrs` within `scope`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Absolute, normalised path.
    pub path: String,
    /// The attributes to record and compare.
    pub attrs: AttrSet,
    /// How far below `path` the rule reaches.
    pub scope: Scope,
}

/// A rule or exclusion that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleError {
    #[error("rule path {0}")]
    BadPath(String),
    #[error("exclusion `{pattern}`: {reason}")]
    BadExclude { pattern: String, reason: String },
    #[error("no paths to watch: add [[fim.rule]] entries")]
    NoRules,
}

/// Paths, rules and exclusions, compiled for matching.
#[derive(Debug, Clone)]
pub struct RuleSet {
    rules: Vec<Rule>,
    excluded_paths: Vec<String>,
    globs: GlobSet,
    regexes: RegexSet,
    exclude_sources: Vec<String>,
    hash: HashAlgo,
}

impl RuleSet {
    /// Compiles rules and exclusions. An exclusion is `glob:PATTERN`
    /// (`*` stays within a component, `**` crosses them), `re:REGEX`
    /// (matched from the start of the path, like AIDE's `!` lines) or a
    /// plain absolute path (that path and everything below it).
    pub fn new(
        mut rules: Vec<Rule>,
        excludes: &[String],
        hash: HashAlgo,
    ) -> Result<RuleSet, RuleError> {
        if rules.is_empty() {
            return Err(RuleError::NoRules);
        }
        for rule in &mut rules {
            rule.path = normalize(&rule.path).map_err(RuleError::BadPath)?;
        }
        rules.sort_by(|a, b| super::path::path_cmp(a.path.as_bytes(), b.path.as_bytes()));
        // A later duplicate replaces an earlier one, so a user rule can
        // override a default for the same path.
        rules.dedup_by(|later, earlier| {
            if later.path == earlier.path {
                *earlier = later.clone();
                true
            } else {
                false
            }
        });
        let mut excluded_paths = Vec::new();
        let mut globs = GlobSetBuilder::new();
        let mut regexes = Vec::new();
        for pattern in excludes {
            let bad = |reason: String| RuleError::BadExclude { pattern: pattern.clone(), reason };
            if let Some(glob) = pattern.strip_prefix("glob:") {
                let glob = GlobBuilder::new(glob)
                    .literal_separator(true)
                    .backslash_escape(true)
                    .build()
                    .map_err(|e| bad(e.to_string()))?;
                globs.add(glob);
            } else if let Some(re) = pattern.strip_prefix("re:") {
                let anchored =
                    if re.starts_with('^') { re.to_string() } else { format!("^(?:{re})") };
                regex::bytes::Regex::new(&anchored).map_err(|e| bad(e.to_string()))?;
                regexes.push(anchored);
            } else {
                excluded_paths.push(normalize(pattern).map_err(bad)?);
            }
        }
        Ok(RuleSet {
            rules,
            excluded_paths,
            globs: globs.build().map_err(|e| RuleError::BadExclude {
                pattern: "(globs)".into(),
                reason: e.to_string(),
            })?,
            regexes: RegexSet::new(&regexes).map_err(|e| RuleError::BadExclude {
                pattern: "(regexes)".into(),
                reason: e.to_string(),
            })?,
            exclude_sources: excludes.to_vec(),
            hash,
        })
    }

    /// The rules, sorted by path.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The default content hash.
    pub fn hash(&self) -> HashAlgo {
        self.hash
    }

    /// Where walks start: rule paths not below another rule's path, in
    /// walk order.
    pub fn roots(&self) -> Vec<&str> {
        let mut roots: Vec<&str> = Vec::new();
        for rule in &self.rules {
            if !roots.iter().any(|root| is_within(rule.path.as_bytes(), root.as_bytes())) {
                roots.push(&rule.path);
            }
        }
        roots
    }

    /// Whether an exclusion matches `path`.
    pub fn is_excluded(&self, path: &[u8]) -> bool {
        self.excluded_paths.iter().any(|p| is_within(path, p.as_bytes()))
            || (!self.globs.is_empty() && self.globs.is_match(std::ffi::OsStr::from_bytes(path)))
            || (!self.regexes.is_empty() && self.regexes.is_match(path))
    }

    /// The attributes to record for `path`, or `None` if no rule applies
    /// or an exclusion matches.
    pub fn attrs_for(&self, path: &[u8]) -> Option<AttrSet> {
        if self.is_excluded(path) {
            return None;
        }
        self.rule_attrs(path)
    }

    /// The attributes of the most specific rule applying to `path`,
    /// ignoring exclusions (for callers that already checked them).
    pub fn rule_attrs(&self, path: &[u8]) -> Option<AttrSet> {
        // Rules are sorted, so the last applicable one is the most specific.
        self.rules
            .iter()
            .rev()
            .find(|rule| {
                let root = rule.path.as_bytes();
                if path == root {
                    return true;
                }
                match rule.scope {
                    Scope::Tree => is_within(path, root),
                    Scope::Children => parent(path) == Some(root),
                    Scope::SelfOnly => false,
                }
            })
            .map(|rule| rule.attrs)
    }

    /// Whether a walk must read directory `dir`'s entries: a rule reaches
    /// below it, or a rule's path lies below it.
    pub fn descends_into(&self, dir: &[u8]) -> bool {
        !self.is_excluded(dir) && self.reaches_below(dir)
    }

    /// Like [`RuleSet::descends_into`], ignoring exclusions.
    pub fn reaches_below(&self, dir: &[u8]) -> bool {
        self.rules.iter().any(|rule| {
            let root = rule.path.as_bytes();
            match rule.scope {
                Scope::Tree if is_within(dir, root) => true,
                Scope::Children if dir == root => true,
                _ => root != dir && is_within(root, dir),
            }
        })
    }

    /// A digest of the rule set, stored in the baseline so `check` can say
    /// when the rules changed since.
    pub fn digest(&self) -> String {
        #[derive(Serialize)]
        struct Canonical<'a> {
            rules: &'a [Rule],
            excludes: &'a [String],
            hash: HashAlgo,
        }
        let json = serde_json::to_vec(&Canonical {
            rules: &self.rules,
            excludes: &self.exclude_sources,
            hash: self.hash,
        })
        .expect("rules serialise");
        format!("sha256:{:x}", Sha256::digest(json))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fim::attrs::{Attr, Groups};

    fn rule(path: &str, expr: &str, scope: Scope) -> Rule {
        Rule {
            path: path.into(),
            attrs: Groups::predefined(HashAlgo::Sha256).parse(expr).unwrap(),
            scope,
        }
    }

    #[test]
    fn most_specific_rule_wins_and_excludes_apply() {
        let set = RuleSet::new(
            vec![rule("/usr", "R", Scope::Tree), rule("/usr/lib/", "p+u", Scope::Tree)],
            &[
                "/usr/share/doc".into(),
                "glob:/usr/**/*.pyc".into(),
                "re:/usr/local/.*\\.log$".into(),
            ],
            HashAlgo::Sha256,
        )
        .unwrap();
        assert!(set.attrs_for(b"/usr/bin/ls").unwrap().contains(Attr::Sha256));
        assert_eq!(set.attrs_for(b"/usr/lib/x.so").unwrap().to_string(), "p+u");
        assert_eq!(set.attrs_for(b"/usr/share/doc"), None);
        assert_eq!(set.attrs_for(b"/usr/share/doc/x/y"), None);
        assert!(set.attrs_for(b"/usr/share/docs").is_some());
        assert_eq!(set.attrs_for(b"/usr/lib/py/a.pyc"), None);
        assert_eq!(set.attrs_for(b"/usr/local/a/b.log"), None);
        assert!(set.attrs_for(b"/usr/local/a/b.log.gz").is_some());
        assert_eq!(set.attrs_for(b"/etc/passwd"), None);
        assert_eq!(set.roots(), vec!["/usr"]);
        assert!(!set.descends_into(b"/usr/share/doc"));
    }

    #[test]
    fn scopes() {
        let set = RuleSet::new(
            vec![
                rule("/etc", "p", Scope::SelfOnly),
                rule("/etc/ssh", "R", Scope::Children),
                rule("/", "u", Scope::Children),
            ],
            &[],
            HashAlgo::Sha256,
        )
        .unwrap();
        assert_eq!(set.roots(), vec!["/"]);
        assert_eq!(set.attrs_for(b"/etc").unwrap().to_string(), "p");
        assert_eq!(set.attrs_for(b"/etc/passwd"), None);
        assert!(set.attrs_for(b"/etc/ssh/sshd_config").is_some());
        assert_eq!(set.attrs_for(b"/etc/ssh/x/y"), None);
        assert!(set.descends_into(b"/etc"));
        assert!(set.descends_into(b"/etc/ssh"));
        assert!(!set.descends_into(b"/etc/ssh/x"));
        assert!(!set.descends_into(b"/usr"));
    }

    #[test]
    fn bad_patterns_are_named() {
        let err =
            RuleSet::new(vec![rule("/x", "p", Scope::Tree)], &["re:(".into()], HashAlgo::Sha256)
                .unwrap_err();
        assert!(err.to_string().contains("re:("), "{err}");
        let err =
            RuleSet::new(vec![rule("x", "p", Scope::Tree)], &[], HashAlgo::Sha256).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
        assert_eq!(RuleSet::new(vec![], &[], HashAlgo::Sha256).unwrap_err(), RuleError::NoRules);
    }

    #[test]
    fn digest_changes_with_rules() {
        let a = RuleSet::new(vec![rule("/x", "p", Scope::Tree)], &[], HashAlgo::Sha256).unwrap();
        let b = RuleSet::new(vec![rule("/x", "p+u", Scope::Tree)], &[], HashAlgo::Sha256).unwrap();
        assert_ne!(a.digest(), b.digest());
        assert_eq!(a.digest(), a.clone().digest());
    }
}
