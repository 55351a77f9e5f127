//! Gathers, from an audited tree, what the core rules judge: the account
//! files (with sudoers includes followed and every account's
//! `authorized_keys`), and the persistence items.
//!
//! Nothing here fails the whole audit: a file that cannot be read becomes
//! a warning that names it, and the audit goes on with the rest.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::PathBuf;

use globset::GlobSet;
use hikeshi_core::eradicate::accounts::{
    parse_passwd, sudoers_includedir_reads, sudoers_includes, AccountsInput, AuthorizedKeysFile,
    TextFile,
};
use hikeshi_core::eradicate::persistence::{classify, Category, PersistenceItem};
use rustix::fs::FileType;
use sha2::{Digest, Sha256};

use super::rootfs::{join, system_path, RootFs, MAX_TEXT_FILE_BYTES};
use super::walk::{walk, WalkOptions};

/// `authorized_keys` files larger than this are not read.
const MAX_KEYS_FILE_BYTES: u64 = 1024 * 1024;
/// sudoers include depth and file count limits (sudo's own depth limit is 128;
/// a real configuration is a handful of files).
const MAX_SUDOERS_DEPTH: usize = 8;
const MAX_SUDOERS_FILES: usize = 256;
/// Content kept for evidence, per persistence item.
const MAX_CONTENT_BYTES: usize = 64 * 1024;
/// Files are hashed up to this size; a larger one is hashed over its prefix
/// and says so.
const MAX_HASHED_BYTES: u64 = 256 * 1024 * 1024;
/// Items found under one recursive directory (systemd units).
const MAX_ITEMS_PER_TREE: usize = 10_000;

/// Reads the account files under `root`. Warnings name files that exist
/// but could not be read.
pub fn read_accounts(root: &RootFs) -> (AccountsInput, Vec<String>) {
    let mut warnings = Vec::new();
    let mut optional = |path: &str, max: u64| match root.read_optional(path, max) {
        Ok(bytes) => bytes.map(|b| TextFile::new(path, b)),
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    };
    let passwd = optional("/etc/passwd", MAX_TEXT_FILE_BYTES);
    let shadow = optional("/etc/shadow", MAX_TEXT_FILE_BYTES);
    let group = optional("/etc/group", MAX_TEXT_FILE_BYTES);
    let login_defs = optional("/etc/login.defs", MAX_TEXT_FILE_BYTES);
    if passwd.is_none() {
        warnings
            .push(format!("no /etc/passwd under {}: no accounts to audit", root.root().display()));
    }
    let sudoers = read_sudoers(root, &mut warnings);
    let mut authorized_keys = Vec::new();
    for (user, home) in homes(passwd.as_ref()) {
        for name in ["authorized_keys", "authorized_keys2"] {
            let path = format!("{}/.ssh/{name}", home.trim_end_matches('/'));
            match root.read_optional(&path, MAX_KEYS_FILE_BYTES) {
                Ok(Some(bytes)) => authorized_keys.push(AuthorizedKeysFile {
                    user: user.clone(),
                    file: TextFile::new(path, bytes),
                }),
                Ok(None) => {}
                // A home that is not a directory, or not there: no keys.
                Err(e) if is_missing_dir(&e) => {}
                Err(e) => warnings.push(e.to_string()),
            }
        }
    }
    (AccountsInput { passwd, shadow, group, sudoers, login_defs, authorized_keys }, warnings)
}

fn is_missing_dir(e: &super::rootfs::RootError) -> bool {
    matches!(e, super::rootfs::RootError::Io { source, .. }
        if source.raw_os_error() == Some(libc::ENOTDIR) || source.kind() == std::io::ErrorKind::NotFound)
}

/// `(user, home)` of every account with a real home directory.
pub fn homes(passwd: Option<&TextFile>) -> Vec<(String, String)> {
    let Some(passwd) = passwd else { return Vec::new() };
    parse_passwd(passwd)
        .0
        .into_iter()
        .filter(|e| e.home.starts_with('/') && e.home != "/nonexistent")
        .map(|e| (e.name, e.home))
        .collect()
}

/// `/etc/sudoers` and everything it includes, in sudo's reading order.
fn read_sudoers(root: &RootFs, warnings: &mut Vec<String>) -> Vec<TextFile> {
    let mut files = Vec::new();
    let mut seen = BTreeSet::new();
    read_sudoers_file(root, "/etc/sudoers", 0, &mut files, &mut seen, warnings);
    files
}

fn read_sudoers_file(
    root: &RootFs,
    path: &str,
    depth: usize,
    files: &mut Vec<TextFile>,
    seen: &mut BTreeSet<String>,
    warnings: &mut Vec<String>,
) {
    if depth > MAX_SUDOERS_DEPTH || files.len() >= MAX_SUDOERS_FILES {
        warnings
            .push(format!("{path}: sudoers includes nested too deep or too many files; not read"));
        return;
    }
    if !seen.insert(path.to_string()) {
        return;
    }
    let bytes = match root.read_optional(path, MAX_TEXT_FILE_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) if depth == 0 => return,
        Ok(None) => {
            warnings.push(format!("{path}: included from sudoers but missing"));
            return;
        }
        Err(e) => {
            warnings.push(e.to_string());
            return;
        }
    };
    let file = TextFile::new(path, bytes);
    let includes = sudoers_includes(&file);
    files.push(file);
    let base_dir = path.rsplit_once('/').map_or("/", |(d, _)| if d.is_empty() { "/" } else { d });
    for include in includes {
        let target = if include.path.starts_with('/') {
            include.path.clone()
        } else {
            format!("{base_dir}/{}", include.path)
        };
        if include.is_dir {
            match root.list_dir(&target) {
                Ok(entries) => {
                    for (name, kind) in entries {
                        let name_text = String::from_utf8_lossy(&name);
                        if matches!(kind, FileType::RegularFile | FileType::Unknown)
                            && sudoers_includedir_reads(&name_text)
                        {
                            read_sudoers_file(
                                root,
                                &join(&target, &name),
                                depth + 1,
                                files,
                                seen,
                                warnings,
                            );
                        }
                    }
                }
                Err(e) => warnings.push(e.to_string()),
            }
        } else {
            read_sudoers_file(root, &target, depth + 1, files, seen, warnings);
        }
    }
}

/// Fixed persistence files on every system.
const FIXED_FILES: [&str; 9] = [
    "/etc/crontab",
    "/etc/anacrontab",
    "/etc/rc.local",
    "/etc/ld.so.preload",
    "/etc/profile",
    "/etc/bash.bashrc",
    "/etc/environment",
    "/etc/zsh/zshrc",
    "/etc/zsh/zprofile",
];

/// Directories whose entries (one level) are persistence items.
const FLAT_DIRS: [&str; 8] = [
    "/etc/cron.d",
    "/etc/cron.hourly",
    "/etc/cron.daily",
    "/etc/cron.weekly",
    "/etc/cron.monthly",
    "/etc/profile.d",
    "/var/spool/cron",
    "/var/spool/cron/crontabs",
];

/// Directories walked recursively (unit files, drop-ins, `.wants` links).
const TREE_DIRS: [&str; 2] = ["/etc/systemd/system", "/etc/systemd/user"];

/// Per-user files, relative to the home directory.
const HOME_FILES: [&str; 10] = [
    ".ssh/authorized_keys",
    ".ssh/authorized_keys2",
    ".bashrc",
    ".bash_profile",
    ".bash_login",
    ".bash_logout",
    ".profile",
    ".zshrc",
    ".zprofile",
    ".zshenv",
];

/// Collects every persistence item under `root`. With `setuid_scan`, the
/// whole tree (one filesystem) is walked for setuid/setgid files too.
pub fn persistence_items(
    root: &RootFs,
    setuid_scan: bool,
    excludes: &GlobSet,
) -> (Vec<PersistenceItem>, Vec<String>) {
    let mut items = Vec::new();
    let mut warnings = Vec::new();
    let passwd = match root.read_optional("/etc/passwd", MAX_TEXT_FILE_BYTES) {
        Ok(p) => p.map(|b| TextFile::new("/etc/passwd", b)),
        Err(e) => {
            warnings.push(e.to_string());
            None
        }
    };
    let mut candidates: BTreeSet<String> = FIXED_FILES.iter().map(|s| s.to_string()).collect();
    for dir in FLAT_DIRS {
        match root.list_dir(dir) {
            Ok(entries) => {
                for (name, kind) in entries {
                    if kind != FileType::Directory {
                        candidates.insert(join(dir, &name));
                    }
                }
            }
            Err(e) => warnings.push(e.to_string()),
        }
    }
    let mut trees: Vec<String> = TREE_DIRS.iter().map(|s| s.to_string()).collect();
    let mut home_set = BTreeSet::new();
    for (_, home) in homes(passwd.as_ref()) {
        home_set.insert(home);
    }
    home_set.insert("/root".to_string());
    for home in &home_set {
        let home = home.trim_end_matches('/');
        for f in HOME_FILES {
            candidates.insert(format!("{home}/{f}"));
        }
        trees.push(format!("{home}/.config/systemd/user"));
    }
    for tree in &trees {
        collect_tree(root, tree, 0, &mut candidates, &mut warnings);
    }
    for path in &candidates {
        let Some(category) = classify(path) else { continue };
        match item(root, path, category) {
            Ok(Some(item)) => items.push(item),
            Ok(None) => {}
            Err(e) => warnings.push(e),
        }
    }
    if setuid_scan {
        let options = WalkOptions {
            roots: vec![root.root().to_path_buf()],
            excludes: excludes.clone(),
            all_filesystems: false,
        };
        let result = walk(&options, |meta| meta.mode & 0o6000 != 0);
        for e in &result.errors {
            warnings.push(format!("{}: {}", e.path.display(), e.error));
        }
        for hit in result.hits {
            let path = system_path(root.root(), &hit.path);
            match item(root, &path, Category::Setuid) {
                Ok(Some(item)) => items.push(item),
                Ok(None) => {}
                Err(e) => warnings.push(e),
            }
        }
    }
    items.sort_by(|a, b| a.path.cmp(&b.path).then(a.category.cmp(&b.category)));
    (items, warnings)
}

fn collect_tree(
    root: &RootFs,
    dir: &str,
    depth: usize,
    out: &mut BTreeSet<String>,
    warnings: &mut Vec<String>,
) {
    if depth > 6 || out.len() > MAX_ITEMS_PER_TREE * 4 {
        return;
    }
    let entries = match root.list_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            if !is_missing_dir(&e) {
                warnings.push(e.to_string());
            }
            return;
        }
    };
    for (name, kind) in entries.into_iter().take(MAX_ITEMS_PER_TREE) {
        let path = join(dir, &name);
        if kind == FileType::Directory {
            collect_tree(root, &path, depth + 1, out, warnings);
        } else {
            out.insert(path);
        }
    }
}

/// One item's metadata, hash and (for text categories) content; `Ok(None)`
/// when it does not exist or is not a file or link.
fn item(root: &RootFs, path: &str, category: Category) -> Result<Option<PersistenceItem>, String> {
    let meta = match root.lstat(path) {
        Ok(meta) => meta,
        Err(e) if e.is_not_found() || is_missing_dir(&e) => return Ok(None),
        Err(e) => return Err(e.to_string()),
    };
    let mut item = PersistenceItem {
        path: path.to_string(),
        category,
        mode: meta.mode,
        uid: meta.uid,
        gid: meta.gid,
        size: meta.size,
        mtime: meta.mtime,
        ctime: meta.ctime,
        sha256: String::new(),
        symlink_target: None,
        content: None,
    };
    match meta.file_type() {
        FileType::Symlink => {
            let target = root.read_link(path).map_err(|e| e.to_string())?;
            item.sha256 = hikeshi_core::eradicate::sha256_hex(&target);
            item.symlink_target = Some(String::from_utf8_lossy(&target).into_owned());
        }
        FileType::RegularFile => {
            let (file, _) = root.open_file(path).map_err(|e| e.to_string())?;
            let mut hasher = Sha256::new();
            let mut content = Vec::new();
            let mut reader = file.take(MAX_HASHED_BYTES);
            let mut buf = vec![0u8; 64 * 1024];
            let mut total = 0u64;
            loop {
                let n = reader.read(&mut buf).map_err(|e| format!("{path}: {e}"))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                if category != Category::Setuid && content.len() < MAX_CONTENT_BYTES {
                    let keep = n.min(MAX_CONTENT_BYTES - content.len());
                    content.extend_from_slice(&buf[..keep]);
                }
                total += n as u64;
            }
            item.sha256 = hikeshi_core::eradicate::hex(&hasher.finalize());
            if total >= MAX_HASHED_BYTES {
                item.sha256 = format!("prefix-{MAX_HASHED_BYTES}:{}", item.sha256);
            }
            if category != Category::Setuid {
                item.content = Some(content);
            }
        }
        _ => return Ok(None),
    }
    Ok(Some(item))
}

/// The default roots when none is given.
pub fn default_roots(roots: Vec<PathBuf>) -> Vec<PathBuf> {
    if roots.is_empty() {
        vec![PathBuf::from("/")]
    } else {
        roots
    }
}
