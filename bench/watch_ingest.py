#!/usr/bin/python3
"""Sustained ingest of `hikeshi watch`: lag and memory while a log grows.

Driven by bench/watch-ingest.sh. Starts COMMAND (the follower, in the
namespace given), waits for its ready line, starts WRITER (which appends to
the log at a steady rate and prints a JSON summary), and every second
samples:
  - written: the log's size (bytes appended so far);
  - read: the bytes the follower has consumed, from `STATUS_COMMAND` (JSON;
    the sum of the "bytes" of its file sources) when given and working,
    else /proc/PID/io rchar (every byte the process read: an upper bound
    on what it read of the log, so the lag it gives is a lower bound);
  - lag = written - read, in bytes and in seconds of input;
  - VmRSS from /proc/PID/status, and CPU seconds from /proc/PID/stat.
After the writer stops it waits (up to --drain-timeout s) for the lag to
reach zero, stops the follower with SIGTERM, and writes all samples and the
verdicts as JSON:
  - lag bounded: the lag never exceeded --max-lag-seconds of input, and the
    follower had read everything within --drain-timeout s of the end;
  - RSS flat: mean RSS over the last 10 s of writing within
    --rss-tolerance (relative) of the mean over the first 10 s.
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


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rchar(pid):
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def file_source_bytes(status, log):
    """Bytes read by the file source(s) following `log`, from the daemon's
    status JSON; None when the status says nothing usable. Looks for objects
    that mention the log's path (or are of kind "file") and carry "bytes"."""
    found = []

    def walk(node):
        if isinstance(node, dict):
            text = json.dumps(node)
            if "bytes" in node and isinstance(node["bytes"], int) and (log in text or node.get("kind") == "file" or node.get("type") == "file"):
                found.append(node["bytes"])
                return
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(status)
    return sum(found) if found else None


def stop(proc, grace_s=30.0):
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--tool-log", required=True)
    p.add_argument("--ready-line")
    p.add_argument("--status-command", help="a command printing the follower's status as JSON (shell words)")
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
    writer = None
    try:
        deadline = time.monotonic() + 60
        while args.ready_line:
            if tool.poll() is not None:
                raise SystemExit(f"watch_ingest: the follower exited with {tool.returncode} before it was ready")
            with open(args.tool_log, "rb") as f:
                if args.ready_line.encode() in f.read():
                    break
            if time.monotonic() > deadline:
                raise SystemExit("watch_ingest: the follower never said it was ready")
            time.sleep(0.01)
        pid = tool.pid  # `ip netns exec` execs the command: same process
        status_cmd = shlex.split(args.status_command) if args.status_command else None
        base_size = os.path.getsize(args.log)
        base_rchar = rchar(pid)
        base_status = None
        if status_cmd:
            try:
                base_status = file_source_bytes(json.loads(subprocess.run(status_cmd, capture_output=True, check=True, timeout=5).stdout), args.log)
            except (subprocess.SubprocessError, ValueError):
                base_status = None
        source = "hikeshi status --json (file source bytes)" if base_status is not None else "/proc/PID/io rchar"

        def read_bytes():
            if base_status is not None:
                got = subprocess.run(status_cmd, capture_output=True, check=True, timeout=5).stdout
                value = file_source_bytes(json.loads(got), args.log)
                if value is not None:
                    return value - base_status
            return rchar(pid) - base_rchar

        writer = subprocess.Popen(shlex.split(args.writer), stdout=subprocess.PIPE, start_new_session=True)
        started = time.monotonic()
        writer_done = []
        threading.Thread(target=lambda: (writer.wait(), writer_done.append(time.monotonic() - started)), daemon=True).start()
        samples = []
        writer_end = None
        next_sample = started + 1.0
        while True:
            # Every second while the writer runs, then every 100 ms until
            # the follower has caught up.
            while time.monotonic() < next_sample and not (writer_end is None and writer_done):
                time.sleep(min(0.05, max(0.0, next_sample - time.monotonic())))
            next_sample += 1.0 if writer_end is None else 0.1
            if tool.poll() is not None:
                raise SystemExit(f"watch_ingest: the follower exited with {tool.returncode} during the run")
            t = time.monotonic() - started
            written = os.path.getsize(args.log) - base_size
            read = read_bytes()
            samples.append(
                {
                    "t": round(t, 3),
                    "written": written,
                    "read": read,
                    "lag_bytes": max(0, written - read),
                    "rss_kib": rss_kib(pid),
                    "cpu_s": cpu_seconds(pid),
                    "writing": writer_end is None,
                }
            )
            if writer_end is None and writer_done:
                writer_end = writer_done[0]
                next_sample = time.monotonic() + 0.1
            if writer_end is not None and (written - read <= 0 or t - writer_end > args.drain_timeout):
                break
        summary = json.loads(writer.stdout.read() or b"{}")
        if writer.returncode != 0:
            raise SystemExit(f"watch_ingest: the writer failed ({writer.returncode})")
        drained = samples[-1]["lag_bytes"] <= 0
        drain_s = samples[-1]["t"] - writer_end if drained else None
        exit_status = stop(tool)
    finally:
        if writer is not None and writer.poll() is None:
            stop(writer)
        if tool.poll() is None:
            stop(tool)

    bytes_per_line = summary["bytes"] / summary["lines"]
    bytes_per_s = args.rate * bytes_per_line
    writing = [s for s in samples if s["writing"]]
    max_lag = max(s["lag_bytes"] for s in samples)
    first = [s["rss_kib"] for s in writing[:10]]
    last = [s["rss_kib"] for s in writing[-10:]]
    rss_first = sum(first) / len(first)
    rss_last = sum(last) / len(last)
    lag_ok = max_lag <= args.max_lag_seconds * bytes_per_s and drained
    rss_ok = rss_last <= rss_first * (1 + args.rss_tolerance)
    cpu = samples[-1]["cpu_s"] - samples[0]["cpu_s"]
    result = {
        "rate_asked": args.rate,
        "writer": summary,
        "rate_achieved": summary["lines"] / summary["seconds"],
        "read_measured_by": source,
        "max_lag_bytes": max_lag,
        "max_lag_lines": round(max_lag / bytes_per_line),
        "max_lag_seconds": max_lag / bytes_per_s,
        "drained": drained,
        "drain_seconds_after_writer": drain_s,
        "rss_first10_kib": rss_first,
        "rss_last10_kib": rss_last,
        "rss_max_kib": max(s["rss_kib"] for s in samples),
        "cpu_seconds": cpu,
        "follower_exit": exit_status,
        "lag_bounded": lag_ok,
        "rss_flat": rss_ok,
        "loadavg_end": os.getloadavg(),
        "samples": samples,
    }
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    print(f"writer: {summary['lines']} lines, {summary['bytes'] / 1e6:.0f} MB in {summary['seconds']:.1f} s "
          f"({result['rate_achieved']:.0f} lines/s; {summary['late_ticks']} of {summary['ticks']} ticks late)")
    print(f"{'t s':>5} {'written MB':>11} {'lag KB':>9} {'lag ms':>8} {'RSS MiB':>8} {'CPU s':>6}")
    for s in samples:
        print(f"{s['t']:5.0f} {s['written'] / 1e6:11.1f} {s['lag_bytes'] / 1e3:9.1f} "
              f"{s['lag_bytes'] / bytes_per_s * 1e3:8.1f} {s['rss_kib'] / 1024:8.1f} {s['cpu_s']:6.1f}")
    print(f"read measured by: {source}")
    print(f"lag: max {max_lag / 1e3:.0f} KB = {result['max_lag_lines']} lines = {result['max_lag_seconds'] * 1e3:.0f} ms of input; "
          + (f"all read {drain_s:.1f} s after the writer stopped" if drained else f"NOT drained {args.drain_timeout} s after the writer stopped"))
    print(f"RSS: {rss_first / 1024:.1f} MiB (mean of the first 10 s) -> {rss_last / 1024:.1f} MiB (last 10 s), max {result['rss_max_kib'] / 1024:.1f} MiB")
    print(f"CPU: {cpu:.1f} s for {summary['seconds']:.0f} s of input ({cpu / summary['seconds'] * 100:.0f}% of one core)")
    print(f"follower exit status after SIGTERM: {exit_status}")
    print(f"RESULT: lag {'BOUNDED' if lag_ok else 'NOT BOUNDED'} (<= {args.max_lag_seconds} s of input, drained), "
          f"RSS {'FLAT' if rss_ok else 'GROWING'} (last 10 s <= first 10 s + {args.rss_tolerance:.0%})")
    return 0 if lag_ok and rss_ok and exit_status == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
