//! File integrity monitoring, the pure half: which paths and attributes
//! are watched ([`rules`], [`attrs`], [`aide`] import), what is recorded
//! per file ([`record`]), the streaming baseline diff ([`diff`]) and the
//! check report with AIDE's exit codes ([`report`]). Walking, hashing and
//! the baseline file live in the application crate.

pub mod aide;
pub mod attrs;
pub mod diff;
pub mod path;
pub mod record;
pub mod report;
pub mod rules;

pub use attrs::{Attr, AttrSet, Groups, HashAlgo};
pub use diff::{diff, Change, DiffError};
pub use record::{FileRecord, FileTime, FileType};
pub use report::CheckReport;
pub use rules::{Rule, RuleSet, Scope};
