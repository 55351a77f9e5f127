//! The SMTP server of tests, aiosmtpd (Debian's `python3-aiosmtpd`)
//! delivering into a Maildir: its arguments, and the mails it delivered,
//! parsed by Python's standard `email` package so that a test does not
//! trust our own MIME code.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hikeshi::exec;
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

/// The arguments of `python3 ARGS` that run aiosmtpd listening on
/// `listen` (`127.0.0.1:PORT`) and delivering into the Maildir `maildir`,
/// with `extra` options (TLS certificates).
pub fn aiosmtpd_args<'a>(listen: &'a str, maildir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["-m", "aiosmtpd", "-n", "-l", listen];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["-c", "aiosmtpd.handlers.Mailbox", maildir]);
    args
}

/// Prints a delivered message's headers and body as JSON.
const PARSE_MAIL: &str = r#"
import email, json, sys
from email import policy
msg = email.message_from_binary_file(open(sys.argv[1], "rb"), policy=policy.default)
print(json.dumps({"headers": [[k, str(v)] for k, v in msg.items()], "body": msg.get_content()}))
"#;

/// A delivered message as Python's standard `email` parser reads it.
pub struct Mail {
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Mail {
    /// Every value of the header `name` (case-insensitive), in order.
    pub fn header(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// The mails delivered into `maildir` so far, oldest first (none when
/// nothing was delivered yet).
pub fn mails(maildir: &Path) -> Vec<Mail> {
    let new = maildir.join("new");
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&new) {
        Ok(dir) => dir.map(|e| e.unwrap().path()).collect(),
        Err(_) => return Vec::new(),
    };
    files.sort();
    files
        .iter()
        .map(|f| {
            let out = exec::run(PYTHON, ["-c", PARSE_MAIL, f.to_str().unwrap()]).unwrap();
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            Mail {
                headers: v["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
                    .collect(),
                // SMTP lines end in CRLF; compare lines, not endings.
                body: v["body"].as_str().unwrap().replace("\r\n", "\n"),
            }
        })
        .collect()
}
