//! Lifecycle operations on incidents: a person advancing one, writing a
//! note, assigning a role, closing it with its root cause and preventive
//! measures; and gathering what the playbook checklist looks at.
//!
//! Recorded representation (what reports read):
//!
//! | timeline kind        | detail                                          |
//! |----------------------|-------------------------------------------------|
//! | `state_changed`      | `<from> → <to> (<NIST SP 800-61 Rev. 2 phase>)` |
//! | `note`               | the text as given (trimmed)                     |
//! | `assigned`           | `<Role title>: <person>` (e.g. `Incident Manager: alice`) |
//! | `root_cause`         | the text as given (trimmed)                     |
//! | `preventive_measure` | the text as given (trimmed)                     |
//!
//! The actor column says who: `hikeshi` for automatic moves,
//! `person:NAME` for people.

use hikeshi_core::incident::{Actor, IncidentId, State, TimelineKind};
use hikeshi_core::lifecycle::{self, assigned_detail, BanFact, EvidenceFact, IncidentFacts, Role};
use jiff::Timestamp;

use super::{Batch, Store, StoreError};

/// A lifecycle request refused before anything was written.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error("incident {id}: {reason}")]
    Refused { id: IncidentId, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Batch<'_> {
    /// A person (or hikeshi) moves incident `id` to `to`. Closing is not
    /// done here: it needs a root cause and preventive measures
    /// ([`Batch::close_incident`]).
    pub fn advance_incident(
        &mut self,
        id: IncidentId,
        to: State,
        at: Timestamp,
        actor: &Actor,
    ) -> Result<(), LifecycleError> {
        if to == State::Closed {
            return Err(LifecycleError::Refused {
                id,
                reason: "closing needs a root cause and preventive measures: use \
                         `hikeshi incident close N --root-cause TEXT --preventive TEXT`"
                    .to_string(),
            });
        }
        self.set_state(id, to, at, actor)?;
        Ok(())
    }

    /// Appends a `note`.
    pub fn add_note(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        text: &str,
    ) -> Result<i64, LifecycleError> {
        let text = lifecycle::check_text("note", text).map_err(|reason| refused(id, reason))?;
        Ok(self.add_timeline(id, at, actor, TimelineKind::Note, text)?)
    }

    /// Appends an `assigned` entry: `person` takes `role`.
    pub fn assign(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        role: Role,
        person: &str,
    ) -> Result<i64, LifecycleError> {
        let person = lifecycle::check_person_name(person)
            .map_err(|e| refused(id, format!("the person to assign: {e}")))?;
        let detail = assigned_detail(role, person);
        Ok(self.add_timeline(id, at, actor, TimelineKind::Assigned, &detail)?)
    }

    /// Closes incident `id`: records its root cause and preventive
    /// measures, then moves it to `closed`, all in this batch. Both texts
    /// are required.
    pub fn close_incident(
        &mut self,
        id: IncidentId,
        at: Timestamp,
        actor: &Actor,
        root_cause: &str,
        preventive: &str,
    ) -> Result<(), LifecycleError> {
        let root_cause = lifecycle::check_text("root cause", root_cause)
            .map_err(|e| refused(id, format!("closing needs a root cause: {e}")))?;
        let preventive = lifecycle::check_text("preventive measure", preventive)
            .map_err(|e| refused(id, format!("closing needs preventive measures: {e}")))?;
        // Checked first so that a refused close writes nothing at all.
        let state = self.incident_state(id)?;
        state
            .check_transition(State::Closed)
            .map_err(|source| StoreError::Transition { id, source })?;
        self.add_timeline(id, at, actor, TimelineKind::RootCause, root_cause)?;
        self.add_timeline(id, at, actor, TimelineKind::PreventiveMeasure, preventive)?;
        self.set_state(id, State::Closed, at, actor)?;
        Ok(())
    }
}

fn refused(id: IncidentId, reason: String) -> LifecycleError {
    LifecycleError::Refused { id, reason }
}

impl Store {
    /// What the playbook checklist of incident `id` looks at: its state,
    /// timeline, evidence files and bans.
    pub fn incident_facts(&self, id: IncidentId) -> Result<IncidentFacts, StoreError> {
        let detail = self.get_incident(id)?;
        let bans = self
            .conn()
            .prepare_cached(
                "SELECT id, address, created_at FROM bans WHERE incident_id = ?1 ORDER BY id",
            )
            .and_then(|mut stmt| {
                stmt.query_map([id.0], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(|e| self.error(e))?;
        let bans = bans
            .into_iter()
            .map(|(ban_id, address, secs)| {
                let created_at =
                    Timestamp::from_second(secs).map_err(|e| StoreError::BadValue {
                        path: self.path().to_path_buf(),
                        what: format!("bans row {ban_id}, created_at: {e}"),
                    })?;
                Ok(BanFact { id: ban_id, address, created_at })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(IncidentFacts {
            state: detail.incident.campaign.state,
            timeline: detail.timeline.into_iter().map(|t| (t.id, t.entry)).collect(),
            evidence: detail
                .evidence
                .into_iter()
                .map(|e| EvidenceFact { seq: e.seq, file: e.evidence.file })
                .collect(),
            bans,
        })
    }
}
