//! hikeshi-core: the pure heart of hikeshi.
//!
//! It takes bytes and time as arguments and returns decisions. It performs
//! no I/O, never reads the clock and never spawns anything, so everything
//! in it is deterministic, replayable and cheap to test and benchmark. The
//! application crate `hikeshi` feeds it log lines and carries out what it
//! decides.
//!
//! Modules follow the data flow of the runbook: [`syslog`] envelopes →
//! [`sshd`] messages → [`event`]s (with [`correlate`] for lines that need
//! their connection) → detection and policy → incidents, [`alert`]s and reports.
//! [`eradicate`] judges what an intruder left behind (accounts,
//! persistence) from file bytes the application read.

pub mod alert;
pub mod allowlist;
pub mod audit;
pub mod contain;
pub mod correlate;
pub mod detect;
pub mod eradicate;
pub mod event;
pub mod fim;
pub mod harden;
pub mod incident;
pub mod isms;
pub mod lifecycle;
pub mod parse;
pub mod report;
pub mod sshd;
pub mod syslog;

pub use event::{AuthEvent, Kind, Mode, Outcome, Severity, Source};
