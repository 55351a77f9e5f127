#!/usr/bin/python3
"""Sustained ingest of `hikeshi watch`: lag and memory while a log grows.

Driven by bench/watch-ingest.sh. Starts COMMAND (the daemon, in its
namespace), waits for its ready line, starts WRITER (which appends to the
log at a steady rate and prints a JSON summary), and every second samples:
  - written: bytes appended to the log so far (its size);
  - lag: bytes written to the log and not yet handled by the daemon
    (parsed, detected, committed): `behind_bytes` of the daemon's status
    (--status-file, the document `hikeshi status --json` shows under
    "daemon", rewritten by the daemon every 2 s: each sample uses the
    latest one);
  - lag_read: written - /proc/PID/io rchar (every byte the process read,
    the log and anything else): how far the reading itself is behind,
    at most (a lower bound on the lag), sampled exactly on the second;
  - VmRSS from /proc/PID/status, CPU seconds from /proc/PID/stat.
After the writer stops it waits (up to --drain-timeout s) for a status
written after the writer's end that shows nothing behind, stops the
daemon with SIGTERM, and writes every sample and the verdicts as JSON:
  - lag bounded: the lag never exceeded --max-lag-seconds of input, and
    everything was handled within --drain-timeout s of the writer's end;
  - RSS flat: the mean RSS over the last 10 s of writing is within
    --rss-tolerance (relative) of the mean over the first 10 s; and, since
    those include the warm-up (caches and detection state filling up to
    the working set), of the mean over the 10 s before the middle (the
    exit status uses this one).
"""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime


def proc_field(pid, name, key):
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid, task=None):
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu(pid):
    """CPU seconds per thread name (threads of one name summed)."""
    by_name = {}
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/comm") as f:
                name = f.read().strip()
            by_name[name] = by_name.get(name, 0.0) + cpu_seconds(pid, task)
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended meanwhile
    return by_name


def daemon_status(path):
    """The daemon's status document, or None before the first one."""
    try:
        with open(path) as f:
            return json.load(f)
    except (FileNotFoundError, ValueError):
        return None


def behind_bytes(status):
    """Bytes of the followed files not handled yet, when the daemon says."""
    values = [s["behind_bytes"] for s in status.get("streams", []) if s.get("behind_bytes") is not None]
    return sum(values) if values else None


def unix_time(rfc3339):
    return datetime.fromisoformat(rfc3339).timestamp()


def stop(proc, grace_s=60.0):
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return proc.wait()
    try:
        return proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return "killed"


def wait_ready(proc, tool_log, text, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"watch_ingest: the daemon exited with {proc.returncode} before it was ready")
        with open(tool_log, "rb") as f:
            if text.encode() in f.read():
                return
        if time.monotonic() > deadline:
            raise SystemExit(f"watch_ingest: no {text!r} from the daemon within {timeout_s} s")
        time.sleep(0.01)


def measure(args, tool):
    pid = tool.pid  # `ip netns exec` execs the command: the same process
    base_size = os.path.getsize(args.log)
    base_rchar = proc_field(pid, "io", "rchar:")
    writer = subprocess.Popen(shlex.split(args.writer), stdout=subprocess.PIPE, start_new_session=True)
    try:
        started = time.monotonic()
        started_unix = time.time()
        writer_done = []
        threading.Thread(
            target=lambda: (writer.wait(), writer_done.append(time.monotonic() - started)), daemon=True
        ).start()
        samples = []
        writer_end = None
        drained_at = None
        next_sample = started + 1.0
        while True:
            while time.monotonic() < next_sample and not (writer_end is None and writer_done):
                time.sleep(min(0.05, max(0.0, next_sample - time.monotonic())))
            next_sample += 1.0 if writer_end is None else 0.1
            if tool.poll() is not None:
                raise SystemExit(f"watch_ingest: the daemon exited with {tool.returncode} during the run")
            t = time.monotonic() - started
            written = os.path.getsize(args.log) - base_size
            status = daemon_status(args.status_file)
            status_t = None
            lag = None
            if status is not None:
                status_t = unix_time(status["updated_at"]) - started_unix
                lag = behind_bytes(status)
            totals = (status or {}).get("totals", {})
            samples.append(
                {
                    "t": round(t, 3),
                    "writing": writer_end is None,
                    "written": written,
                    "lag_bytes": lag,
                    "status_t": None if status_t is None else round(status_t, 3),
                    "lag_read_bytes": max(0, written - (proc_field(pid, "io", "rchar:") - base_rchar)),
                    "handled_lines": totals.get("handled"),
                    "bans_applied": totals.get("bans_applied"),
                    "rss_kib": proc_field(pid, "status", "VmRSS:"),
                    "cpu_s": cpu_seconds(pid),
                    "thread_cpu_s": thread_cpu(pid),
                    # The daemon's capped state (detector subjects, ban
                    # requests, buffered lines, incident cache): what an
                    # RSS change is made of.
                    "memory": (status or {}).get("memory"),
                }
            )
            if writer_end is None and writer_done:
                writer_end = writer_done[0]
                next_sample = time.monotonic() + 0.1
            if writer_end is not None:
                if status_t is not None and status_t >= writer_end and lag == 0:
                    drained_at = status_t
                    break
                if t - writer_end > args.drain_timeout:
                    break
        summary = json.loads(writer.stdout.read() or b"{}")
        if writer.returncode != 0:
            raise SystemExit(f"watch_ingest: the writer failed ({writer.returncode})")
    finally:
        if writer.poll() is None:
            stop(writer)
    return summary, samples, writer_end, drained_at


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tool-log", required=True, help="file for the daemon's stdout and stderr")
    p.add_argument("--ready-line", required=True)
    p.add_argument("--status-file", required=True, help="the daemon's status.json")
    p.add_argument("--writer", required=True, help="the writer command (shell words)")
    p.add_argument("--rate", type=int, required=True)
    p.add_argument("--max-lag-seconds", type=float, default=1.0)
    p.add_argument("--drain-timeout", type=float, default=10.0)
    p.add_argument("--rss-tolerance", type=float, default=0.10)
    p.add_argument("command", nargs="+")
    args = p.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    out = open(args.tool_log, "wb")
    tool = subprocess.Popen(args.command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
    try:
        wait_ready(tool, args.tool_log, args.ready_line)
        summary, samples, writer_end, drained_at = measure(args, tool)
        exit_status = stop(tool)
    finally:
        if tool.poll() is None:
            stop(tool)

    bytes_per_line = summary["bytes"] / summary["lines"]
    bytes_per_s = args.rate * bytes_per_line
    writing = [s for s in samples if s["writing"]]
    lags = [s["lag_bytes"] for s in samples if s["lag_bytes"] is not None]
    max_lag = max(lags) if lags else None
    max_lag_read = max(s["lag_read_bytes"] for s in samples)
    first = [s["rss_kib"] for s in writing[:10]]
    last = [s["rss_kib"] for s in writing[-10:]]
    half = len(writing) // 2
    middle = [s["rss_kib"] for s in writing[max(0, half - 10) : half]]
    rss_first = sum(first) / len(first)
    rss_last = sum(last) / len(last)
    rss_middle = sum(middle) / len(middle) if middle else rss_first
    drained = drained_at is not None
    lag_ok = max_lag is not None and max_lag <= args.max_lag_seconds * bytes_per_s and drained
    # As asked: the last 10 s against the first 10 s. The first seconds
    # include the warm-up (caches and detection state filling up to their
    # working set), so the second half is also compared: the 10 s before
    # the middle against the last 10 s.
    rss_ok = rss_last <= rss_first * (1 + args.rss_tolerance)
    rss_second_half_ok = rss_last <= rss_middle * (1 + args.rss_tolerance)
    cpu = samples[-1]["cpu_s"] - samples[0]["cpu_s"]
    result = {
        "rate_asked": args.rate,
        "writer": summary,
        "rate_achieved": summary["lines"] / summary["seconds"],
        "bytes_per_line": bytes_per_line,
        "max_lag_bytes": max_lag,
        "max_lag_lines": None if max_lag is None else round(max_lag / bytes_per_line),
        "max_lag_seconds": None if max_lag is None else max_lag / bytes_per_s,
        "max_read_lag_bytes": max_lag_read,
        "drained": drained,
        "drained_seconds_after_writer": None if not drained else max(0.0, drained_at - writer_end),
        "rss_first10_kib": rss_first,
        "rss_last10_kib": rss_last,
        "rss_before_middle10_kib": rss_middle,
        "rss_flat_second_half": rss_second_half_ok,
        "rss_max_kib": max(s["rss_kib"] for s in samples),
        "cpu_seconds": cpu,
        "handled_lines": samples[-1]["handled_lines"],
        "bans_applied": samples[-1]["bans_applied"],
        "daemon_exit": exit_status,
        "lag_bounded": lag_ok,
        "rss_flat": rss_ok,
        "loadavg_end": os.getloadavg(),
        "samples": samples,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)

    def lag_ms(b):
        return "-" if b is None else f"{b / bytes_per_s * 1e3:.0f}"

    print(
        f"writer: {summary['lines']} lines, {summary['bytes'] / 1e6:.0f} MB in {summary['seconds']:.1f} s "
        f"({result['rate_achieved']:.0f} lines/s; {summary['late_ticks']} of {summary['ticks']} 10-ms ticks late)"
    )
    # One row per second of writing, and the last sample; the lag is the
    # daemon's latest status (written every 2 s, at "status t").
    print(f"{'t s':>5} {'written MB':>11} {'status t':>9} {'lag KB':>8} {'lag ms':>7} {'RSS MiB':>8} {'CPU s':>6} {'bans':>6}")
    for s in writing + samples[-1:]:
        lag_kb = "-" if s["lag_bytes"] is None else f"{s['lag_bytes'] / 1e3:.0f}"
        st = "-" if s["status_t"] is None else f"{s['status_t']:.1f}"
        print(
            f"{s['t']:5.1f} {s['written'] / 1e6:11.1f} {st:>9} {lag_kb:>8} {lag_ms(s['lag_bytes']):>7} "
            f"{s['rss_kib'] / 1024:8.1f} {s['cpu_s']:6.1f} {s['bans_applied'] if s['bans_applied'] is not None else '-':>6}"
        )
    if max_lag is None:
        print("lag: the daemon's status never reported behind_bytes")
    else:
        print(
            f"lag (written, not handled): max {max_lag / 1e3:.0f} KB = {result['max_lag_lines']} lines = "
            f"{result['max_lag_seconds'] * 1e3:.0f} ms of input; "
            + (
                f"everything handled {result['drained_seconds_after_writer']:.1f} s after the writer stopped"
                if drained
                else f"NOT all handled {args.drain_timeout} s after the writer stopped"
            )
        )
    print(
        f"RSS: {rss_first / 1024:.1f} MiB (mean of the first 10 s) -> {rss_middle / 1024:.1f} MiB "
        f"(the 10 s before the middle) -> {rss_last / 1024:.1f} MiB (last 10 s), max {result['rss_max_kib'] / 1024:.1f} MiB"
    )
    threads = samples[-1]["thread_cpu_s"]
    print("CPU per thread: " + ", ".join(f"{n} {v:.1f} s" for n, v in sorted(threads.items(), key=lambda kv: -kv[1])))
    print(f"CPU: {cpu:.1f} s for {summary['seconds']:.0f} s of input ({cpu / summary['seconds'] * 100:.0f}% of one core)")
    print(f"lines handled: {result['handled_lines']}; bans applied: {result['bans_applied']}; exit status after SIGTERM: {exit_status}")
    print(
        f"RESULT: lag {'BOUNDED' if lag_ok else 'NOT BOUNDED'} (<= {args.max_lag_seconds:g} s of input, all handled "
        f"within {args.drain_timeout:g} s); RSS {'FLAT' if rss_ok else 'GROWING'} from the first to the last 10 s "
        f"({(rss_last / rss_first - 1) * 100:+.0f}%, tolerance {args.rss_tolerance:.0%}), "
        f"{'FLAT' if rss_second_half_ok else 'GROWING'} over the second half ({(rss_last / rss_middle - 1) * 100:+.0f}%)"
    )
    return 0 if lag_ok and rss_second_half_ok and exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
