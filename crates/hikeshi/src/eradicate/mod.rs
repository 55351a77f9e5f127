//! Eradication I/O: reads what the pure rules of
//! `hikeshi_core::eradicate` judge. [`rootfs`] reads files of the audited
//! tree (`--root`) without ever leaving it; [`walk`] is the parallel
//! one-filesystem walk behind `hikeshi recent` and the setuid scan; [`ls`]
//! prints `ls -l` lines; [`baseline`] stores snapshots atomically;
//! [`collect`] gathers the account files and persistence items.

pub mod baseline;
pub mod collect;
pub mod ls;
pub mod report;
pub mod rootfs;
pub mod walk;
