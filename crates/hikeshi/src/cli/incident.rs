//! `hikeshi incident`: lists incidents and shows one with its timeline and
//! evidence, as text for people or as JSON for programs; carries one
//! through its lifecycle (advance, note, assign, close) and shows its
//! playbook checklist.
//!
//! Everything shown may be attacker-chosen (user names, host names, log
//! lines), so text output escapes control characters, invisible
//! formatting characters and invalid UTF-8: nothing an attacker wrote can
//! move the cursor, recolour the terminal or reorder a line. JSON output
//! escapes the same characters as `\uXXXX`.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use hikeshi_core::incident::{hex, BoundedSet, IncidentId, State};

use super::Context;
use crate::store::{self, Incident, IncidentDetail, IncidentFilter, Store};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: IncidentCommand,
}

#[derive(Debug, Subcommand)]
enum IncidentCommand {
    /// List incidents, oldest first.
    List(ListArgs),
    /// Show one incident: what happened, its timeline and its evidence.
    Show(ShowArgs),
    /// Move an incident to another state (detected, analysing, contained,
    /// eradicated, recovered; closing is `incident close`).
    Advance(super::lifecycle::AdvanceArgs),
    /// Add a note to an incident's timeline.
    Note(super::lifecycle::NoteArgs),
    /// Give a person a role on an incident (incident-manager,
    /// security-analyst, system-administrator, communication-lead).
    Assign(super::lifecycle::AssignArgs),
    /// Close an incident: its root cause and preventive measures are required.
    Close(super::lifecycle::CloseArgs),
    /// The runbook's steps for an incident: what is done (and the record
    /// that proves it) and what is left.
    Checklist(super::lifecycle::ChecklistArgs),
}

#[derive(Debug, clap::Args)]
struct ListArgs {
    /// Only incidents in this state (detected, analysing, contained,
    /// eradicated, recovered, closed).
    #[arg(long, value_name = "STATE")]
    state: Option<State>,
    /// Only open incidents (every state but closed).
    #[arg(long, conflicts_with = "state")]
    open: bool,
    /// Print JSON (an array of incidents) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct ShowArgs {
    /// The incident's number (as listed).
    #[arg(value_name = "N")]
    id: IncidentId,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    crate::data_dir::ensure(&ctx.data_dir)?;
    let path = store::db_path(&ctx.data_dir);
    let mut store = Store::open_with(&path, store::StoreOptions::from_config(&ctx.config))?;
    let mut out = std::io::stdout().lock();
    match args.command {
        IncidentCommand::Advance(a) => return super::lifecycle::advance(&mut store, a, &mut out),
        IncidentCommand::Note(a) => return super::lifecycle::note(&mut store, a, &mut out),
        IncidentCommand::Assign(a) => return super::lifecycle::assign(&mut store, a, &mut out),
        IncidentCommand::Close(a) => return super::lifecycle::close(&mut store, a, &mut out),
        IncidentCommand::Checklist(a) => return super::lifecycle::checklist(&store, a, &mut out),
        IncidentCommand::List(list) => {
            let filter = IncidentFilter { state: list.state, open_only: list.open };
            let incidents = store.list_incidents(&filter)?;
            let text = if list.json { to_json(&incidents)? } else { render_list(&incidents) };
            out.write_all(text.as_bytes())?;
        }
        IncidentCommand::Show(show) => {
            let detail = store.get_incident(show.id)?;
            let text = if show.json { to_json(&detail)? } else { render_detail(&detail) };
            out.write_all(text.as_bytes())?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Pretty JSON with every character a terminal might act on escaped.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let json = serde_json::to_string_pretty(value).context("cannot serialise to JSON")?;
    // serde_json escapes C0 controls only. DEL, C1 controls and invisible
    // formatting characters can only occur inside JSON strings, where
    // `\uXXXX` means the same character, so this keeps the value intact.
    let mut safe = String::with_capacity(json.len() + 1);
    for c in json.chars() {
        if c == '\u{7f}' || ('\u{80}'..='\u{9f}').contains(&c) || is_invisible_format(c) {
            let _ = write!(safe, "\\u{:04x}", c as u32);
        } else {
            safe.push(c);
        }
    }
    safe.push('\n');
    Ok(safe)
}

/// Characters that change how a line is displayed without showing
/// themselves: bidirectional overrides and isolates (which can make
/// `from 192.0.2.1` read as something else), zero-width characters, line
/// and paragraph separators, the byte order mark.
fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{061c}'
            | '\u{200b}'..='\u{200f}'
            | '\u{2028}'..='\u{202e}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{feff}'
    )
}

/// `s` made safe to print on a terminal: backslash, control characters
/// (C0, DEL, C1: escape sequences start there) and invisible formatting
/// characters are written as escapes (`\\`, `\n`, `\t`, `\u{1b}`).
pub fn escape_text(s: &str) -> Cow<'_, str> {
    let needs = |c: char| c == '\\' || c.is_control() || is_invisible_format(c);
    if !s.chars().any(needs) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    push_escaped(&mut out, s);
    Cow::Owned(out)
}

fn push_escaped(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || is_invisible_format(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
}

/// Raw bytes (a log line) made safe to print: text escaped as in
/// [`escape_text`], bytes that are not UTF-8 written as `\xNN`.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out
}

fn render_list(incidents: &[Incident]) -> String {
    if incidents.is_empty() {
        return String::new();
    }
    let header =
        ["ID", "STATE", "SEVERITY", "RULE", "SUBJECT", "ATTEMPTS", "FIRST SEEN", "LAST SEEN"];
    let rows: Vec<[String; 8]> = incidents
        .iter()
        .map(|i| {
            let c = &i.campaign;
            [
                i.id.to_string(),
                c.state.to_string(),
                c.severity.to_string(),
                escape_text(&c.rule).into_owned(),
                format!("{} {}", c.key.kind, escape_text(&c.key.subject)),
                c.attempts.to_string(),
                c.first_seen.to_string(),
                c.last_seen.to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, cell) in cells.enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let _ = write!(text, "{cell:<width$}", width = widths[i]);
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in &rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn render_set(set: &BoundedSet) -> String {
    if set.kept.is_empty() && set.omitted == 0 {
        return "(none)".to_string();
    }
    let mut text = set.kept.iter().map(|s| escape_text(s)).collect::<Vec<_>>().join(", ");
    if set.omitted > 0 {
        let _ = write!(
            text,
            " (and {} more sighting(s) not kept: the list is capped at {})",
            set.omitted,
            set.kept.len()
        );
    }
    text
}

fn render_detail(detail: &IncidentDetail) -> String {
    let i = &detail.incident;
    let c = &i.campaign;
    let mut out = String::new();
    let _ = writeln!(out, "Incident {}", i.id);
    let _ = writeln!(out, "  State:        {} ({})", c.state, i.phase);
    let _ = writeln!(out, "  Severity:     {}", c.severity);
    let _ = writeln!(out, "  Rule:         {}", escape_text(&c.rule));
    let others: Vec<_> =
        c.rules.kept.iter().filter(|r| **r != c.rule).map(|r| escape_text(r)).collect();
    if !others.is_empty() {
        let _ = writeln!(out, "  Also fired:   {}", others.join(", "));
    }
    let _ = writeln!(out, "  Source:       {} {}", c.key.kind, escape_text(&c.key.subject));
    let _ = writeln!(out, "  Opened:       {}", i.opened_at);
    let _ = writeln!(out, "  First seen:   {}", c.first_seen);
    let _ = writeln!(out, "  Last seen:    {}", c.last_seen);
    let _ = writeln!(out, "  Attempts:     {}", c.attempts);
    let _ = writeln!(out, "  Hosts:        {}", render_set(&c.hosts));
    let _ = writeln!(out, "  Users tried:  {}", render_set(&c.users));
    let _ = writeln!(
        out,
        "  Evidence:     {} line(s), {} kept; digest of all lines {}",
        c.evidence_lines,
        detail.evidence.len(),
        hex(&c.evidence_digest)
    );
    out.push_str("\nTimeline:\n");
    for row in &detail.timeline {
        let e = &row.entry;
        let _ = writeln!(
            out,
            "  {}  {:<14} {}  {}",
            e.at,
            e.kind.as_str(),
            escape_text(&e.actor.to_string()),
            escape_text(&e.detail)
        );
    }
    out.push_str("\nEvidence:\n");
    if detail.evidence.is_empty() {
        out.push_str("  (no lines kept)\n");
    }
    let mut previous: Option<u64> = None;
    for kept in &detail.evidence {
        let skipped = kept.seq.saturating_sub(previous.map_or(0, |p| p + 1));
        if skipped > 0 {
            let _ = writeln!(out, "  ... {skipped} line(s) not kept (counted in the digest)");
        }
        previous = Some(kept.seq);
        let ev = &kept.evidence;
        let _ = writeln!(
            out,
            "  [{}] {}:{}  sha256 {}",
            kept.seq,
            escape_text(&ev.file),
            ev.offset,
            ev.sha256_hex()
        );
        let _ = writeln!(out, "      {}", escape_bytes(&ev.line));
    }
    let unseen = c.evidence_lines.saturating_sub(previous.map_or(0, |p| p + 1));
    if unseen > 0 && !detail.evidence.is_empty() {
        let _ = writeln!(out, "  ... {unseen} line(s) not kept (counted in the digest)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        assert!(matches!(escape_text("root"), Cow::Borrowed("root")));
        assert_eq!(escape_text("ユーザー"), "ユーザー");
    }

    #[test]
    fn control_and_invisible_characters_are_escaped() {
        assert_eq!(escape_text("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
        assert_eq!(escape_text("x\ny\r\t"), "x\\ny\\r\\t");
        assert_eq!(escape_text("\u{7}\u{0}\u{7f}\u{9b}"), "\\u{7}\\u{0}\\u{7f}\\u{9b}");
        assert_eq!(escape_text("root\u{202e}1.2.0.291"), "root\\u{202e}1.2.0.291");
        assert_eq!(escape_text("a\\u{1b}"), "a\\\\u{1b}", "a literal backslash is not an escape");
    }

    #[test]
    fn invalid_utf8_is_shown_as_hex_bytes() {
        assert_eq!(escape_bytes(b"ok \xff\xfe \x1b[31mred"), "ok \\xff\\xfe \\u{1b}[31mred");
    }

    #[test]
    fn json_escapes_what_serde_leaves_raw() {
        let json = to_json(&"a\u{1b}b\u{9b}c\u{202e}d\u{7f}").unwrap();
        assert_eq!(json, "\"a\\u001bb\\u009bc\\u202ed\\u007f\"\n");
        let back: String = serde_json::from_str(&json).unwrap();
        assert_eq!(back, "a\u{1b}b\u{9b}c\u{202e}d\u{7f}");
    }
}
