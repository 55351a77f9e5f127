//! The one place that starts other programs (`nft`, `iptables`,
//! `journalctl`, `sshd -T`, ...).
//!
//! Every command is an argument vector handed to the kernel through
//! `execve`: no shell ever sees text that could come from a log line.
//! `clippy.toml` forbids `std::process::Command::new` everywhere else.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ExecError {
    #[error("cannot run `{program}`: {source} (is it installed and on PATH?)")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("`{program} {args}` failed with {status}: {stderr}")]
    Failed { program: String, args: String, status: std::process::ExitStatus, stderr: String },
    #[error("cannot write to `{program}`'s standard input: {source}")]
    Stdin {
        program: String,
        #[source]
        source: std::io::Error,
    },
}

/// Builds a command for `program` with `args`. Nothing is interpreted by a
/// shell. Standard input is closed unless the caller sets it.
#[allow(clippy::disallowed_methods)]
pub fn command<I, S>(program: &str, args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new(program);
    cmd.args(args).stdin(Stdio::null());
    cmd
}

/// Runs `program args...` to completion and returns its output, or an error
/// that names the program, its arguments, its status and its stderr.
pub fn run<I, S>(program: &str, args: I) -> Result<Output, ExecError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let output = command(program, &args)
        .output()
        .map_err(|source| ExecError::Spawn { program: program.to_string(), source })?;
    check(program, &args, output)
}

/// Runs `program args...` with `input` on its standard input (e.g. an
/// `nft -f -` batch).
pub fn run_with_stdin<I, S>(program: &str, args: I, input: &[u8]) -> Result<Output, ExecError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use std::io::Write;
    let args: Vec<S> = args.into_iter().collect();
    let mut child = command(program, &args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| ExecError::Spawn { program: program.to_string(), source })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    // Write on a thread so a child that fills its stdout pipe before reading
    // all of its input cannot deadlock us.
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let result = stdin.write_all(&input);
        drop(stdin);
        result
    });
    let output = child
        .wait_with_output()
        .map_err(|source| ExecError::Spawn { program: program.to_string(), source })?;
    match writer.join() {
        Ok(Ok(())) => {}
        // A child that exits early closes its stdin; its status tells why.
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Ok(Err(source)) => return Err(ExecError::Stdin { program: program.to_string(), source }),
        Err(_) => {}
    }
    check(program, &args, output)
}

fn check<S: AsRef<OsStr>>(program: &str, args: &[S], output: Output) -> Result<Output, ExecError> {
    if output.status.success() {
        return Ok(output);
    }
    Err(ExecError::Failed {
        program: program.to_string(),
        args: args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" "),
        status: output.status,
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_program_is_a_clear_error() {
        let err = run("hikeshi-no-such-program", ["x"]).unwrap_err();
        assert!(err.to_string().contains("hikeshi-no-such-program"), "{err}");
        assert!(matches!(err, ExecError::Spawn { .. }));
    }

    #[test]
    fn failing_program_reports_status_and_stderr() {
        let err = run("sh", ["-c", "echo boom >&2; exit 3"]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("boom") && text.contains('3'), "{text}");
    }

    #[test]
    fn arguments_are_not_interpreted_by_a_shell() {
        let out = run("echo", ["$(id) ; rm -rf /tmp/x"]).unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "$(id) ; rm -rf /tmp/x\n");
    }

    #[test]
    fn stdin_is_delivered() {
        let out = run_with_stdin("cat", Vec::<&str>::new(), b"hello").unwrap();
        assert_eq!(out.stdout, b"hello");
    }
}
