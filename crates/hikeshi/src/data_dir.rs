//! Where hikeshi keeps its state (incidents, cursors, baselines).
//!
//! Resolution order: `--data-dir DIR`, then `HIKESHI_DATA_DIR` (both handled
//! by clap), then `/var/lib/hikeshi` for root, then the XDG state directory
//! (`$XDG_STATE_HOME/hikeshi`, default `~/.local/state/hikeshi`).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// The default data directory for the current user.
pub fn default_data_dir() -> PathBuf {
    let is_root = effective_uid() == 0;
    resolve_default(
        is_root,
        std::env::var_os("XDG_STATE_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn resolve_default(
    is_root: bool,
    xdg_state_home: Option<PathBuf>,
    home: Option<PathBuf>,
) -> PathBuf {
    if is_root {
        return PathBuf::from("/var/lib/hikeshi");
    }
    // The XDG spec says a relative XDG_STATE_HOME is invalid and must be ignored.
    if let Some(dir) = xdg_state_home.filter(|d| d.is_absolute()) {
        return dir.join("hikeshi");
    }
    match home {
        Some(home) => home.join(".local/state/hikeshi"),
        None => PathBuf::from(".hikeshi-state"),
    }
}

fn effective_uid() -> u32 {
    // `geteuid` cannot fail and has no preconditions; rustix/nix would be a
    // dependency for one call, and libc's binding is the same syscall.
    #[allow(unsafe_code)]
    unsafe {
        libc::geteuid()
    }
}

/// Creates the data directory (mode 0700: it holds evidence) if needed.
pub fn ensure(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_uses_var_lib() {
        assert_eq!(resolve_default(true, None, None), PathBuf::from("/var/lib/hikeshi"));
    }

    #[test]
    fn user_uses_xdg_state_home_then_home() {
        assert_eq!(
            resolve_default(false, Some("/x/state".into()), Some("/home/u".into())),
            PathBuf::from("/x/state/hikeshi")
        );
        assert_eq!(
            resolve_default(false, Some("relative".into()), Some("/home/u".into())),
            PathBuf::from("/home/u/.local/state/hikeshi")
        );
        assert_eq!(
            resolve_default(false, None, Some("/home/u".into())),
            PathBuf::from("/home/u/.local/state/hikeshi")
        );
    }
}
