//! Running the programs a test sets its stage with (`ip`, `nft`, Python
//! scripts): failing the test with everything they said, and a TCP probe.
#![allow(dead_code)]

use std::process::Output;

use hikeshi::exec;

/// A Python script that exits 0 when a TCP connection to
/// `argv[1]:argv[2]` opens within `argv[3]` seconds, 1 otherwise.
pub const CONNECT: &str = r#"
import socket, sys
try:
    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3])).close()
except OSError:
    sys.exit(1)
"#;

/// A finished program's exit status, stdout and stderr, for a failure
/// message.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `program` with `args` to completion; fails the test, saying all
/// it printed, unless it succeeds.
pub fn must(program: &str, args: &[&str]) -> Output {
    let out = exec::command(program, args).output().unwrap();
    assert!(out.status.success(), "{program} {args:?} failed: {}", text(&out));
    out
}
