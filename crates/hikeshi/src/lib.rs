//! hikeshi: incident response for Linux servers.
//!
//! This crate does all the I/O (files, the journal, the network, the
//! firewall, SQLite, mail) around the pure `hikeshi-core`. Its modules
//! follow the runbook: `sources` read logs, `cli` wires commands, `exec`
//! is the one place that runs other programs, `store` keeps incidents.

pub mod cli;
pub mod config;
pub mod contain;
pub mod daemon;
pub mod data_dir;
pub mod doctor;
pub mod eradicate;
pub mod evidence;
pub mod exec;
pub mod fim;
pub mod harden;
pub mod host;
pub mod notify;
pub mod pipeline;
pub mod pipeline_memory;
pub mod report;
pub mod respond;
pub mod sources;
pub mod store;
pub mod verify;
