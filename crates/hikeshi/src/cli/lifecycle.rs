//! The lifecycle subcommands of `hikeshi incident`: `advance`, `note`,
//! `assign`, `close` and `checklist`.
//!
//! Changes made here are a person's: the actor is `--by NAME`, or the
//! invoking user ($SUDO_USER, then $USER, then $LOGNAME, then `uid:N`).

use std::fmt::Write as _;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use hikeshi_core::incident::{Actor, IncidentId, State};
use hikeshi_core::lifecycle::{self, csf_function, phase_of, ChecklistItem, Phase, Role};
use jiff::Timestamp;
use serde::Serialize;

use super::incident::{escape_text, to_json};
use crate::store::Store;

/// Who is acting.
#[derive(Debug, clap::Args)]
pub struct ByArg {
    /// Who makes the change (default: the invoking user, $SUDO_USER
    /// first).
    #[arg(long, value_name = "NAME")]
    by: Option<String>,
}

impl ByArg {
    fn actor(&self) -> anyhow::Result<Actor> {
        let name = match &self.by {
            Some(name) => name.clone(),
            None => invoking_user(),
        };
        let name = lifecycle::check_person_name(&name)
            .map_err(|e| anyhow::anyhow!("invalid --by name {:?}: {e}", escape_text(&name)))?;
        Ok(Actor::Person(name.to_string()))
    }
}

/// The user running hikeshi: the one behind sudo if any.
fn invoking_user() -> String {
    for var in ["SUDO_USER", "USER", "LOGNAME"] {
        if let Ok(name) = std::env::var(var) {
            if lifecycle::check_person_name(&name).is_ok() {
                return name;
            }
        }
    }
    format!("uid:{}", rustix::process::getuid().as_raw())
}

#[derive(Debug, clap::Args)]
pub struct AdvanceArgs {
    /// The incident's number.
    #[arg(value_name = "N")]
    id: IncidentId,
    /// The state to move to: detected, analysing, contained, eradicated,
    /// recovered.
    #[arg(long, value_name = "STATE")]
    to: State,
    #[command(flatten)]
    by: ByArg,
}

#[derive(Debug, clap::Args)]
pub struct NoteArgs {
    #[arg(value_name = "N")]
    id: IncidentId,
    /// The note.
    #[arg(value_name = "TEXT")]
    text: String,
    #[command(flatten)]
    by: ByArg,
}

#[derive(Debug, clap::Args)]
pub struct AssignArgs {
    #[arg(value_name = "N")]
    id: IncidentId,
    /// incident-manager, security-analyst, system-administrator or
    /// communication-lead.
    #[arg(value_name = "ROLE")]
    role: Role,
    /// Who takes the role.
    #[arg(value_name = "PERSON")]
    person: String,
    #[command(flatten)]
    by: ByArg,
}

#[derive(Debug, clap::Args)]
pub struct CloseArgs {
    #[arg(value_name = "N")]
    id: IncidentId,
    /// What made the incident possible (e.g. "weak password on admin").
    #[arg(long, value_name = "TEXT", required = true)]
    root_cause: String,
    /// What was done so it does not happen again (e.g. "key-only SSH").
    #[arg(long, value_name = "TEXT", required = true)]
    preventive: String,
    #[command(flatten)]
    by: ByArg,
}

#[derive(Debug, clap::Args)]
pub struct ChecklistArgs {
    #[arg(value_name = "N")]
    id: IncidentId,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn advance(
    store: &mut Store,
    args: AdvanceArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let actor = args.by.actor()?;
    let now = Timestamp::now();
    store.write(|b| b.advance_incident(args.id, args.to, now, &actor))?;
    writeln!(
        out,
        "incident {} is now {} ({}), by {}",
        args.id,
        args.to,
        args.to.nist_phase(),
        escape_text(&actor.to_string())
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn note(store: &mut Store, args: NoteArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let actor = args.by.actor()?;
    let now = Timestamp::now();
    let row = store.write(|b| b.add_note(args.id, now, &actor, &args.text))?;
    writeln!(out, "incident {}: note added (timeline entry {row})", args.id)?;
    Ok(ExitCode::SUCCESS)
}

pub fn assign(
    store: &mut Store,
    args: AssignArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let actor = args.by.actor()?;
    let now = Timestamp::now();
    store.write(|b| b.assign(args.id, now, &actor, args.role, &args.person))?;
    writeln!(
        out,
        "incident {}: {} is {}",
        args.id,
        escape_text(args.person.trim()),
        args.role.title()
    )?;
    Ok(ExitCode::SUCCESS)
}

pub fn close(store: &mut Store, args: CloseArgs, out: &mut dyn Write) -> anyhow::Result<ExitCode> {
    let actor = args.by.actor()?;
    let now = Timestamp::now();
    store.write(|b| b.close_incident(args.id, now, &actor, &args.root_cause, &args.preventive))?;
    writeln!(out, "incident {} is closed (Post-Incident Activity)", args.id)?;
    Ok(ExitCode::SUCCESS)
}

/// The checklist as JSON.
#[derive(Debug, Serialize)]
struct ChecklistJson<'a> {
    incident: IncidentId,
    state: State,
    nist_phase: &'static str,
    csf_function: &'static str,
    csf_category: &'static str,
    done: usize,
    total: usize,
    items: Vec<ItemJson<'a>>,
}

#[derive(Debug, Serialize)]
struct ItemJson<'a> {
    id: &'static str,
    phase: &'static str,
    state: State,
    role: &'static str,
    title: &'static str,
    command: &'static str,
    done: bool,
    proof: Option<&'a lifecycle::Proof>,
}

pub fn checklist(
    store: &Store,
    args: ChecklistArgs,
    out: &mut dyn Write,
) -> anyhow::Result<ExitCode> {
    let facts = store.incident_facts(args.id)?;
    let items = lifecycle::checklist(&facts);
    let text = if args.json {
        let (function, category) = csf_function(facts.state);
        let json = ChecklistJson {
            incident: args.id,
            state: facts.state,
            nist_phase: facts.state.nist_phase(),
            csf_function: function.as_str(),
            csf_category: category,
            done: items.iter().filter(|i| i.done.is_some()).count(),
            total: items.len(),
            items: items
                .iter()
                .map(|i| ItemJson {
                    id: i.step.id,
                    phase: i.step.phase.as_str(),
                    state: i.step.state,
                    role: i.step.role.title(),
                    title: i.step.title,
                    command: i.step.command,
                    done: i.done.is_some(),
                    proof: i.done.as_ref(),
                })
                .collect(),
        };
        to_json(&json).context("checklist")?
    } else {
        render_checklist(args.id, facts.state, &items)
    };
    out.write_all(text.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn render_checklist(id: IncidentId, state: State, items: &[ChecklistItem]) -> String {
    let (function, category) = csf_function(state);
    let done = items.iter().filter(|i| i.done.is_some()).count();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Incident {id}: {state} (NIST SP 800-61r2: {}; CSF 2.0: {function}, {category})",
        phase_of(state)
    );
    let _ = writeln!(out, "{done} of {} steps done", items.len());
    let mut phase: Option<Phase> = None;
    for item in items {
        if phase != Some(item.step.phase) {
            phase = Some(item.step.phase);
            let functions: Vec<&str> =
                item.step.phase.csf_functions().iter().map(|f| f.as_str()).collect();
            let _ = writeln!(out, "\n{} ({})", item.step.phase, functions.join(", "));
        }
        let mark = if item.done.is_some() { "[x]" } else { "[ ]" };
        let _ = writeln!(
            out,
            "  {mark} {:<22} {}  [{}]",
            item.step.id,
            item.step.title,
            item.step.role.title()
        );
        match &item.done {
            Some(proof) => {
                let when = proof.at.map(|t| format!(" at {t}")).unwrap_or_default();
                let _ = writeln!(
                    out,
                    "        done: {} {}{when}: {}",
                    proof.source,
                    proof.reference,
                    escape_text(&proof.summary)
                );
            }
            None => {
                let command = with_incident(item.step.command, id);
                let _ = writeln!(out, "        left: {command}");
            }
        }
    }
    out
}

/// A playbook command with its `N` placeholder (a whole word, not the N of
/// `NAME`) replaced by the incident number.
fn with_incident(command: &str, id: impl std::fmt::Display) -> String {
    let id = id.to_string();
    command
        .split(' ')
        .map(|word| if word == "N" { id.as_str() } else { word })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod placeholder_tests {
    #[test]
    fn only_the_whole_word_n_is_the_incident_number() {
        assert_eq!(
            super::with_incident("hikeshi incident assign N incident-manager NAME", 7),
            "hikeshi incident assign 7 incident-manager NAME"
        );
    }
}
