//! Running the hikeshi program as a user would, against a test's data
//! dir, with an empty configuration so that the host's /etc/hikeshi is
//! never read.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;

/// Runs `hikeshi --data-dir DATA_DIR --config EMPTY ARGS` to completion.
pub fn hikeshi(data_dir: &Path, args: &[&str]) -> Output {
    hikeshi_env(data_dir, args, &[])
}

/// [`hikeshi`] with extra environment variables.
pub fn hikeshi_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    // Tests may run programs directly: the exec rule is for the product.
    #[allow(clippy::disallowed_methods)]
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_hikeshi"));
    cmd.arg("--data-dir").arg(data_dir).arg("--config").arg(empty_config(data_dir)).args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run hikeshi")
}

/// An empty configuration file next to `data_dir` (`DATA_DIR.toml`).
pub fn empty_config(data_dir: &Path) -> PathBuf {
    let path = data_dir.with_extension("toml");
    std::fs::write(&path, "").unwrap();
    path
}
