//! `hikeshi harden ssh`: fixture configuration trees (hardened, default,
//! broken) read with `--root`, an incident's attacked accounts, and a real
//! `sshd -T -f CONFIG -h HOSTKEY` run.
//!
//! The `sshd -T` test needs root (as CI runs) and creates sshd's privilege
//! separation directory `/run/sshd` if it is missing, removing it again
//! (a Drop guard) when it made it.

use std::path::Path;
use std::process::Output;

use hikeshi::store::{self, Store};
use hikeshi_core::incident::{CampaignKey, Evidence, Observation};
use hikeshi_core::Severity;
use serde_json::Value;

#[path = "support/cli.rs"]
mod cli;
use cli::hikeshi;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                      admin:x:1000:1000:Admin:/home/admin:/bin/bash\n\
                      alice:x:1001:1001::/home/alice:/bin/bash\n";

/// Debian's layout: the main file includes sshd_config.d/*.conf first.
fn hardened_tree(root: &Path) {
    write(
        root,
        "etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\n\
         # Later lines lose to the included ones, as in sshd.\n\
         PasswordAuthentication yes\n\
         Match User backup\n    PasswordAuthentication yes\n",
    );
    write(
        root,
        "etc/ssh/sshd_config.d/10-hikeshi.conf",
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin no\n\
         Port 2222\nMaxAuthTries 3\nAllowGroups ssh-users\nLoginGraceTime 20\n",
    );
    write(root, "etc/ssh/sshd_config.d/README", "not a .conf file: ignored\nGarbage here\n");
    write(root, "etc/passwd", PASSWD);
}

fn default_tree(root: &Path) {
    write(root, "etc/ssh/sshd_config", "Include sshd_config.d/*.conf\nUsePAM yes\n");
    write(root, "etc/passwd", PASSWD);
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
}

fn ids(v: &Value) -> Vec<String> {
    v["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_hardened_tree_passes_and_match_blocks_are_noted() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    hardened_tree(&root);
    let data = tmp.path().join("data");
    let out = hikeshi(&data, &["harden", "ssh", "--root", root.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let v = json(&out);
    assert_eq!(ids(&v), Vec::<String>::new());
    assert_eq!(v["effective"]["passwordauthentication"][0], "no");
    assert_eq!(v["effective"]["port"][0], "2222");
    assert_eq!(v["match_blocks"][0]["criteria"], "User backup");
    assert_eq!(v["match_blocks"][0]["line"], 4);

    let out = hikeshi(&data, &["harden", "ssh", "--root", root.to_str().unwrap()]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("note: /etc/ssh/sshd_config:4: Match User backup"), "{text}");
    assert!(text.ends_with("0 finding(s).\n"), "{text}");
}

#[test]
fn a_default_tree_gets_findings_with_recommendations_in_both_languages() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    default_tree(&root);
    let data = tmp.path().join("data");
    let out = hikeshi(&data, &["harden", "ssh", "--root", root.to_str().unwrap(), "--json"]);
    assert_eq!(out.status.code(), Some(1), "findings need attention: {out:?}");
    assert_eq!(
        ids(&json(&out)),
        [
            "password-auth",
            "kbd-interactive-auth",
            "max-auth-tries",
            "no-allow-list",
            "root-login",
            "default-port",
            "login-grace-time"
        ]
    );
    let out =
        hikeshi(&data, &["harden", "ssh", "--root", root.to_str().unwrap(), "--lang", "both"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("HIGH     passwordauthentication = yes"), "{text}");
    assert!(text.contains("→ Use keys only"), "{text}");
    assert!(text.contains("→ 鍵認証のみにする"), "{text}");
    assert!(text.contains("ISO/IEC 27001:2022 A.8.5"), "{text}");
}

#[test]
fn an_incident_guessing_existing_accounts_calls_for_keys_only() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    default_tree(&root);
    let data = tmp.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut store = Store::open(&store::db_path(&data)).unwrap();
    let mut o = Observation::new(
        CampaignKey::for_addr("203.0.113.5".parse().unwrap()),
        "ssh-bruteforce",
        Severity::High,
        "2026-11-01T10:33:14Z".parse().unwrap(),
        5,
    );
    o.users = vec!["admin".into(), "oracle".into(), "root".into(), "\u{1b}[2Jevil".into()];
    o.evidence = vec![Evidence::new("/var/log/auth.log", 0, b"x")];
    store.open_or_update_incident(o).unwrap();
    drop(store);

    let r = root.to_str().unwrap();
    let out = hikeshi(&data, &["harden", "ssh", "--root", r, "--incident", "1", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = json(&out);
    let found = ids(&v);
    assert_eq!(found[0], "incident-password-guessing");
    assert!(found.contains(&"incident-root-targeted".to_string()));
    let text = v["findings"][0]["finding_en"].as_str().unwrap();
    assert!(text.contains("(admin, root)"), "only accounts that exist: {text}");

    let out = hikeshi(&data, &["harden", "ssh", "--root", r, "--incident", "1"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains('\u{1b}'), "terminal escapes from user names are neutralised");

    let out = hikeshi(&data, &["harden", "ssh", "--root", r, "--incident", "7"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}

#[test]
fn a_missing_config_and_a_failing_sshd_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = hikeshi(&data, &["harden", "ssh", "--root", tmp.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("etc/ssh/sshd_config"), "{err}");

    let bad = tmp.path().join("bad.conf");
    std::fs::write(&bad, "NoSuchKeyword yes\n").unwrap();
    let out = hikeshi(&data, &["harden", "ssh", "--sshd-config", bad.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("sshd -T"), "{out:?}");
}

/// Creates `/run/sshd` if missing and removes it on drop if it did.
struct PrivsepDir {
    created: bool,
}

impl PrivsepDir {
    fn ensure() -> PrivsepDir {
        let dir = Path::new("/run/sshd");
        if dir.exists() {
            return PrivsepDir { created: false };
        }
        std::fs::create_dir(dir).expect("create /run/sshd (tests run as root)");
        PrivsepDir { created: true }
    }
}

impl Drop for PrivsepDir {
    fn drop(&mut self) {
        if self.created {
            let _ = std::fs::remove_dir("/run/sshd");
        }
    }
}

#[test]
fn a_real_sshd_test_run_is_audited() {
    let tmp = tempfile::tempdir().unwrap();
    let key = tmp.path().join("host_ed25519");
    #[allow(clippy::disallowed_methods)]
    let keygen = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .output()
        .expect("ssh-keygen");
    assert!(keygen.status.success(), "{keygen:?}");
    let config = tmp.path().join("sshd_config");
    std::fs::write(
        &config,
        "Port 22\nPort 2222\nPasswordAuthentication yes\nMaxAuthTries 10\nAllowUsers alice bob\n",
    )
    .unwrap();
    let _privsep = PrivsepDir::ensure();
    let data = tmp.path().join("data");
    let out = hikeshi(
        &data,
        &[
            "harden",
            "ssh",
            "--sshd-config",
            config.to_str().unwrap(),
            "--host-key",
            key.to_str().unwrap(),
            "--json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let v = json(&out);
    assert_eq!(v["source"], "sshd_test");
    assert_eq!(v["effective"]["port"], serde_json::json!(["22", "2222"]));
    assert_eq!(v["effective"]["allowusers"], serde_json::json!(["alice", "bob"]));
    assert_eq!(v["effective"]["maxauthtries"], serde_json::json!(["10"]));
    let found = ids(&v);
    // sshd's own defaults show through: root may log in with a key,
    // keyboard-interactive is on, the grace time is 120 s.
    assert_eq!(
        found,
        [
            "password-auth",
            "kbd-interactive-auth",
            "max-auth-tries",
            "root-login",
            "default-port",
            "login-grace-time"
        ]
    );
}
