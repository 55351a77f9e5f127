#!/usr/bin/python3
"""Ban latency of log followers, measured with `nft monitor`.

Driven by bench/ban-latency.sh, which creates a network namespace per tool
and writes the tool's configuration. Two subcommands:

  run    --spec TOOL.json [--spec ...] --out-dir DIR [options]
         For each tool: starts `nft monitor new elements` in its namespace
         (and checks it sees a probe element), starts the tool there (in
         its own session, so a tool that kills its process group cannot
         kill us), and warms it up. Then, for each of --attacks distinct
         attacker addresses, and for every tool in turn (the order rotates
         each round; one tool is busy at a time, so all meet the same
         machine), appends the --failures sshd lines of one brute-force
         attack to the tool's log (one write() per line, like a syslog
         daemon), takes the monotonic time just before the write() of the
         last (triggering) line, and waits for an `add element` event
         naming the address. Latency = time the event was read from the
         monitor - time of the triggering write(), both CLOCK_MONOTONIC in
         ns. Stops the tools and writes DIR/<tool>.json.
  report --out-dir DIR JSON...
         Prints one table (p50, p90, p99, max, banned/attacked per tool,
         p99 ratios against sshguard) and writes DIR/ban-latency.json and
         DIR/ban-latency.csv (one row per attack).

Addresses are 10.64.0.0/16 (only data here: set elements inside the
namespace; no packet is sent). Timestamps in the lines are the current local
time, classic syslog format, as rsyslog writes /var/log/auth.log.
"""

import argparse
import csv
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

PROBE_TABLE = "hkbenchprobe"
PROBE_ADDR = "192.0.2.254"
ADDR_RE = re.compile(r"(?<![\d.])(\d{1,3}(?:\.\d{1,3}){3})(?![\d.])")


def attacker(i):
    """The i-th attacker address: 10.64.0.1, 10.64.0.2, ... (250 per /24)."""
    return f"10.64.{i // 250}.{i % 250 + 1}"


def failure_line(addr, pid, port):
    stamp = time.strftime("%b %e %H:%M:%S")
    return (
        f"{stamp} bench sshd[{pid}]: Failed password for invalid user admin "
        f"from {addr} port {port} ssh2\n"
    ).encode()


class Monitor:
    """`nft monitor new elements` in a namespace; the first time each
    address appeared in an `add element` event, in monotonic ns."""

    def __init__(self, ns):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "nft", "monitor", "new", "elements"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.seen = {}
        self.events = 0
        self.cond = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for raw in self.proc.stdout:
            now = time.monotonic_ns()
            line = raw.decode(errors="replace")
            if not line.startswith("add element"):
                continue
            body = line[line.find("{") :]
            with self.cond:
                self.events += 1
                for addr in ADDR_RE.findall(body):
                    self.seen.setdefault(addr, now)
                self.cond.notify_all()

    def wait_for(self, addr, timeout_s):
        with self.cond:
            self.cond.wait_for(lambda: addr in self.seen, timeout_s)
            return self.seen.get(addr)

    def stop(self):
        stop_process(self.proc)


def stop_process(proc, grace_s=10.0):
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def nft_in(ns, script):
    subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=script.encode(), check=True)


def check_monitor(ns, monitor):
    """The monitor is subscribed once it reports a probe element."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        nft_in(
            ns,
            f"add table inet {PROBE_TABLE}\n"
            f"add set inet {PROBE_TABLE} s {{ type ipv4_addr; }}\n"
            f"add element inet {PROBE_TABLE} s {{ {PROBE_ADDR} }}\n",
        )
        got = monitor.wait_for(PROBE_ADDR, 0.5)
        nft_in(ns, f"delete table inet {PROBE_TABLE}\n")
        if got is not None:
            with monitor.cond:
                del monitor.seen[PROBE_ADDR]
            return
    raise SystemExit("ban_latency: nft monitor never reported the probe element")


def wait_ready_line(path, text, proc, timeout_s):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"ban_latency: the tool exited with {proc.returncode} before it was ready")
        try:
            with open(path, "rb") as f:
                if text.encode() in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.01)
    raise SystemExit(f"ban_latency: no {text!r} in {path} after {timeout_s} s")


class Attacker:
    """Appends attacks to the log, one write() per line."""

    def __init__(self, log, failures, line_gap_s, settle_s):
        self.fd = os.open(log, os.O_WRONLY | os.O_APPEND)
        self.failures = failures
        self.line_gap_s = line_gap_s
        self.settle_s = settle_s
        self.pid = 20000
        self.port = 30000

    def attack(self, addr):
        """Writes the failures; returns the monotonic ns just before the
        write() of the last one (the line that should trigger the ban)."""
        for n in range(self.failures):
            self.pid = 20000 + (self.pid - 19999) % 40000
            self.port = 30000 + (self.port - 29999) % 30000
            line = failure_line(addr, self.pid, self.port)
            if n == self.failures - 1:
                time.sleep(self.settle_s)
                started = time.monotonic_ns()
                os.write(self.fd, line)
                return started
            os.write(self.fd, line)
            time.sleep(self.line_gap_s)
        raise AssertionError("failures >= 1")


class Tool:
    """One tool under test: its namespace, monitor, log and process."""

    def __init__(self, spec, args):
        self.name = spec["tool"]
        self.spec = spec
        self.monitor = Monitor(spec["ns"])
        self.proc = None
        self.attacker = None
        self.samples = []
        self.index = 0

    def start(self, args):
        check_monitor(self.spec["ns"], self.monitor)
        out = open(self.spec["tool_log"], "wb")
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", self.spec["ns"]] + self.spec["command"],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        if self.spec.get("ready_line"):
            wait_ready_line(self.spec["tool_log"], self.spec["ready_line"], self.proc, 60)
        self.attacker = Attacker(self.spec["log"], args.failures, args.line_gap_ms / 1000, args.settle_ms / 1000)

    def next_addr(self):
        addr = attacker(self.index)
        self.index += 1
        return addr

    def warm_up(self, args):
        """Attacks until the first ban shows (the tool may still be opening
        the file), then args.warmup more; none of them is measured."""
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise SystemExit(f"ban_latency: {self.name} exited with {self.proc.returncode}")
            addr = self.next_addr()
            self.attacker.attack(addr)
            if self.monitor.wait_for(addr, 2.0) is not None:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"ban_latency: {self.name} banned nothing within 60 s")
        for _ in range(args.warmup):
            addr = self.next_addr()
            self.attacker.attack(addr)
            self.monitor.wait_for(addr, args.timeout)

    def measure_one(self, args):
        addr = self.next_addr()
        written = self.attacker.attack(addr)
        seen = self.monitor.wait_for(addr, args.timeout)
        self.samples.append(
            {"addr": addr, "written_ns": written, "latency_ns": None if seen is None else seen - written}
        )
        time.sleep(args.pause_ms / 1000)

    def stop(self):
        if self.proc is not None:
            stop_process(self.proc)
        self.monitor.stop()


def run(args):
    specs = []
    for path in args.spec:
        with open(path) as f:
            specs.append(json.load(f))
    tools = []
    try:
        for spec in specs:
            tool = Tool(spec, args)
            tools.append(tool)
            tool.start(args)
        for tool in tools:
            tool.warm_up(args)
        load_before = os.getloadavg()
        # Interleaved: attack i goes to every tool in turn (one tool busy at
        # a time), in an order that rotates every round, so that all tools
        # meet the same machine (load from other programs comes and goes)
        # and none always follows another.
        for i in range(args.attacks):
            for k in range(len(tools)):
                tools[(i + k) % len(tools)].measure_one(args)
        load_after = os.getloadavg()
        alive = {t.name: t.proc.poll() is None for t in tools}
    finally:
        for tool in tools:
            tool.stop()
    for tool in tools:
        result = {
            "tool": tool.name,
            "failures_per_attack": args.failures,
            "attacks": args.attacks,
            "tool_alive_at_end": alive[tool.name],
            "loadavg_before": load_before,
            "loadavg_after": load_after,
            "samples": tool.samples,
        }
        with open(os.path.join(args.out_dir, f"{tool.name}.json"), "w") as f:
            json.dump(result, f)
        lat = sorted(s["latency_ns"] for s in tool.samples if s["latency_ns"] is not None)
        print(
            f"  {tool.name}: {len(lat)}/{len(tool.samples)} banned, "
            f"median {lat[len(lat) // 2] / 1e6 if lat else float('nan'):.2f} ms",
            file=sys.stderr,
        )


def percentile(values, p):
    """Nearest rank; None (not banned) sorts last, as an infinite latency."""
    if not values:
        return None
    ordered = sorted(values, key=lambda v: float("inf") if v is None else v)
    rank = max(1, -(-len(ordered) * p // 100))  # ceil(n * p / 100)
    return ordered[int(rank) - 1]


def to_ms(ns):
    return None if ns is None else ns / 1e6


def report(args):
    results = []
    for path in args.results:
        with open(path) as f:
            results.append(json.load(f))
    summary = []
    for r in results:
        values = [s["latency_ns"] for s in r["samples"]]
        banned = [v for v in values if v is not None]
        summary.append(
            {
                "tool": r["tool"],
                "attacked": len(values),
                "banned": len(banned),
                "early": sum(1 for v in banned if v < 0),
                "p50_ms": to_ms(percentile(values, 50)),
                "p90_ms": to_ms(percentile(values, 90)),
                "p99_ms": to_ms(percentile(values, 99)),
                "max_ms": None if len(banned) < len(values) or not banned else max(banned) / 1e6,
                "failures_per_attack": r["failures_per_attack"],
                "loadavg_before": r["loadavg_before"],
                "loadavg_after": r["loadavg_after"],
                "tool_alive_at_end": r["tool_alive_at_end"],
            }
        )
    by_tool = {s["tool"]: s for s in summary}
    base = by_tool.get("sshguard")

    def fmt(v):
        return "timeout" if v is None else f"{v:.2f}"

    print(
        f"ban latency: last failure line write() -> element in `nft monitor`, "
        f"{summary[0]['failures_per_attack'] if summary else '?'} failures per attack"
    )
    print(f"{'tool':10} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'max ms':>9} {'banned':>11} {'p99/sshguard':>13}  load avg (1m) before/after")
    for s in summary:
        ratio = ""
        if base and s["p99_ms"] is not None and base["p99_ms"]:
            ratio = f"{s['p99_ms'] / base['p99_ms']:.2f}"
            s["p99_ratio_to_sshguard"] = round(s["p99_ms"] / base["p99_ms"], 3)
        print(
            f"{s['tool']:10} {fmt(s['p50_ms']):>9} {fmt(s['p90_ms']):>9} {fmt(s['p99_ms']):>9} "
            f"{fmt(s['max_ms']):>9} {str(s['banned']) + '/' + str(s['attacked']):>11} {ratio:>13}"
            f"  {s['loadavg_before'][0]:.2f}/{s['loadavg_after'][0]:.2f}"
        )
        if s["early"]:
            print(f"  warning: {s['tool']} banned {s['early']} addresses before their last failure line")
    # The machine may be shared: p99 per quarter of the run shows whether
    # a tail comes from one busy stretch (all tools meet the same stretches).
    print("p99 ms per quarter of the run (attacks in order):")
    for r in results:
        values = [s["latency_ns"] for s in r["samples"]]
        n = len(values)
        quarters = [values[n * q // 4 : n * (q + 1) // 4] for q in range(4)]
        p99s = [to_ms(percentile(q, 99)) for q in quarters]
        by_tool[r["tool"]]["p99_ms_per_quarter"] = p99s
        print(f"  {r['tool']:10} " + "  ".join(fmt(v) for v in p99s))
    verdict = None
    hk = by_tool.get("hikeshi")
    if hk and base:
        verdict = hk["p99_ms"] is not None and base["p99_ms"] is not None and hk["p99_ms"] <= base["p99_ms"]
        print(f"RESULT: {'PASS' if verdict else 'FAIL'} (target: hikeshi p99 <= sshguard p99)")
    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "ban-latency.json"), "w") as f:
        json.dump({"summary": summary, "pass": verdict}, f, indent=2)
    with open(os.path.join(args.out_dir, "ban-latency.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["tool", "attack", "address", "latency_ms"])
        for r in results:
            for i, s in enumerate(r["samples"]):
                lat = "" if s["latency_ns"] is None else f"{s['latency_ns'] / 1e6:.3f}"
                w.writerow([r["tool"], i, s["addr"], lat])
    return 0 if verdict in (None, True) else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--spec", action="append", required=True,
                   help="JSON file: tool, ns, log, tool_log, ready_line (optional), command (list); repeat per tool")
    r.add_argument("--out-dir", required=True, help="where <tool>.json results go")
    r.add_argument("--attacks", type=int, default=1000)
    r.add_argument("--failures", type=int, default=5)
    r.add_argument("--warmup", type=int, default=20)
    r.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for a ban")
    r.add_argument("--line-gap-ms", type=float, default=1.0, help="between the failure lines of an attack")
    r.add_argument("--settle-ms", type=float, default=10.0, help="before the triggering line")
    r.add_argument("--pause-ms", type=float, default=5.0, help="after a ban, before the next attack")
    p = sub.add_parser("report")
    p.add_argument("--out-dir", required=True)
    p.add_argument("results", nargs="+")
    args = parser.parse_args()
    # bench/ban-latency.sh's cleanup sends SIGTERM: stop the tool and the
    # monitor on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.cmd == "run":
        run(args)
        return 0
    return report(args)


if __name__ == "__main__":
    sys.exit(main())
