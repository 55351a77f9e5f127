//! Importing a plain `aide.conf`: group definitions, `@@define` macros and
//! selection lines whose path is a literal (`/etc R`, `=/boot$ L`,
//! `!/var/log/.*`). What is not understood is reported with its line
//! number, never silently dropped.

use std::collections::BTreeMap;

use serde::Serialize;

use super::attrs::{Groups, HashAlgo};
use super::rules::{Rule, Scope};

/// A line of `aide.conf` that was skipped, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// 1-based line number.
    pub line: usize,
    /// What was skipped and why.
    pub message: String,
}

/// What an `aide.conf` translates to.
#[derive(Debug, Clone, Default)]
pub struct AideImport {
    /// Selection rules, in file order.
    pub rules: Vec<Rule>,
    /// Exclusions (`re:` patterns from `!` lines).
    pub excludes: Vec<String>,
    /// Group definitions, as written, in file order.
    pub groups: Vec<(String, String)>,
    /// Lines that were skipped.
    pub diagnostics: Vec<Diagnostic>,
}

/// AIDE options (`name=value`) that configure AIDE itself rather than
/// define a group; they have no meaning for hikeshi.
const AIDE_OPTIONS: &[&str] = &[
    "acl_no_symlink_follow",
    "config_version",
    "database",
    "database_add_metadata",
    "database_attrs",
    "database_in",
    "database_new",
    "database_out",
    "gzip_dbout",
    "log_level",
    "num_workers",
    "report_append",
    "report_base16",
    "report_detailed_init",
    "report_force_attrs",
    "report_format",
    "report_grouped",
    "report_ignore_added_attrs",
    "report_ignore_changed_attrs",
    "report_ignore_e2fsattrs",
    "report_ignore_removed_attrs",
    "report_level",
    "report_quiet",
    "report_summarize_changes",
    "report_system_hostname",
    "report_url",
    "root_prefix",
    "verbose",
    "warn_dead_symlinks",
    "grouped",
    "summarize_changes",
];

/// Parses `aide.conf` text. Groups are resolved as AIDE does (a group must
/// be defined before use); `H` stands for `hash`.
pub fn import(text: &str, hash: HashAlgo) -> AideImport {
    let mut out = AideImport::default();
    let mut groups = Groups::predefined(hash);
    let mut defines: BTreeMap<String, String> = BTreeMap::new();
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let mut note =
            |message: String| out.diagnostics.push(Diagnostic { line: line_no, message });
        let line = substitute(raw.trim(), &defines);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("@@") {
            let mut words = rest.split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some("define"), Some(name), value) => {
                    defines.insert(name.to_string(), value.unwrap_or("").to_string());
                }
                (Some("undef"), Some(name), None) => {
                    defines.remove(name);
                }
                _ => note(format!("directive `@@{rest}` is not supported; skipped")),
            }
            continue;
        }
        if let Some((name, value)) = Some(&line)
            .filter(|line| !line.starts_with(['/', '!', '=']))
            .and_then(|line| line.split_once('='))
        {
            let (name, value) = (name.trim(), value.trim());
            if AIDE_OPTIONS.contains(&name)
                || name.starts_with("report_")
                || name.starts_with("database")
            {
                continue;
            }
            match groups.define(name, value) {
                Ok(()) => out.groups.push((name.to_string(), value.to_string())),
                Err(e) => note(format!("group `{name}`: {e}; skipped")),
            }
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (kind, pattern) = match words[0].as_bytes()[0] {
            b'!' => ('!', &words[0][1..]),
            b'=' => ('=', &words[0][1..]),
            b'/' => ('/', words[0]),
            _ => {
                note(format!(
                    "`{line}` is neither a group, an option nor a selection line; skipped"
                ));
                continue;
            }
        };
        if kind == '!' {
            if pattern.is_empty() {
                note("`!` without a pattern would exclude everything; skipped".into());
                continue;
            }
            if words.len() > 1 {
                note(
                    "file-type restriction on a `!` line is not supported; it excludes all types"
                        .into(),
                );
            }
            out.excludes.push(format!("re:{pattern}"));
            continue;
        }
        let attrs_expr = match words.as_slice() {
            [_, attrs] => *attrs,
            [_, _restriction, attrs] => {
                note(format!(
                    "file-type restriction `{}` is not supported; the rule applies to all types",
                    words[1]
                ));
                *attrs
            }
            _ => {
                note(format!("selection `{line}` needs a path and attributes; skipped"));
                continue;
            }
        };
        let Some((path, anchored)) = literal_path(pattern) else {
            note(format!(
                "selection `{pattern}` is a regular expression; only literal paths are imported (write a rule for the directory and exclusions); skipped"
            ));
            continue;
        };
        let attrs = match groups.parse(attrs_expr) {
            Ok(attrs) => attrs,
            Err(e) => {
                note(format!("selection `{pattern}`: {e}; skipped"));
                continue;
            }
        };
        let scope = match (kind, anchored, path.ends_with('/') && path.len() > 1) {
            ('=', _, true) => Scope::Children,
            ('=', _, false) | (_, true, _) => Scope::SelfOnly,
            _ => Scope::Tree,
        };
        out.rules.push(Rule {
            path: path.trim_end_matches('/').to_string().replace("//", "/"),
            attrs,
            scope,
        });
        if out.rules.last().is_some_and(|r| r.path.is_empty()) {
            out.rules.last_mut().expect("just pushed").path = "/".into();
        }
    }
    out
}

/// Replaces `@@{NAME}` with defined values.
fn substitute(line: &str, defines: &BTreeMap<String, String>) -> String {
    let mut out = line.to_string();
    for (name, value) in defines {
        out = out.replace(&format!("@@{{{name}}}"), value);
    }
    out
}

/// If `pattern` is a literal path (`.` and its escape `\.` both read as a
/// dot, a final `$` allowed), returns it unescaped and whether it was anchored with `$`.
fn literal_path(pattern: &str) -> Option<(String, bool)> {
    let (body, anchored) = match pattern.strip_suffix('$') {
        Some(body) => (body, true),
        None => (pattern, false),
    };
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped @ ('.' | '-' | '+' | '_' | '@' | '/')) => out.push(escaped),
                _ => return None,
            },
            // An unescaped `.` matches any character in AIDE, so reading it
            // as a literal dot selects a subset of what AIDE would; it is
            // how `/etc/resolv.conf` is usually written.
            '*' | '+' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '|' | '^' | '$' => return None,
            c => out.push(c),
        }
    }
    Some((out, anchored))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fim::attrs::Attr;

    const SAMPLE: &str = r#"# a small aide.conf
database_in=file:/var/lib/aide/aide.db
database_out=file:/var/lib/aide/aide.db.new
gzip_dbout=yes
@@define BINDIR /usr/bin
NORMAL = p+i+n+u+g+s+m+c+sha256
LOG = p+u+g+i+n
/boot NORMAL
@@{BINDIR} NORMAL
=/etc$ p+u+g
=/root/ LOG
/etc/ssh f NORMAL-m
!/var/log/.*
!/etc/mtab$
/var/spool/.*\.tmp NORMAL
/opt BOGUS
what is this
@@ifdef X
"#;

    #[test]
    fn imports_the_common_subset() {
        let import = import(SAMPLE, HashAlgo::Sha256);
        let rules: Vec<(String, String, Scope)> =
            import.rules.iter().map(|r| (r.path.clone(), r.attrs.to_string(), r.scope)).collect();
        assert_eq!(
            rules,
            vec![
                ("/boot".into(), "p+i+n+u+g+s+m+c+sha256".into(), Scope::Tree),
                ("/usr/bin".into(), "p+i+n+u+g+s+m+c+sha256".into(), Scope::Tree),
                ("/etc".into(), "p+u+g".into(), Scope::SelfOnly),
                ("/root".into(), "p+i+n+u+g".into(), Scope::Children),
                ("/etc/ssh".into(), "p+i+n+u+g+s+c+sha256".into(), Scope::Tree),
            ]
        );
        assert_eq!(
            import.excludes,
            vec!["re:/var/log/.*".to_string(), "re:/etc/mtab$".to_string()]
        );
        assert_eq!(import.groups.len(), 2);
        let lines: Vec<usize> = import.diagnostics.iter().map(|d| d.line).collect();
        assert_eq!(lines, vec![12, 15, 16, 17, 18], "{:#?}", import.diagnostics);
        assert!(import.diagnostics[1].message.contains("regular expression"));
        assert!(import.diagnostics[2].message.contains("BOGUS"));
    }

    #[test]
    fn predefined_groups_use_the_chosen_hash() {
        let import = import("/usr R\n", HashAlgo::Blake3);
        assert!(import.rules[0].attrs.contains(Attr::Blake3));
        assert!(import.diagnostics.is_empty());
    }

    #[test]
    fn hostile_input_does_not_panic() {
        let text = "=\n!\n/\n= =\n\u{0}\n@@\n@@define\n/x \u{ff}\n".repeat(3);
        let import = import(&text, HashAlgo::Sha256);
        assert!(!import.diagnostics.is_empty());
    }
}
