//! Reading the mails an SMTP server under test (aiosmtpd's `Mailbox`
//! handler) delivered into a Maildir, parsed by Python's standard `email`
//! package so that the test does not trust our own MIME code.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use hikeshi::exec;
use serde_json::Value;

const PYTHON: &str = "/usr/bin/python3";

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
