//! Alert delivery against real servers: aiosmtpd (Debian's
//! `python3-aiosmtpd`, run with /usr/bin/python3) for email, plain,
//! STARTTLS, SMTPS and AUTH, and a small Python `http.server` for
//! webhooks. Needs no root: everything listens on 127.0.0.1, and every
//! server process is killed by a Drop guard.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use hikeshi::config::Config;
use hikeshi::exec;
use hikeshi::notify::outbox::{self, SCHEMA};
use hikeshi::notify::Notifier;
use hikeshi_core::alert::{runbook_next_steps, AlertFacts, AlertKind};
use hikeshi_core::Severity;
use jiff::{SignedDuration, Timestamp};
use rusqlite::Connection;
use serde_json::Value;

#[path = "support/smtp.rs"]
mod smtp;
use smtp::{aiosmtpd_args, mails};

const PYTHON: &str = "/usr/bin/python3";

/// A server process, killed and reaped when dropped (also on test failure).
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where a server's stderr goes: its expected complaints (a client that
/// refused its certificate) stay out of the test output.
fn server_log(dir: &Path) -> Stdio {
    let file =
        std::fs::OpenOptions::new().create(true).append(true).open(dir.join("server.log")).unwrap();
    Stdio::from(file)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(server: &mut Server) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("server on port {} exited early: {status}", server.port);
        }
        if TcpStream::connect(("127.0.0.1", server.port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("server on port {} did not start", server.port);
}

/// `python3 -m aiosmtpd` delivering into the Maildir `maildir`.
fn aiosmtpd(port: u16, maildir: &Path, extra: &[&str]) -> Server {
    let listen = format!("127.0.0.1:{port}");
    let child = exec::command(PYTHON, aiosmtpd_args(&listen, maildir.to_str().unwrap(), extra))
        .stdout(Stdio::null())
        .stderr(server_log(maildir.parent().unwrap()))
        .spawn()
        .unwrap();
    let mut server = Server { child, port };
    wait_for_port(&mut server);
    server
}

const AUTH_SMTPD: &str = r#"
import sys, ssl, time
from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword
port, maildir, cert, key, user, password = sys.argv[1:]
def authenticator(server, session, envelope, mechanism, auth_data):
    ok = (isinstance(auth_data, LoginPassword) and auth_data.login == user.encode()
          and auth_data.password == password.encode())
    # handled=False: let aiosmtpd answer 535 itself.
    return AuthResult(success=ok, handled=False)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
c = Controller(Mailbox(maildir), hostname="127.0.0.1", port=int(port),
               authenticator=authenticator, auth_required=True,
               tls_context=ctx, require_starttls=True)
c.start()
while True:
    time.sleep(3600)
"#;

/// How an SMTP server under test offers TLS.
enum Tls {
    /// STARTTLS after a plain greeting.
    Starttls,
    /// TLS from the first byte (SMTPS).
    Implicit,
}

/// aiosmtpd on a free port offering TLS with the test certificate.
fn tls_aiosmtpd(maildir: &Path, certs: &TestCerts, tls: Tls) -> Server {
    let (cert_flag, key_flag) = match tls {
        Tls::Starttls => ("--tlscert", "--tlskey"),
        Tls::Implicit => ("--smtpscert", "--smtpskey"),
    };
    let (cert, key) = (certs.server_cert.to_str().unwrap(), certs.server_key.to_str().unwrap());
    aiosmtpd(free_port(), maildir, &[cert_flag, cert, key_flag, key])
}

/// aiosmtpd requiring STARTTLS and AUTH (the CLI has no authenticator).
fn auth_smtpd(dir: &Path, maildir: &Path, tls: &TestCerts, user: &str, password: &str) -> Server {
    let script = dir.join("auth_smtpd.py");
    std::fs::write(&script, AUTH_SMTPD).unwrap();
    let port = free_port();
    let child = exec::command(
        PYTHON,
        [
            script.to_str().unwrap(),
            &port.to_string(),
            maildir.to_str().unwrap(),
            tls.server_cert.to_str().unwrap(),
            tls.server_key.to_str().unwrap(),
            user,
            password,
        ],
    )
    .stdout(Stdio::null())
    .stderr(server_log(dir))
    .spawn()
    .unwrap();
    let mut server = Server { child, port };
    wait_for_port(&mut server);
    server
}

const HTTP_SERVER: &str = r#"
import http.server, json, os, sys
outdir = sys.argv[1]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if os.path.exists(os.path.join(outdir, "fail")):
            self.send_response(500)
            self.send_header("Content-Length", "4")
            self.end_headers()
            self.wfile.write(b"boom")
            return
        n = len([f for f in os.listdir(outdir) if f.endswith(".body")])
        base = os.path.join(outdir, "%04d" % n)
        with open(base + ".meta", "w") as f:
            json.dump({"path": self.path, "content_type": self.headers.get("Content-Type")}, f)
        with open(base + ".tmp", "wb") as f:
            f.write(body)
        os.rename(base + ".tmp", base + ".body")
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// An HTTP server that stores each POST body in `dir` and answers 200, or
/// 500 while `dir/fail` exists.
fn http_server(dir: &Path) -> Server {
    let script = dir.join("server.py");
    std::fs::write(&script, HTTP_SERVER).unwrap();
    let mut child = exec::command(PYTHON, [script.to_str().unwrap(), dir.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(server_log(dir))
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| panic!("no port from server: {line:?}"));
    let mut server = Server { child, port };
    wait_for_port(&mut server);
    server
}

/// The POSTs the HTTP server stored: (path, content type, body).
fn posts(dir: &Path) -> Vec<(String, String, Value)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "body"))
        .collect();
    names.sort();
    names
        .iter()
        .map(|p| {
            let meta: Value =
                serde_json::from_slice(&std::fs::read(p.with_extension("meta")).unwrap()).unwrap();
            let body: Value = serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap();
            (
                meta["path"].as_str().unwrap().to_string(),
                meta["content_type"].as_str().unwrap_or("").to_string(),
                body,
            )
        })
        .collect()
}

struct TestCerts {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// A throwaway CA and a server certificate for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) -> TestCerts {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    let mut args = vec!["req", "-x509"];
    args.extend_from_slice(&ec);
    let (ca_key, ca) = (p("ca.key"), p("ca.pem"));
    args.extend_from_slice(&["-keyout", &ca_key, "-out", &ca, "-days", "2"]);
    args.extend_from_slice(&["-subj", "/CN=hikeshi test CA"]);
    args.extend_from_slice(&["-addext", "basicConstraints=critical,CA:TRUE"]);
    args.extend_from_slice(&["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
    exec::run("openssl", &args).unwrap();
    let (key, csr, cert, ext) = (p("server.key"), p("server.csr"), p("server.pem"), p("ext.cnf"));
    let mut args = vec!["req"];
    args.extend_from_slice(&ec);
    args.extend_from_slice(&["-keyout", &key, "-out", &csr, "-subj", "/CN=127.0.0.1"]);
    exec::run("openssl", &args).unwrap();
    std::fs::write(
        &ext,
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    exec::run(
        "openssl",
        [
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    )
    .unwrap();
    TestCerts { ca: ca.into(), server_cert: cert.into(), server_key: key.into() }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const NOW: &str = "2026-01-15T10:36:00Z";

fn secs(n: i64) -> SignedDuration {
    SignedDuration::from_secs(n)
}

fn facts(id: i64) -> AlertFacts {
    AlertFacts {
        incident_id: id,
        kind: AlertKind::Opened,
        severity: Severity::High,
        previous_severity: None,
        rule: "ssh-brute-force".into(),
        title: "Multiple failed SSH logins".into(),
        source: "203.0.113.5".into(),
        hosts: vec!["server1".into()],
        sample_users: vec![
            "admin".into(),
            "x\r\nBcc: victim@example.org".into(),
            "y\r\nX-Injected: 1".into(),
            "<!channel> *bold*".into(),
            "\u{1b}[2Jclear".into(),
        ],
        distinct_users: 5,
        attempts: 57,
        first_seen: ts("2026-01-15T10:33:14Z"),
        last_seen: ts("2026-01-15T10:35:02Z"),
        actions: vec!["banned 203.0.113.5 for 1h via nftables".into()],
        reason: None,
        next_steps: runbook_next_steps(AlertKind::Opened, "203.0.113.5", true),
    }
}

fn db(dir: &Path) -> Connection {
    let conn = Connection::open(dir.join("hikeshi.db")).unwrap();
    conn.execute_batch(SCHEMA).unwrap();
    conn
}

fn notifier(toml: &str) -> Notifier {
    let cfg = Config::from_toml(toml, Path::new("test.toml")).unwrap();
    Notifier::from_config(&cfg.team, &cfg.alert, false).unwrap()
}

const TEAM: &str = r#"
[[team.members]]
role = "incident_manager"
name = "Aiko"
email = "aiko@example.com"
receives = ["high", "critical"]

[[team.members]]
role = "security_analyst"
name = "IR team"
email = "ir_team@example.com"
receives = ["medium", "high", "critical"]

[[team.members]]
role = "communication_lead"
name = "Mei"
email = "mei@example.com"
receives = ["critical"]
"#;

fn email_config(port: u16, tls: &str, extra: &str) -> String {
    format!(
        "{TEAM}\n[alert.email]\nserver = \"127.0.0.1\"\nport = {port}\ntls = \"{tls}\"\nfrom = \"hikeshi <hikeshi@server1.example.com>\"\ntimeout_secs = 5\n{extra}\n"
    )
}

#[test]
fn email_alert_is_delivered_with_an_actionable_body_and_no_injected_header() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let _smtp = aiosmtpd(free_port(), &maildir, &[]);
    let port = _smtp.port;
    let notifier = notifier(&email_config(port, "none", ""));
    let conn = db(dir.path());
    let now = ts(NOW);

    let ids = notifier.enqueue(&conn, &facts(42), now).unwrap();
    // High severity: the incident manager and the IR list, not the
    // communication lead.
    assert_eq!(ids.len(), 2);
    // The same transition reported again (a cron run re-reading the log)
    // is not a second alert.
    assert!(notifier.enqueue(&conn, &facts(42), now + secs(600)).unwrap().is_empty());
    let report = notifier.deliver_due(&conn, now).unwrap();
    assert_eq!(report.sent, 2, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");

    let mails = mails(&maildir);
    assert_eq!(mails.len(), 2);
    let mut to: Vec<&str> = mails.iter().flat_map(|m| m.header("To")).collect();
    to.sort();
    assert_eq!(to, ["aiko@example.com", "ir_team@example.com"]);
    for mail in &mails {
        assert_eq!(mail.header("From"), ["hikeshi <hikeshi@server1.example.com>"]);
        assert_eq!(
            mail.header("Subject"),
            ["Incident Alert #42: [HIGH] Multiple failed SSH logins from 203.0.113.5 on server1"]
        );
        // The attacker's CR/LF did not become headers.
        assert!(mail.header("Bcc").is_empty(), "{:?}", mail.headers);
        assert!(mail.header("X-Injected").is_empty(), "{:?}", mail.headers);
        // aiosmtpd records the envelope: only the configured recipient.
        assert_eq!(mail.header("X-RcptTo"), mail.header("To"));
        let body = &mail.body;
        for needle in [
            "Security Alert: Multiple failed SSH logins detected on server1",
            "Incident:     #42 (opened)",
            "Source:       203.0.113.5",
            "Since:        2026-01-15T10:33:14Z",
            "  - banned 203.0.113.5 for 1h via nftables",
            "Next steps (runbook):",
            "[System Administrator] Check that the block is in place",
            "\"x\\r\\nBcc: victim@example.org\"",
            "\"\\u{1b}[2Jclear\"",
            "インシデント番号: #42",
        ] {
            assert!(body.contains(needle), "missing {needle:?} in\n{body}");
        }
        assert!(!body.contains('\u{1b}') && !body.contains('\r'), "{body:?}");
        assert!(!body.lines().any(|l| l.starts_with("Bcc:") || l.starts_with("X-Injected")));
    }
    // Delivered rows are never sent again.
    let again = notifier.deliver_due(&conn, now + secs(86_400)).unwrap();
    assert_eq!(again.sent, 0);
    assert_eq!(self::mails(&maildir).len(), 2);
}

#[test]
fn hostile_source_and_host_and_a_japanese_subject_survive_smtp_intact() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let smtp = aiosmtpd(free_port(), &maildir, &[]);
    let mut notifier = notifier(&email_config(smtp.port, "none", ""));
    // `hikeshi scan -s`: a Japanese subject is encoded, not mangled.
    notifier.set_subject("インシデント警報");
    let conn = db(dir.path());
    let now = ts(NOW);
    let mut f = facts(77);
    f.source = "evil.example\r\nBcc: victim@example.org".into();
    f.hosts = vec!["srv\r\nX-Injected: 1\r\n\r\nforged body".into()];
    f.title = "Multiple failed SSH logins\nSubject: all clear".into();
    notifier.enqueue(&conn, &f, now).unwrap();
    assert_eq!(notifier.deliver_due(&conn, now).unwrap().sent, 2);
    let mails = mails(&maildir);
    assert_eq!(mails.len(), 2);
    for mail in &mails {
        let subject = mail.header("Subject");
        assert_eq!(subject.len(), 1, "{:?}", mail.headers);
        assert!(subject[0].starts_with("インシデント警報 #77: [HIGH] "), "{}", subject[0]);
        assert!(subject[0].contains("evil.example\\r\\nBcc: victim@example.org"), "{}", subject[0]);
        assert!(mail.header("Bcc").is_empty() && mail.header("X-Injected").is_empty());
        assert_eq!(mail.header("X-RcptTo"), mail.header("To"));
        assert!(!mail.body.lines().any(|l| l == "forged body" || l.starts_with("Subject:")));
        assert!(mail.body.contains("Where:        srv\\r\\nX-Injected: 1\\r\\n\\r\\nforged body"));
    }
}

#[test]
fn starttls_is_required_and_checks_the_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let maildir = dir.path().join("Maildir");
    let smtp = tls_aiosmtpd(&maildir, &certs, Tls::Starttls);
    let conn = db(dir.path());
    let now = ts(NOW);

    // Without our CA, the self-signed chain is refused: nothing is sent in
    // clear, and the failure is recorded.
    let untrusting = notifier(&email_config(smtp.port, "starttls", ""));
    untrusting.enqueue(&conn, &facts(1), now).unwrap();
    let report = untrusting.deliver_due(&conn, now).unwrap();
    assert_eq!(report.sent, 0);
    assert_eq!(report.failed.len(), 1, "{report:?}");
    // The second recipient shares the server: postponed, not tried.
    assert_eq!(report.postponed, 1, "{report:?}");
    let error = &report.failed[0].error;
    assert!(error.to_lowercase().contains("certificate"), "{error}");
    assert!(mails(&maildir).is_empty());

    // With the CA, the same rows go through at their next attempt.
    let ca = format!("ca_file = \"{}\"", certs.ca.display());
    let trusting = notifier(&email_config(smtp.port, "starttls", &ca));
    let later = report.failed[0].next_attempt_at;
    assert_eq!(later, now + secs(30));
    let report = trusting.deliver_due(&conn, later).unwrap();
    assert_eq!(report.sent, 2, "{report:?}");
    let mails = mails(&maildir);
    assert_eq!(mails.len(), 2);
    assert!(mails[0].body.contains("Incident:     #1 (opened)"));
}

#[test]
fn smtps_delivers_over_tls_from_the_first_byte() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let maildir = dir.path().join("Maildir");
    let smtp = tls_aiosmtpd(&maildir, &certs, Tls::Implicit);
    let conn = db(dir.path());
    let ca = format!("ca_file = \"{}\"", certs.ca.display());
    let notifier = notifier(&email_config(smtp.port, "tls", &ca));
    let now = ts(NOW);
    notifier.enqueue(&conn, &facts(7), now).unwrap();
    let report = notifier.deliver_due(&conn, now).unwrap();
    assert_eq!(report.sent, 2, "{report:?}");
    assert_eq!(mails(&maildir).len(), 2);
}

#[test]
fn smtp_auth_uses_the_password_file_and_a_wrong_password_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path());
    let maildir = dir.path().join("Maildir");
    let smtp = auth_smtpd(dir.path(), &maildir, &certs, "hikeshi", "s3cret pass");
    let conn = db(dir.path());
    let now = ts(NOW);
    let ca = format!("ca_file = \"{}\"\nusername = \"hikeshi\"\n", certs.ca.display());

    let env_var = format!("HIKESHI_TEST_SMTP_PW_{}", std::process::id());
    std::env::set_var(&env_var, "wrong");
    let wrong = notifier(&email_config(
        smtp.port,
        "starttls",
        &format!("{ca}password_env = \"{env_var}\""),
    ));
    wrong.enqueue(&conn, &facts(3), now).unwrap();
    let report = wrong.deliver_due(&conn, now).unwrap();
    assert_eq!(report.sent, 0);
    let error = &report.failed[0].error;
    assert!(error.contains("535") || error.to_lowercase().contains("auth"), "{error}");

    let pw_file = dir.path().join("smtp-password");
    std::fs::write(&pw_file, "s3cret pass\n").unwrap();
    let right = notifier(&email_config(
        smtp.port,
        "starttls",
        &format!("{ca}password_file = \"{}\"", pw_file.display()),
    ));
    let report = right.deliver_due(&conn, now + secs(3600)).unwrap();
    assert_eq!(report.sent, 2, "{report:?}");
    assert_eq!(mails(&maildir).len(), 2);
}

#[test]
fn smtp_down_is_recorded_retried_with_backoff_and_delivered_once_up() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let port = free_port();
    let team_one = r#"
[[team.members]]
role = "security_analyst"
name = "IR team"
email = "ir_team@example.com"
"#;
    let cfg = format!(
        "{team_one}\n[alert.email]\nserver = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"hikeshi@example.com\"\ntimeout_secs = 5\n"
    );
    let notifier = notifier(&cfg);
    let conn = db(dir.path());
    let t0 = ts(NOW);
    let ids = notifier.enqueue(&conn, &facts(9), t0).unwrap();
    assert_eq!(ids.len(), 1);

    // Nothing listens: the failure is recorded with its next attempt.
    let first = notifier.deliver_due(&conn, t0).unwrap();
    assert_eq!(first.failed.len(), 1, "{first:?}");
    let failed = &first.failed[0];
    assert_eq!((failed.attempts, failed.next_attempt_at), (1, t0 + secs(30)));
    assert!(failed.error.contains(&format!("127.0.0.1:{port}")), "{}", failed.error);
    let row = outbox::get(&conn, ids[0]).unwrap().unwrap();
    assert_eq!(row.attempts, 1);
    assert!(row.last_error.is_some() && row.delivered_at.is_none());

    // Second failure: the delay doubles.
    let second = notifier.deliver_due(&conn, t0 + secs(30)).unwrap();
    assert_eq!(second.failed[0].next_attempt_at, t0 + secs(30 + 60));

    // Not due yet: not tried.
    let early = notifier.deliver_due(&conn, t0 + secs(60)).unwrap();
    assert_eq!(early, Default::default());

    // The server comes up; the next attempt delivers, exactly once.
    let _smtp = aiosmtpd(port, &maildir, &[]);
    let third = notifier.deliver_due(&conn, t0 + secs(90)).unwrap();
    assert_eq!(third.delivered, ids, "{third:?}");
    for later in [91, 3600, 86_400] {
        assert_eq!(notifier.deliver_due(&conn, t0 + secs(later)).unwrap().sent, 0);
    }
    let mails = mails(&maildir);
    assert_eq!(mails.len(), 1);
    assert!(mails[0].body.contains("#9"));
    let row = outbox::get(&conn, ids[0]).unwrap().unwrap();
    assert_eq!((row.attempts, row.delivered_at), (3, Some(t0 + secs(90))));
    assert!(outbox::pending(&conn).unwrap().is_empty());
}

#[test]
fn a_silent_smtp_server_costs_one_timeout_per_round() {
    // Accepts connections (the kernel completes the handshake) but never
    // says hello.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let cfg = email_config(port, "none", "").replace("timeout_secs = 5", "timeout_secs = 1");
    let notifier = notifier(&cfg);
    let conn = db(dir.path());
    let now = ts(NOW);
    notifier.enqueue(&conn, &facts(5), now).unwrap();
    notifier.enqueue(&conn, &facts(6), now).unwrap();
    let started = Instant::now();
    let report = notifier.deliver_due(&conn, now).unwrap();
    // One attempt timed out; the three other messages for the same server
    // were not tried (each would have waited its own timeout).
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.postponed, 3, "{report:?}");
    let error = report.failed[0].error.to_lowercase();
    assert!(error.contains("timed out") || error.contains("timeout"), "{error}");
    // Guards against a hang, not a speed target.
    assert!(started.elapsed() < Duration::from_secs(30));
    let pending = outbox::pending(&conn).unwrap();
    assert_eq!(pending.len(), 4);
    assert!(pending.iter().all(|r| r.next_attempt_at == now + secs(30)));
}

#[test]
fn webhooks_post_json_and_slack_bodies() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    let http = http_server(&hooks);
    let cfg = format!(
        "[[alert.webhook]]\nurl = \"http://127.0.0.1:{p}/generic\"\nformat = \"json\"\ntimeout_secs = 5\n\n[[alert.webhook]]\nurl = \"http://127.0.0.1:{p}/slack\"\nformat = \"slack\"\nreceives = [\"critical\"]\n",
        p = http.port
    );
    let notifier = notifier(&cfg);
    let conn = db(dir.path());
    let now = ts(NOW);

    // High: only the JSON hook wants it.
    notifier.enqueue(&conn, &facts(42), now).unwrap();
    let mut escalated = facts(42);
    escalated.kind = AlertKind::Escalated;
    escalated.severity = Severity::Critical;
    escalated.previous_severity = Some(Severity::High);
    escalated.next_steps = runbook_next_steps(AlertKind::Escalated, "203.0.113.5", true);
    notifier.enqueue(&conn, &escalated, now + secs(60)).unwrap();
    let report = notifier.deliver_due(&conn, now + secs(60)).unwrap();
    assert_eq!(report.sent, 3, "{report:?}");

    let posts = posts(&hooks);
    assert_eq!(posts.len(), 3);
    let generic: Vec<&Value> = posts.iter().filter(|p| p.0 == "/generic").map(|p| &p.2).collect();
    let slack: Vec<&Value> = posts.iter().filter(|p| p.0 == "/slack").map(|p| &p.2).collect();
    assert!(posts.iter().all(|p| p.1 == "application/json"));
    assert_eq!(generic.len(), 2);
    assert_eq!(slack.len(), 1);
    assert_eq!(generic[0]["schema"], "hikeshi.alert.v1");
    assert_eq!(generic[0]["incident_id"], 42);
    assert_eq!(generic[0]["kind"], "opened");
    assert_eq!(generic[0]["source"], "203.0.113.5");
    assert_eq!(generic[0]["sample_users"][1], "x\\r\\nBcc: victim@example.org");
    assert_eq!(generic[1]["kind"], "escalated");
    assert_eq!(generic[1]["previous_severity"], "high");

    let slack = slack[0];
    let text = slack["text"].as_str().unwrap();
    assert!(text.starts_with("Incident Alert #42: escalated to CRITICAL"), "{text}");
    let raw = slack.to_string();
    assert!(!raw.contains("<!channel>") && raw.contains("&lt;!channel&gt;"), "{raw}");
    assert!(raw.contains("Treat this as a possible compromise"), "{raw}");
    assert_eq!(slack["blocks"][0]["type"], "header");
}

#[test]
fn webhook_500_is_retried_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    let http = http_server(&hooks);
    std::fs::write(hooks.join("fail"), "").unwrap();
    let notifier = notifier(&format!(
        "[[alert.webhook]]\nurl = \"http://127.0.0.1:{}/hook/SECRET-TOKEN\"\n",
        http.port
    ));
    let conn = db(dir.path());
    let now = ts(NOW);
    let ids = notifier.enqueue(&conn, &facts(11), now).unwrap();

    let report = notifier.deliver_due(&conn, now).unwrap();
    assert_eq!(report.failed.len(), 1);
    let failed = &report.failed[0];
    assert!(failed.error.contains("HTTP 500") && failed.error.contains("boom"), "{failed:?}");
    // The URL's secret path stays out of errors and reports.
    assert!(!failed.error.contains("SECRET") && !failed.recipient.contains("SECRET"), "{failed:?}");
    let row = outbox::get(&conn, ids[0]).unwrap().unwrap();
    assert!(!row.last_error.unwrap().contains("SECRET"));
    assert!(posts(&hooks).is_empty());

    std::fs::remove_file(hooks.join("fail")).unwrap();
    let report = notifier.deliver_due(&conn, now + secs(30)).unwrap();
    assert_eq!(report.delivered, ids);
    assert_eq!(notifier.deliver_due(&conn, now + secs(7200)).unwrap().sent, 0);
    let posts = posts(&hooks);
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].2["incident_id"], 11);
}

#[test]
fn rate_limit_bundles_a_burst_and_holds_what_exceeds_the_window() {
    let dir = tempfile::tempdir().unwrap();
    let hooks = dir.path().join("hooks");
    std::fs::create_dir(&hooks).unwrap();
    let http = http_server(&hooks);
    let notifier = notifier(&format!(
        "[alert]\nrate_limit_max = 2\nrate_limit_window_secs = 600\n\n[[alert.webhook]]\nurl = \"http://127.0.0.1:{}/hook\"\n",
        http.port
    ));
    let conn = db(dir.path());
    let t0 = ts(NOW);

    // A burst of 5 incidents: one alert, then one digest of the other 4.
    for id in 1..=5 {
        notifier.enqueue(&conn, &facts(id), t0).unwrap();
    }
    let report = notifier.deliver_due(&conn, t0).unwrap();
    assert_eq!((report.sent, report.digests, report.delivered.len()), (2, 1, 5), "{report:?}");
    let got = posts(&hooks);
    assert_eq!(got[0].2["incident_id"], 1);
    assert_eq!(got[1].2["schema"], "hikeshi.digest.v1");
    assert_eq!(got[1].2["count"], 4);
    let ids: Vec<i64> = got[1].2["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["incident_id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [2, 3, 4, 5]);

    // The window is full: the next alert is held, not dropped, until the
    // first send leaves the window.
    notifier.enqueue(&conn, &facts(6), t0 + secs(10)).unwrap();
    let report = notifier.deliver_due(&conn, t0 + secs(10)).unwrap();
    assert_eq!((report.sent, report.held), (0, 1), "{report:?}");
    assert_eq!(outbox::next_due(&conn).unwrap(), Some(t0 + secs(600)));
    assert_eq!(notifier.deliver_due(&conn, t0 + secs(599)).unwrap().sent, 0);
    let report = notifier.deliver_due(&conn, t0 + secs(600)).unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let got = posts(&hooks);
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].2["incident_id"], 6);
}

#[test]
fn the_example_config_with_every_alert_setting_enabled_builds_a_notifier() {
    // Uncomment the example's `# key = ...` and `# [section]` lines (not
    // the `# # ...` notes) and build a notifier from it.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/hikeshi.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Only the team and alert sections: the rest of the file belongs to
    // other commands, whose examples are tested where they are used.
    let mut in_alert_sections = false;
    let uncommented: String = text
        .lines()
        .map(|l| {
            let header = l.strip_prefix("# ").unwrap_or(l);
            if header.starts_with("[[") || (header.starts_with('[') && header.ends_with(']')) {
                let name = header.trim_start_matches('[');
                in_alert_sections = name.starts_with("team") || name.starts_with("alert");
            }
            match l.strip_prefix("# ") {
                Some(rest)
                    if in_alert_sections
                        && (rest.starts_with('[')
                            || rest.split_once(" = ").is_some_and(|(k, _)| {
                                k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                            })) =>
                {
                    rest.to_string()
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let cfg = Config::from_toml(&uncommented, &path).unwrap();
    assert_eq!(cfg.team.members.len(), 4);
    assert_eq!(cfg.alert.webhook.len(), 1);
    assert!(cfg.alert.email.is_some());
    let notifier = Notifier::from_config(&cfg.team, &cfg.alert, false).unwrap();
    let mut critical = facts(1);
    critical.severity = Severity::Critical;
    assert_eq!(notifier.email_recipients(&critical).len(), 4);
    assert_eq!(notifier.email_recipients(&facts(1)).len(), 3);
}

/// The runbook's cron job, done right: `hikeshi scan -q -s SUBJECT` on a
/// log with a brute force mails the team once through a real SMTP server;
/// the next run over the same (and more) lines mails nothing more.
#[test]
fn scan_from_cron_mails_the_team_once_per_incident() {
    let dir = tempfile::tempdir().unwrap();
    let maildir = dir.path().join("Maildir");
    let port = free_port();
    let _smtp = aiosmtpd(port, &maildir, &[]);
    let config = dir.path().join("hikeshi.toml");
    std::fs::write(
        &config,
        format!("{}\n[contain]\nbackend = \"none\"\n", email_config(port, "none", "")),
    )
    .unwrap();
    let log = dir.path().join("auth.log");
    let mut lines = String::new();
    for i in 0..6 {
        lines.push_str(&format!(
            "Jan 15 10:33:{i:02} server1 sshd[{}]: Failed password for invalid user admin from 203.0.113.5 port {} ssh2\n",
            2231 + i,
            55214 + i
        ));
    }
    std::fs::write(&log, &lines).unwrap();
    let data = dir.path().join("data");
    let scan = |subject: &str| {
        exec::command(
            env!("CARGO_BIN_EXE_hikeshi"),
            [
                "--data-dir",
                data.to_str().unwrap(),
                "--config",
                config.to_str().unwrap(),
                "scan",
                "-q",
                "-s",
                subject,
                log.to_str().unwrap(),
            ],
        )
        .output()
        .unwrap()
    };
    let first = scan("Incident Alert");
    assert_eq!(first.status.code(), Some(1), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(first.stdout.is_empty(), "-q prints nothing");
    let delivered = mails(&maildir);
    // Every team member whose severities include "high" gets one message.
    assert!(!delivered.is_empty());
    let recipients: Vec<&str> = delivered.iter().flat_map(|m| m.header("To")).collect();
    let unique: std::collections::BTreeSet<&str> = recipients.iter().copied().collect();
    assert_eq!(recipients.len(), unique.len(), "one message per recipient: {recipients:?}");
    let mail = &delivered[0];
    let subject = mail.header("Subject")[0];
    assert!(
        subject.starts_with("Incident Alert #1") && subject.contains("203.0.113.5"),
        "{subject}"
    );
    assert!(mail.body.contains("server1") && mail.body.contains("admin"), "{}", mail.body);
    assert!(mail.body.contains("iptables -A INPUT -s 203.0.113.5 -j DROP"), "{}", mail.body);

    let mut more = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(
        &mut more,
        b"Jan 15 10:34:00 server1 sshd[3000]: Failed password for root from 203.0.113.5 port 1 ssh2\n",
    )
    .unwrap();
    let second = scan("Incident Alert");
    assert_eq!(second.status.code(), Some(0), "{}", String::from_utf8_lossy(&second.stderr));
    let third = scan("Incident Alert");
    assert_eq!(third.status.code(), Some(0));
    assert_eq!(mails(&maildir).len(), delivered.len(), "no second alert for the same incident");
}
