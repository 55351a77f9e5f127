//! `hikeshi scan` end to end: cursors across runs and rotation, incidents
//! and their evidence, alerts once, hostile lines, bad input. Containment
//! with a real firewall is tested in `contain.rs` (it needs namespaces);
//! here the firewall backend is `none`.

use std::path::{Path, PathBuf};
use std::process::Output;

use hikeshi::exec;
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_hikeshi");

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new(extra_config: &str) -> Env {
        let dir = tempfile::tempdir().unwrap();
        let config = format!("[contain]\nbackend = \"none\"\nbantime = \"3650d\"\nmax_bantime = \"3650d\"\n{extra_config}");
        std::fs::write(dir.path().join("hikeshi.toml"), config).unwrap();
        Env { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn hikeshi(&self, args: &[&str]) -> Output {
        let data = self.path("data");
        let config = self.path("hikeshi.toml");
        let mut argv: Vec<&std::ffi::OsStr> =
            vec!["--data-dir".as_ref(), data.as_os_str(), "--config".as_ref(), config.as_os_str()];
        argv.extend(args.iter().map(std::ffi::OsStr::new));
        exec::command(BIN, argv).env("TZ", "UTC").output().unwrap()
    }

    /// Runs `scan --format json` on `files`; returns its exit code and report.
    fn scan(&self, files: &[&Path]) -> (i32, Value) {
        let mut args = vec!["scan", "--format", "json"];
        let names: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(names.iter().map(String::as_str));
        let out = self.hikeshi(&args);
        let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!("{e}: {}{}", stdout(&out), String::from_utf8_lossy(&out.stderr))
        });
        (out.status.code().unwrap(), report)
    }

    fn incident(&self, id: &Value) -> Value {
        let out = self.hikeshi(&["incident", "show", &id.to_string(), "--json"]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A classic syslog line: `Jan 15 10:MM:SS server1 sshd[PID]: MSG`.
fn line(second: u32, pid: u32, msg: &str) -> String {
    format!("Jan 15 10:{:02}:{:02} server1 sshd[{pid}]: {msg}\n", second / 60, second % 60)
}

fn failed(second: u32, addr: &str, user: &str) -> String {
    line(
        second,
        1000 + second,
        &format!(
            "Failed password for invalid user {user} from {addr} port {} ssh2",
            40000 + second
        ),
    )
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

fn incidents(report: &Value) -> &Vec<Value> {
    report["incidents"].as_array().unwrap()
}

#[test]
fn the_bundled_example_opens_one_incident_and_a_second_run_sees_nothing_new() {
    let env = Env::new("");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/auth.log");
    let (code, report) = env.scan(&[&example]);
    assert_eq!(code, 1, "{report:#}");
    let list = incidents(&report);
    assert_eq!(list.len(), 1, "{report:#}");
    assert_eq!(list[0]["subject"], "203.0.113.5");
    assert_eq!(list[0]["change"], "opened");
    assert_eq!(list[0]["rule"], "brute_force");
    assert_eq!(list[0]["hosts"], serde_json::json!(["server1"]));
    assert_eq!(report["files"][0]["lines"], 253);

    let (code, report) = env.scan(&[&example]);
    assert_eq!(code, 0, "{report:#}");
    assert!(incidents(&report).is_empty());
    assert_eq!(report["files"][0]["lines"], 0);
    assert_eq!(report["files"][0]["continuity"], "continued");
}

#[test]
fn an_attack_split_across_runs_is_one_incident_with_every_line_as_evidence() {
    let env = Env::new("");
    let log = env.path("auth.log");
    for s in 0..3 {
        append(&log, &failed(s, "198.51.100.7", "admin"));
    }
    let (code, report) = env.scan(&[&log]);
    assert_eq!(code, 0, "three failures are below maxretry: {report:#}");
    assert!(incidents(&report).is_empty());

    for s in 3..6 {
        append(&log, &failed(s, "198.51.100.7", "root"));
    }
    let (code, report) = env.scan(&[&log]);
    assert_eq!(code, 1, "{report:#}");
    let list = incidents(&report);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["attempts"], 6, "failures before and after the run count together");
    let detail = env.incident(&list[0]["id"]);
    let evidence = detail["evidence"].as_array().unwrap();
    assert_eq!(evidence.len(), 6, "the first run's lines are evidence too: {detail:#}");
    assert_eq!(evidence[0]["offset"], 0);
    assert!(evidence[0]["line"].as_str().unwrap().contains("user admin from 198.51.100.7"));

    // More attempts update the same incident; nothing is opened again.
    append(&log, &failed(6, "198.51.100.7", "oracle"));
    let (code, report) = env.scan(&[&log]);
    assert_eq!(code, 0, "an update needs no attention: {report:#}");
    assert_eq!(incidents(&report)[0]["change"], "updated");
    assert_eq!(incidents(&report)[0]["attempts"], 7);
}

#[test]
fn rotation_between_runs_loses_and_repeats_nothing() {
    let env = Env::new("");
    let log = env.path("auth.log");
    append(&log, &failed(0, "203.0.113.9", "a"));
    env.scan(&[&log]);
    // Written after the run, before logrotate renames the file.
    append(&log, &failed(1, "203.0.113.9", "b"));
    std::fs::rename(&log, env.path("auth.log.1")).unwrap();
    for s in 2..5 {
        append(&log, &failed(s, "203.0.113.9", "c"));
    }
    let (code, report) = env.scan(&[&log]);
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(report["files"][0]["continuity"], "rotated");
    assert_eq!(report["files"][0]["lines"], 4, "1 from the rotated file + 3 new: {report:#}");
    assert_eq!(incidents(&report)[0]["attempts"], 5);

    // copytruncate: the copy keeps what was not read yet.
    append(&log, &failed(5, "203.0.113.9", "d"));
    std::fs::copy(&log, env.path("auth.log-20260116")).unwrap();
    std::fs::OpenOptions::new().write(true).truncate(true).open(&log).unwrap();
    append(&log, &failed(6, "203.0.113.9", "e"));
    let (_, report) = env.scan(&[&log]);
    assert_eq!(report["files"][0]["continuity"], "truncated", "{report:#}");
    assert_eq!(report["files"][0]["lines"], 2, "{report:#}");
    assert_eq!(incidents(&report)[0]["attempts"], 7);
}

#[test]
fn a_line_still_being_written_is_read_once_it_is_complete() {
    let env = Env::new("");
    let log = env.path("auth.log");
    let whole = failed(0, "203.0.113.10", "x");
    let (first, rest) = whole.split_at(30);
    append(&log, first);
    let (_, report) = env.scan(&[&log]);
    assert_eq!(report["files"][0]["lines"], 0);
    append(&log, rest);
    let (_, report) = env.scan(&[&log]);
    assert_eq!(report["files"][0]["lines"], 1);
    assert_eq!(report["files"][0]["failures"], 1);
}

#[test]
fn injected_addresses_in_user_names_never_become_the_source() {
    let env = Env::new("");
    let log = env.path("auth.log");
    for s in 0..6 {
        append(
            &log,
            &line(
                s,
                2000 + s,
                "Failed password for invalid user admin from 198.51.100.66 port 22 ssh2 \
                 from 203.0.113.77 port 4242 ssh2",
            ),
        );
    }
    let (_, report) = env.scan(&[&log]);
    let list = incidents(&report);
    assert_eq!(list.len(), 1, "{report:#}");
    assert_eq!(list[0]["subject"], "203.0.113.77");
    assert_eq!(list[0]["users"][0], "admin from 198.51.100.66 port 22 ssh2");
}

#[test]
fn allowlisted_sources_are_recorded_and_flagged_but_never_banned() {
    let env = Env::new("[allowlist]\nnetworks = [\"192.0.2.0/24\"]\n");
    let log = env.path("auth.log");
    for s in 0..6 {
        append(&log, &failed(s, "192.0.2.50", "deploy"));
        append(&log, &failed(s, "127.0.0.1", "root"));
    }
    let (_, report) = env.scan(&[&log]);
    let list = incidents(&report);
    assert_eq!(list.len(), 2, "{report:#}");
    assert!(list.iter().all(|i| i["allowlisted"].is_string()), "{report:#}");
    assert!(report["containment"].as_array().unwrap().is_empty(), "{report:#}");
}

#[test]
fn a_success_after_failures_escalates_to_critical() {
    let env = Env::new("");
    let log = env.path("auth.log");
    for s in 0..6 {
        append(&log, &failed(s, "203.0.113.50", "root"));
    }
    env.scan(&[&log]);
    append(&log, &line(10, 3000, "Accepted password for root from 203.0.113.50 port 50000 ssh2"));
    let (code, report) = env.scan(&[&log]);
    assert_eq!(code, 1, "{report:#}");
    let list = incidents(&report);
    assert_eq!(list.len(), 1, "{report:#}");
    assert_eq!(list[0]["change"], "escalated");
    assert_eq!(list[0]["severity"], "critical");
    assert_eq!(list[0]["attempts"], 6, "the failures are kept, the success adds none");
}

#[test]
fn stdout_alerts_go_out_once_per_incident() {
    let env = Env::new("[alert]\nstdout = true\n");
    let log = env.path("auth.log");
    for s in 0..8 {
        append(&log, &failed(s, "203.0.113.5", "admin"));
    }
    let first = env.hikeshi(&["scan", log.to_str().unwrap()]);
    let text = stdout(&first);
    assert_eq!(first.status.code(), Some(1), "{text}");
    assert_eq!(text.matches("Incident Alert #1").count(), 1, "{text}");
    assert!(text.contains("203.0.113.5") && text.contains("server1"), "{text}");
    append(&log, &failed(9, "203.0.113.5", "admin"));
    let second = env.hikeshi(&["scan", "-s", "Other subject", log.to_str().unwrap()]);
    assert!(!stdout(&second).contains("Alert #1"), "{}", stdout(&second));
    let quiet = env.hikeshi(&["scan", "-q", log.to_str().unwrap()]);
    assert!(quiet.stdout.is_empty() && quiet.stderr.is_empty());
}

#[test]
fn an_unreadable_file_is_named_and_the_others_are_still_scanned() {
    let env = Env::new("");
    let log = env.path("auth.log");
    for s in 0..6 {
        append(&log, &failed(s, "203.0.113.5", "admin"));
    }
    let missing = env.path("missing.log");
    let dir = env.path("a-directory");
    std::fs::create_dir(&dir).unwrap();
    let (code, report) = env.scan(&[&missing, &dir, &log]);
    assert_eq!(code, 2, "{report:#}");
    let files = report["files"].as_array().unwrap();
    assert!(files[0]["error"].as_str().unwrap().contains("missing.log"), "{report:#}");
    assert!(files[1]["error"].as_str().unwrap().contains("a-directory"), "{report:#}");
    assert_eq!(files[2]["failures"], 6);
    assert_eq!(incidents(&report).len(), 1);
}

#[test]
fn hostile_bytes_are_counted_and_lose_nothing() {
    let env = Env::new("");
    let log = env.path("auth.log");
    let mut bytes = Vec::new();
    bytes.extend_from_slice(failed(0, "203.0.113.5", "a").as_bytes());
    bytes.extend_from_slice(&vec![b'x'; 1 << 20]);
    bytes.push(b'\n');
    bytes.extend_from_slice(b"Jan 15 10:00:01 server1 sshd[7]: Failed password for \xff\xfe\x00 from 203.0.113.5 port 1 ssh2\n");
    bytes.extend_from_slice(b"\x00\x00\x00\n\r\n");
    for s in 2..6 {
        bytes.extend_from_slice(failed(s, "203.0.113.5", "\u{1b}[31mred").as_bytes());
    }
    std::fs::write(&log, bytes).unwrap();
    let (code, report) = env.scan(&[&log]);
    assert_eq!(code, 1, "{report:#}");
    assert!(report["files"][0]["skipped_lines"].as_u64().unwrap() >= 2, "{report:#}");
    assert_eq!(incidents(&report)[0]["attempts"], 5, "{report:#}");
    let text = env.hikeshi(&["incident", "show", "1"]);
    assert!(!stdout(&text).contains('\u{1b}'), "terminal escapes reach the screen");
}

#[test]
fn a_corrupt_database_is_a_clear_error_and_is_left_alone() {
    let env = Env::new("");
    std::fs::create_dir_all(env.path("data")).unwrap();
    std::fs::write(env.path("data/hikeshi.db"), b"this is not a database, just text").unwrap();
    let log = env.path("auth.log");
    append(&log, &failed(0, "203.0.113.5", "a"));
    let out = env.hikeshi(&["scan", log.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("hikeshi.db"), "{err}");
    assert_eq!(
        std::fs::read(env.path("data/hikeshi.db")).unwrap(),
        b"this is not a database, just text"
    );
}

#[test]
fn bad_configuration_names_the_field() {
    let env = Env::new("[contain.bogus]\n");
    let out = env.hikeshi(&["scan", "/dev/null"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("bogus"));
    let env = Env::new("");
    std::fs::write(
        env.path("hikeshi.toml"),
        "[contain]\nbackend = \"none\"\nban_rules = [\"brute_forse\"]\n",
    )
    .unwrap();
    let out = env.hikeshi(&["scan", "/dev/null"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("contain.ban_rules") && err.contains("brute_forse"), "{err}");
}

#[test]
fn evidence_from_a_rotated_file_names_that_file_and_its_offset() {
    let env = Env::new("");
    let log = env.path("auth.log");
    let rotated = env.path("auth.log.1");
    for s in 0..6 {
        append(&log, &failed(s, "203.0.113.9", "a"));
    }
    env.scan(&[&log]);
    // Written after the run, then rotated away: read from auth.log.1.
    let late = failed(6, "203.0.113.9", "late");
    append(&log, &late);
    std::fs::rename(&log, &rotated).unwrap();
    append(&log, &failed(7, "203.0.113.9", "new"));
    let (_, report) = env.scan(&[&log]);
    assert_eq!(report["files"][0]["continuity"], "rotated", "{report:#}");
    let detail = env.incident(&incidents(&report)[0]["id"]);
    let evidence = detail["evidence"].as_array().unwrap();
    let find = |text: &str| {
        evidence.iter().find(|e| e["line"].as_str().unwrap().contains(text)).unwrap().clone()
    };
    for (user, file) in [("late", &rotated), ("new", &log)] {
        let e = find(&format!("invalid user {user} "));
        assert_eq!(e["file"], file.display().to_string(), "{e:#}");
        let bytes = std::fs::read(file).unwrap();
        let at = e["offset"].as_u64().unwrap() as usize;
        let line = e["line"].as_str().unwrap();
        assert_eq!(&bytes[at..at + line.len()], line.as_bytes(), "the offset is in that file");
    }
    assert_eq!(find("invalid user late ")["line"].as_str().unwrap(), late.trim_end());
}

#[test]
fn a_failure_on_an_attacked_account_is_proven_in_both_incidents_with_its_digest_stored_once() {
    use hikeshi::store::{self, Store};
    use hikeshi_core::incident::{chain_evidence_digest, hex, IncidentId, EMPTY_EVIDENCE_DIGEST};
    use sha2::{Digest, Sha256};

    // Three sources brute-force the same account: three source incidents
    // and one account incident, every failure a line of two of them.
    let env =
        Env::new("[incidents]\nevidence_max_lines = 4\n[detect.spray]\ndistinct_sources = 3\n");
    let log = env.path("auth.log");
    let sources = ["198.51.100.7", "198.51.100.8", "198.51.100.9"];
    for round in 0..20 {
        for (i, addr) in sources.iter().enumerate() {
            append(&log, &failed(round * 3 + i as u32, addr, "oracle"));
        }
    }
    let (code, report) = env.scan(&[&log]);
    assert_eq!(code, 1, "{report:#}");
    let list = incidents(&report);
    let account = list.iter().find(|i| i["subject"] == "oracle").expect("an account incident");
    assert_eq!(account["rule"], "account_attack");

    // Its latest lines, as `incident show` gives them, match their digests.
    let detail = env.incident(&account["id"]);
    let shown = detail["evidence"].as_array().unwrap();
    assert_eq!(shown.len(), 4, "{detail:#}");
    for e in shown {
        let line = e["line"].as_str().unwrap();
        assert_eq!(e["sha256"].as_str().unwrap(), hex(&Sha256::digest(line.as_bytes())));
    }

    // Every record of every incident gives its line's digest, and they
    // fold to the incident's evidence digest.
    let store = Store::open(&store::db_path(&env.path("data"))).unwrap();
    let text = std::fs::read(&log).unwrap();
    let mut account_bytes = 0;
    for incident in list {
        let id = IncidentId(incident["id"].as_i64().unwrap());
        let records = store.evidence_records(id).unwrap();
        for r in &records {
            let end = r.offset as usize
                + text[r.offset as usize..].iter().position(|&b| b == b'\n').unwrap();
            let digest: [u8; 32] = Sha256::digest(&text[r.offset as usize..end]).into();
            assert_eq!(r.sha256, digest, "incident {id} line {}", r.seq);
        }
        let folded =
            records.iter().fold(EMPTY_EVIDENCE_DIGEST, |d, r| chain_evidence_digest(&d, &r.sha256));
        assert_eq!(folded, store.incident(id).unwrap().campaign.evidence_digest, "incident {id}");
        if incident["subject"] == "oracle" {
            assert!(records.len() > 40, "{} records", records.len());
            account_bytes = store
                .conn()
                .query_row(
                    "SELECT sum(length(data)) FROM evidence_lines WHERE incident_id = ?1",
                    [id.0],
                    |r| r.get::<_, i64>(0),
                )
                .unwrap();
            // Lines not kept as text point to the source's record: far
            // less than a 32-byte digest each.
            assert!(account_bytes < 20 * records.len() as i64, "{account_bytes} bytes");
        }
    }
    assert!(account_bytes > 0);
    let audit = env.hikeshi(&["audit", "verify"]);
    assert!(audit.status.success(), "{}", stdout(&audit));
}
