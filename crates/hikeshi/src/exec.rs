//! The one place that starts other programs (`nft`, `iptables`,
//! `journalctl`, `sshd -T`, ...).
//!
//! Every command is an argument vector handed to the kernel through
//! `execve`: no shell ever sees text that could come from a log line.
//! `clippy.toml` forbids `std::process::Command::new` everywhere else.

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

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
    #[error("`{program} {args}` did not finish within {after:?}: killed")]
    TimedOut { program: String, args: String, after: Duration },
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

/// How long a program may run before it is killed, with everything it
/// started: a firewall or service program that hangs (a held xtables
/// lock, a stuck fail2ban server) must not hold containment forever. The
/// longest legitimate run, a 100,000-element `nft -f` batch, takes about
/// a second.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `program args...` to completion and returns its output, or an error
/// that names the program, its arguments, its status and its stderr.
/// Killed after [`TIMEOUT`].
pub fn run<I, S>(program: &str, args: I) -> Result<Output, ExecError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_within(TIMEOUT, program, args, None)
}

/// Runs `program args...` with `input` on its standard input (e.g. an
/// `nft -f -` batch). Killed after [`TIMEOUT`].
pub fn run_with_stdin<I, S>(program: &str, args: I, input: &[u8]) -> Result<Output, ExecError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    run_within(TIMEOUT, program, args, Some(input))
}

/// Runs `program args...` (with `input` on its standard input, if any) and
/// kills it, and every process it started, once `timeout` has passed.
pub fn run_within<I, S>(
    timeout: Duration,
    program: &str,
    args: I,
    input: Option<&[u8]>,
) -> Result<Output, ExecError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    use std::io::Write;
    use std::os::unix::process::CommandExt;
    let deadline = Instant::now() + timeout;
    let args: Vec<S> = args.into_iter().collect();
    let spawn_error = |source| ExecError::Spawn { program: program.to_string(), source };
    let mut cmd = command(program, &args);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    // Its own process group: a timeout kills what it started too, which
    // would otherwise hold its output pipes open.
    cmd.process_group(0);
    if input.is_some() {
        cmd.stdin(Stdio::piped());
    }
    let mut child = cmd.spawn().map_err(spawn_error)?;
    // Write on a thread so a child that fills its stdout pipe before reading
    // all of its input cannot deadlock us.
    let writer = match (input, child.stdin.take()) {
        (Some(input), Some(mut stdin)) => {
            let input = input.to_vec();
            Some(std::thread::spawn(move || stdin.write_all(&input)))
        }
        _ => None,
    };
    let (done_tx, done_rx) = mpsc::channel();
    let stdout = drain(child.stdout.take(), done_tx.clone());
    let stderr = drain(child.stderr.take(), done_tx);
    // Both pipes reach their end when the program exits (or closes them).
    let closed = (0..2).all(|_| {
        let left = deadline.saturating_duration_since(Instant::now());
        done_rx.recv_timeout(left).is_ok()
    });
    let status = if closed { wait_until(&mut child, deadline).map_err(spawn_error)? } else { None };
    let Some(status) = status else {
        let _ = rustix::process::kill_process_group(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::KILL,
        );
        let _ = child.wait();
        return Err(ExecError::TimedOut {
            program: program.to_string(),
            args: joined(&args),
            after: timeout,
        });
    };
    let output = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    match writer.map(|w| w.join()) {
        None | Some(Ok(Ok(()))) | Some(Err(_)) => {}
        // A child that exits early closes its stdin; its status tells why.
        Some(Ok(Err(e))) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        Some(Ok(Err(source))) => {
            return Err(ExecError::Stdin { program: program.to_string(), source })
        }
    }
    check(program, &args, output)
}

/// Reads `pipe` to its end on a thread; says so on `done`.
fn drain(
    pipe: Option<impl std::io::Read + Send + 'static>,
    done: mpsc::Sender<()>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        let _ = done.send(());
        bytes
    })
}

/// The child's exit status, or `None` if it is still running at `deadline`.
/// Called once its output has ended, when it has exited or is about to.
fn wait_until(
    child: &mut std::process::Child,
    deadline: Instant,
) -> std::io::Result<Option<std::process::ExitStatus>> {
    let mut pause = Duration::from_micros(20);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(Some(status));
        }
        let now = Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        std::thread::sleep(pause.min(deadline - now));
        pause = (pause * 2).min(Duration::from_millis(5));
    }
}

fn joined<S: AsRef<OsStr>>(args: &[S]) -> String {
    args.iter().map(|a| a.as_ref().to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
}

fn check<S: AsRef<OsStr>>(program: &str, args: &[S], output: Output) -> Result<Output, ExecError> {
    if output.status.success() {
        return Ok(output);
    }
    Err(ExecError::Failed {
        program: program.to_string(),
        args: joined(args),
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
    fn a_program_that_hangs_is_killed_with_what_it_started() {
        let started = Instant::now();
        // The shell's `sleep` holds the output pipe: it must die too.
        let err = run_within(Duration::from_millis(300), "sh", ["-c", "sleep 30; echo late"], None)
            .unwrap_err();
        assert!(matches!(err, ExecError::TimedOut { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("sh -c sleep 30") && text.contains("did not finish"), "{text}");
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
    }

    #[test]
    fn a_program_that_closes_its_output_but_runs_on_is_killed() {
        let err = run_within(
            Duration::from_millis(300),
            "sh",
            ["-c", "exec >/dev/null 2>&1; sleep 30"],
            None,
        )
        .unwrap_err();
        assert!(matches!(err, ExecError::TimedOut { .. }), "{err}");
    }

    #[test]
    fn output_larger_than_a_pipe_is_read_whole() {
        let out = run("head", ["-c", "1000000", "/dev/zero"]).unwrap();
        assert_eq!(out.stdout.len(), 1_000_000);
        let input = vec![b'x'; 1_000_000];
        let out = run_with_stdin("cat", Vec::<&str>::new(), &input).unwrap();
        assert_eq!(out.stdout, input);
    }

    #[test]
    fn stdin_is_delivered() {
        let out = run_with_stdin("cat", Vec::<&str>::new(), b"hello").unwrap();
        assert_eq!(out.stdout, b"hello");
    }
}
