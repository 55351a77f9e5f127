//! Where log lines come from: files (and stdin) for now; the journal and a
//! syslog receiver later. Sources yield raw lines as bytes with their
//! origin, never interpreting them: that is the core's job.

pub mod cursor;
pub mod lines;
