//! `hikeshi fim` end to end, on fixture trees built by each test.
//!
//! Needs root (CI runs as root): the owner-change test uses chown, and the
//! unreadable-file test reads another process's /proc/PID/mem.

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    /// A temp dir with `tree/` and a config watching it with `attrs`.
    fn new(attrs: &str) -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        fs::create_dir(env.tree()).unwrap();
        env.config(&format!(
            "[fim]\nexclude = []\n[[fim.rule]]\npath = \"{}\"\nattrs = \"{attrs}\"\n",
            env.tree().display()
        ));
        env
    }

    fn config(&self, text: &str) {
        fs::write(self.path("hikeshi.toml"), text).unwrap();
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tree(&self) -> PathBuf {
        self.path("tree")
    }

    fn file(&self, name: &str) -> PathBuf {
        self.tree().join(name)
    }

    fn write(&self, name: &str, content: &[u8]) {
        let path = self.file(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
    }

    fn baseline(&self) -> PathBuf {
        self.path("data/fim/baseline.hfim")
    }

    fn run(&self, args: &[&str]) -> Output {
        hikeshi::exec::command(env!("CARGO_BIN_EXE_hikeshi"), Vec::<&str>::new())
            .arg("--config")
            .arg(self.path("hikeshi.toml"))
            .arg("--data-dir")
            .arg(self.path("data"))
            .args(args)
            .env_remove("HIKESHI_CONFIG")
            .env_remove("HIKESHI_DATA_DIR")
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout)
    }

    fn init(&self) {
        self.ok(&["fim", "init", "--no-progress"]);
    }

    /// Runs `check --json`; returns the exit code and the report.
    fn check(&self, extra: &[&str]) -> (i32, Value) {
        let mut args = vec!["fim", "check", "--json", "--no-progress"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        let code = out.status.code().unwrap();
        assert!(code <= 7, "check failed with {code}: {}", text(&out.stderr));
        (code, serde_json::from_slice(&out.stdout).unwrap())
    }

    /// Runs `check` expecting an error; returns the exit code and stderr.
    fn check_error(&self, extra: &[&str]) -> (i32, String) {
        let mut args = vec!["fim", "check", "--no-progress"];
        args.extend_from_slice(extra);
        let out = self.run(&args);
        (out.status.code().unwrap(), text(&out.stderr))
    }

    fn display(&self, name: &str) -> String {
        self.file(name).display().to_string()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The attributes (short names) that changed for `path`.
fn changed_attrs(report: &Value, path: &str) -> Vec<String> {
    report["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in changed: {report:#}"))["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["attr"].as_str().unwrap().to_string())
        .collect()
}

fn paths(report: &Value, list: &str) -> Vec<String> {
    report[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

fn set_mtime(path: &Path, from: &Path) {
    let meta = fs::metadata(from).unwrap();
    filetime::set_file_mtime(path, filetime::FileTime::from_last_modification_time(&meta)).unwrap();
}

#[test]
fn unchanged_tree_checks_clean_across_the_reorder_window() {
    // More entries than the scan's in-flight window (8192), nested so the
    // walk order matters, with names where byte order and path order differ.
    let env = Env::new("p+i+n+u+g+s+m+c+sha256");
    for d in 0..10 {
        for f in 0..1000 {
            env.write(&format!("d{d}/f{f}"), format!("{d}-{f}").as_bytes());
        }
    }
    env.write("d1-x", b"x");
    env.write("d1.x/y", b"y");
    env.init();
    let (code, report) = env.check(&[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["summary"]["scanned_entries"], 10_000 + 10 + 3 + 1);
    assert_eq!(report["summary"]["baseline_entries"], report["summary"]["scanned_entries"]);
}

#[test]
fn content_change_with_mtime_restored_is_seen_only_by_the_hash() {
    let env = Env::new("p+i+n+u+g+s+m+sha256");
    env.write("bin/tool", b"original");
    env.write("reference", b"x");
    set_mtime(&env.file("bin/tool"), &env.file("reference"));
    set_mtime(&env.file("bin"), &env.file("reference"));
    env.init();
    // Same size, same inode, mtime put back: an attacker's careful edit.
    fs::write(env.file("bin/tool"), b"tampered").unwrap();
    set_mtime(&env.file("bin/tool"), &env.file("reference"));
    let (code, report) = env.check(&[]);
    assert_eq!(code, 4, "{report:#}");
    assert_eq!(changed_attrs(&report, &env.display("bin/tool")), vec!["sha256"]);
    assert_eq!(report["summary"]["changed"], 1);

    // Without the hash the same edit is invisible: that is what the hash is for.
    let blind = Env::new("p+i+n+u+g+s+m");
    blind.write("tool", b"original");
    blind.init();
    let before = fs::metadata(blind.file("tool")).unwrap();
    fs::write(blind.file("tool"), b"tampered").unwrap();
    filetime::set_file_mtime(
        blind.file("tool"),
        filetime::FileTime::from_last_modification_time(&before),
    )
    .unwrap();
    assert_eq!(blind.check(&[]).0, 0);
}

#[test]
fn permission_and_owner_changes() {
    let env = Env::new("p+u+g");
    env.write("etc/shadow", b"secret");
    fs::set_permissions(env.file("etc/shadow"), fs::Permissions::from_mode(0o640)).unwrap();
    env.init();
    fs::set_permissions(env.file("etc/shadow"), fs::Permissions::from_mode(0o644)).unwrap();
    std::os::unix::fs::chown(env.file("etc/shadow"), Some(1234), Some(5678))
        .expect("chown needs root");
    let (code, report) = env.check(&[]);
    assert_eq!(code, 4);
    let changed = &report["changed"][0];
    assert_eq!(changed["path"], env.display("etc/shadow"));
    let changes = changed["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{changes:#?}");
    assert_eq!(changes[0]["attr"], "perm");
    assert_eq!(changes[0]["old"], "-rw-r----- (0640)");
    assert_eq!(changes[0]["new"], "-rw-r--r-- (0644)");
    assert_eq!(
        (changes[1]["attr"].as_str(), changes[1]["new"].as_str()),
        (Some("uid"), Some("1234"))
    );
    assert_eq!(
        (changes[2]["attr"].as_str(), changes[2]["new"].as_str()),
        (Some("gid"), Some("5678"))
    );
}

#[test]
fn new_setuid_file_is_flagged() {
    let env = Env::new("R");
    env.write("usr/bin/ls", b"ls");
    env.init();
    env.write("usr/bin/.hidden", b"#!/bin/sh\nexec /bin/sh -p\n");
    fs::set_permissions(env.file("usr/bin/.hidden"), fs::Permissions::from_mode(0o4755)).unwrap();
    let (code, report) = env.check(&[]);
    assert_eq!(code, 1 + 4, "added, and its directory changed: {report:#}");
    assert_eq!(paths(&report, "added"), vec![env.display("usr/bin/.hidden")]);
    assert_eq!(report["added"][0]["setid"], true);
    assert_eq!(report["added"][0]["mode"], "-rwsr-xr-x");
    assert_eq!(report["summary"]["new_setid"], 1);
    let out = env.run(&["fim", "check", "--no-progress"]);
    assert!(text(&out.stdout).contains("SETUID/SETGID"), "{}", text(&out.stdout));
}

#[test]
fn replaced_binary_has_a_new_inode() {
    let env = Env::new("p+i+n+u+g+s+m+sha256");
    env.write("sshd", b"the real sshd");
    env.init();
    // Same content and mtime, like `cp -p` then `mv`: only the inode differs.
    fs::write(env.path("sshd.new"), b"the real sshd").unwrap();
    set_mtime(&env.path("sshd.new"), &env.file("sshd"));
    let dir_meta = fs::metadata(env.tree()).unwrap();
    fs::rename(env.path("sshd.new"), env.file("sshd")).unwrap();
    filetime::set_file_mtime(
        env.tree(),
        filetime::FileTime::from_last_modification_time(&dir_meta),
    )
    .unwrap();
    let (code, report) = env.check(&[]);
    assert_eq!(code, 4, "{report:#}");
    assert_eq!(changed_attrs(&report, &env.display("sshd")), vec!["inode"]);
}

#[test]
fn retargeted_symlink() {
    let env = Env::new("p+u+g+l+sha256");
    env.write("lib/libc.so.6.real", b"libc");
    env.write("evil/libc.so.6", b"evil");
    symlink("../lib/libc.so.6.real", env.file("lib/libc.so.6")).unwrap();
    env.init();
    fs::remove_file(env.file("lib/libc.so.6")).unwrap();
    symlink("../evil/libc.so.6", env.file("lib/libc.so.6")).unwrap();
    let (code, report) = env.check(&[]);
    assert_eq!(code, 4);
    let changed = &report["changed"][0];
    assert_eq!(changed["path"], env.display("lib/libc.so.6"));
    assert_eq!(changed["changes"][0]["attr"], "link_target");
    assert_eq!(changed["changes"][0]["old"], "../lib/libc.so.6.real");
    assert_eq!(changed["changes"][0]["new"], "../evil/libc.so.6");
}

#[test]
fn exit_codes_sum_like_aide() {
    // Content only, so directory timestamps do not add "changed" entries.
    let env = Env::new("sha256");
    env.write("a", b"a");
    env.write("b", b"b");
    env.init();
    env.write("c", b"c");
    assert_eq!(env.check(&[]).0, 1);
    env.ok(&["fim", "update", "--no-progress"]);
    fs::remove_file(env.file("a")).unwrap();
    assert_eq!(env.check(&[]).0, 2);
    env.ok(&["fim", "update", "--no-progress"]);
    env.write("b", b"B");
    assert_eq!(env.check(&[]).0, 4);
    env.ok(&["fim", "update", "--no-progress"]);
    env.write("a", b"a");
    fs::remove_file(env.file("b")).unwrap();
    env.write("c", b"C");
    let (code, report) = env.check(&[]);
    assert_eq!(code, 7);
    assert_eq!(paths(&report, "added"), vec![env.display("a")]);
    assert_eq!(paths(&report, "removed"), vec![env.display("b")]);
    assert_eq!(report["changed"][0]["path"], env.display("c"));
    env.ok(&["fim", "update", "--no-progress"]);
    assert_eq!(env.check(&[]).0, 0);
}

#[test]
fn update_records_who_when_and_what_it_replaces() {
    let env = Env::new("sha256");
    env.write("a", b"a");
    env.init();
    let (_, first) = env.check(&[]);
    assert_eq!(first["baseline"]["reason"], "init");
    assert!(first["baseline"]["supersedes"].is_null());
    env.write("a", b"b");
    let out = env.run(&["fim", "update", "--json", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let update: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(update["accepted"]["summary"]["changed"], 1, "update reports what it accepts");
    let (code, second) = env.check(&[]);
    assert_eq!(code, 0);
    assert_eq!(second["baseline"]["reason"], "update");
    assert!(second["baseline"]["supersedes"].as_str().unwrap().starts_with("sha256:"));
    assert!(second["baseline"]["created_by"].as_str().unwrap().contains('@'));
}

#[test]
fn init_does_not_overwrite_a_baseline_without_force() {
    let env = Env::new("sha256");
    env.write("a", b"a");
    env.init();
    let out = env.run(&["fim", "init", "--no-progress"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("already exists"), "{}", text(&out.stderr));
    env.write("b", b"b");
    env.ok(&["fim", "init", "--force", "--no-progress"]);
    assert_eq!(env.check(&[]).0, 0);
}

#[test]
fn tampered_baseline_is_refused() {
    let env = Env::new("sha256");
    env.write("a", b"a");
    env.write("b", b"b");
    env.init();
    let original = fs::read(env.baseline()).unwrap();
    // Flip one bit in the body (the last byte is part of the last hash).
    let mut body_flip = original.clone();
    *body_flip.last_mut().unwrap() ^= 1;
    fs::write(env.baseline(), &body_flip).unwrap();
    let (code, stderr) = env.check_error(&[]);
    assert_eq!(code, 18, "{stderr}");
    assert!(stderr.contains("has been altered"), "{stderr}");

    // An unsigned header edited to claim fewer records (digest and length
    // untouched) is caught by decoding: the body has data after the last
    // record. (Signed baselines refuse any header edit: see below.)
    let header_end = original.iter().skip(24).position(|&b| b == b'\n').unwrap() + 24;
    let header = String::from_utf8_lossy(&original[24..header_end]).into_owned();
    let forged_header = header.replace("\"records\":3", "\"records\":2");
    assert_ne!(header, forged_header);
    let mut forged = original[..24].to_vec();
    forged.extend_from_slice(forged_header.as_bytes());
    forged.extend_from_slice(&original[header_end..]);
    fs::write(env.baseline(), &forged).unwrap();
    let (code, stderr) = env.check_error(&[]);
    assert_eq!(code, 18, "{stderr}");
    assert!(stderr.contains("after the last record"), "{stderr}");

    // Truncated, empty, or not a baseline at all.
    fs::write(env.baseline(), &original[..original.len() - 10]).unwrap();
    assert!(env.check_error(&[]).1.contains("altered"));
    fs::write(env.baseline(), b"").unwrap();
    assert!(env.check_error(&[]).1.contains("not a hikeshi baseline"));
    fs::remove_file(env.baseline()).unwrap();
    let (code, stderr) = env.check_error(&[]);
    assert_eq!(code, 18);
    assert!(stderr.contains("fim init"), "{stderr}");
}

#[test]
fn signatures_missing_wrong_and_good() {
    let env = Env::new("sha256");
    env.write("a", b"a");
    let key_a = env.path("key-a");
    let key_b = env.path("key-b");
    let out = env.ok(&["fim", "keygen", "--out", key_a.to_str().unwrap()]);
    assert!(out.contains("public_key = \"hikeshi-fim-ed25519-public "), "{out}");
    env.ok(&["fim", "keygen", "--out", key_b.to_str().unwrap()]);
    let pub_a = format!("{}.pub", key_a.display());
    let pub_b = format!("{}.pub", key_b.display());

    // Unsigned baseline, key configured: hard failure.
    env.init();
    let (code, stderr) = env.check_error(&["--verify-key", &pub_a]);
    assert_eq!(code, 18);
    assert!(stderr.contains("not signed"), "{stderr}");

    // Signed with A, checked with A: trusted and pinned.
    env.ok(&["fim", "init", "--force", "--no-progress", "--sign-key", key_a.to_str().unwrap()]);
    let (code, report) = env.check(&["--verify-key", &pub_a]);
    assert_eq!(code, 0);
    assert_eq!(report["baseline"]["signature"]["status"], "verified");
    assert_eq!(report["baseline"]["signature"]["pinned"], true);

    // Checked with B: wrong key.
    let (code, stderr) = env.check_error(&["--verify-key", &pub_b]);
    assert_eq!(code, 18);
    assert!(stderr.contains("not by the configured key"), "{stderr}");

    // The public key in the configuration works the same way.
    let pub_line = fs::read_to_string(&pub_b).unwrap();
    env.config(&format!(
        "[fim]\nexclude = []\npublic_key = \"{}\"\n[[fim.rule]]\npath = \"{}\"\nattrs = \"sha256\"\n",
        pub_line.trim(),
        env.tree().display()
    ));
    let (code, stderr) = env.check_error(&[]);
    assert_eq!(code, 18);
    assert!(stderr.contains("not by the configured key"), "{stderr}");

    // A signature that does not match the header (header edited, the
    // embedded key kept): bad signature, even with no key pinned.
    env.config(&format!(
        "[fim]\nexclude = []\n[[fim.rule]]\npath = \"{}\"\nattrs = \"sha256\"\n",
        env.tree().display()
    ));
    let (code, report) = env.check(&[]);
    assert_eq!(code, 0);
    assert_eq!(report["baseline"]["signature"]["pinned"], false);
    // Same length, body untouched: only the signature can tell.
    let mut forged = fs::read(env.baseline()).unwrap();
    let needle = b"\"reason\":\"init\"";
    let at = forged.windows(needle.len()).position(|w| w == needle).expect("reason in header");
    forged[at + needle.len() - 2] = b'x';
    fs::write(env.baseline(), &forged).unwrap();
    let (code, stderr) = env.check_error(&[]);
    assert_eq!(code, 18);
    assert!(stderr.contains("invalid signature"), "{stderr}");

    // update must keep the baseline signed when a key is pinned.
    env.ok(&["fim", "init", "--force", "--no-progress", "--sign-key", key_a.to_str().unwrap()]);
    let out = env.run(&["fim", "update", "--verify-key", &pub_a, "--no-progress"]);
    assert_eq!(out.status.code(), Some(18));
    assert!(text(&out.stderr).contains("--sign-key"), "{}", text(&out.stderr));
    env.ok(&[
        "fim",
        "update",
        "--verify-key",
        &pub_a,
        "--sign-key",
        key_a.to_str().unwrap(),
        "--no-progress",
    ]);
    assert_eq!(env.check(&["--verify-key", &pub_a]).0, 0);
}

#[test]
fn unreadable_file_is_reported_not_fatal() {
    // Root can read any regular file on a local file system, so this uses
    // one whose read fails for everyone: /proc/PID/mem of a child process
    // (lstat says "regular file"; reading offset 0 gives EIO because page 0
    // is never mapped).
    let mut child = hikeshi::exec::command("sleep", ["30"]).spawn().unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let guard = Kill(std::mem::replace(
        &mut child,
        hikeshi::exec::command("true", Vec::<&str>::new()).spawn().unwrap(),
    ));
    let _ = child.wait();
    let env = Env::new("sha256");
    env.write("readable", b"ok");
    let mem = format!("/proc/{pid}/mem");
    env.config(&format!(
        "[fim]\nexclude = []\n[[fim.rule]]\npath = \"{}\"\nattrs = \"sha256\"\n[[fim.rule]]\npath = \"{mem}\"\nattrs = \"p+sha256\"\nscope = \"self\"\n",
        env.tree().display()
    ));
    let out = env.run(&["fim", "init", "--json", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let init: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(init["header"]["records"], 3, "{init:#}");
    assert_eq!(init["issues"][0]["path"], mem);
    assert_eq!(init["issues"][0]["kind"], "unreadable");
    let (code, report) = env.check(&[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["summary"]["issues"], 1);
    assert_eq!(report["issues"][0]["path"], mem);
    drop(guard);
}

#[test]
fn exclusions_by_path_glob_and_regex() {
    let env = Env::new("sha256");
    env.config(&format!(
        "[fim]\nexclude = [\"{t}/cache\", \"glob:{t}/**/*.pyc\", \"re:{t}/log/.*\\\\.log$\"]\n[[fim.rule]]\npath = \"{t}\"\nattrs = \"sha256\"\n",
        t = env.tree().display()
    ));
    env.write("keep", b"k");
    env.write("cache/x", b"x");
    env.write("lib/m.pyc", b"p");
    env.write("log/a.log", b"l");
    env.write("log/a.log.1", b"l");
    env.init();
    for name in ["cache/x", "lib/m.pyc", "log/a.log"] {
        env.write(name, b"changed");
    }
    env.write("cache/new", b"n");
    assert_eq!(env.check(&[]).0, 0);
    env.write("log/a.log.1", b"changed");
    let (code, report) = env.check(&[]);
    assert_eq!(code, 4);
    assert_eq!(report["changed"][0]["path"], env.display("log/a.log.1"));
}

#[test]
fn hostile_file_names_cannot_forge_report_lines() {
    let env = Env::new("sha256");
    env.write("a", b"a");
    env.init();
    let name = std::ffi::OsStr::new("x\nAdded:\n  + fake");
    fs::write(env.tree().join(name), b"x").unwrap();
    use std::os::unix::ffi::OsStrExt;
    fs::write(env.tree().join(std::ffi::OsStr::from_bytes(b"bad\xff")), b"x").unwrap();
    let out = env.run(&["fim", "check", "--no-progress"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("x\\nAdded:\\n  + fake"), "{stdout}");
    assert!(stdout.contains("bad\\xff"), "{stdout}");
    assert!(!stdout.lines().any(|l| l.starts_with("  + fake")), "{stdout}");
}

#[test]
fn bad_configuration_is_a_clear_error() {
    let env = Env::new("p+q");
    let (code, stderr) = env.check_error(&[]);
    assert_eq!(code, 18);
    assert!(stderr.contains("`q`") && stderr.contains("attrs"), "{stderr}");
}

#[test]
fn aide_conf_import_drives_a_check() {
    let env = Env::new("sha256");
    env.write("etc/passwd", b"root:x:0:0");
    env.write("etc/mtab", b"proc");
    env.write("var/log/syslog", b"log");
    let t = env.tree().display().to_string();
    let aide_conf = format!(
        "database_in=file:/var/lib/aide/aide.db\nNORMAL = p+i+n+u+g+s+m+c+sha256\n{t}/etc NORMAL\n!{t}/etc/mtab$\n={t}/var/ p+u+g\n{t}/var/log/.*\\.gz NORMAL\n"
    );
    fs::write(env.path("aide.conf"), aide_conf).unwrap();
    let out = env.run(&["fim", "import-aide", env.path("aide.conf").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "one line is skipped: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains(":6: selection"), "{}", text(&out.stderr));
    let toml = text(&out.stdout);
    assert!(toml.contains("attrs = \"p+i+n+u+g+s+m+c+sha256\""), "{toml}");
    assert!(toml.contains("scope = \"children\""), "{toml}");
    fs::write(env.path("hikeshi.toml"), &toml).unwrap();
    env.init();
    let (code, report) = env.check(&[]);
    assert_eq!(code, 0);
    // etc, etc/passwd (not mtab); var and var/log (children of var, not syslog).
    assert_eq!(report["summary"]["scanned_entries"], 4, "{report:#}");
}
