//! A test's own data dir in a temp directory, and its incident store
//! opened through the library as the program opens it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hikeshi::store::{self, Store, StoreOptions};
use hikeshi_core::incident::{EvidenceCap, Limits};

/// A temp directory and the data dir `TMP/data` in it; both removed on
/// drop.
pub struct DataDir {
    pub tmp: tempfile::TempDir,
    pub data: PathBuf,
}

impl DataDir {
    /// The data dir is not created: the program creates it when it needs
    /// it.
    pub fn new() -> DataDir {
        let tmp = tempfile::tempdir().unwrap();
        let data = tmp.path().join("data");
        DataDir { tmp, data }
    }

    /// [`DataDir::new`] with the data dir created.
    pub fn created() -> DataDir {
        let dir = DataDir::new();
        std::fs::create_dir_all(&dir.data).unwrap();
        dir
    }
}

/// The store of the data dir `data`, with the default limits.
pub fn open(data: &Path) -> Store {
    Store::open(&store::db_path(data)).unwrap()
}

/// The store of the data dir `data`, keeping at most `max_lines` evidence
/// lines per incident (so that tests reach the cap with a few lines).
pub fn open_capped(data: &Path, max_lines: u64) -> Store {
    let options = StoreOptions {
        limits: Limits { evidence: EvidenceCap::from_max_lines(max_lines), ..Limits::default() },
        ..StoreOptions::default()
    };
    Store::open_with(&store::db_path(data), options).unwrap()
}
