"""Shared benchmark plumbing: start a hub process, read its CPU and memory, latency histograms."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from hub.gctune import GC_LINE
from hub.runtime import READY, listener_urls

BENCH_CONFIG = """
[hub]
log_level = "info"
max_queue_bytes = {queue}

[projects.bench]
secret = "bench-secret"
api_keys = ["bench-api-key"]
presence = false
join_leave = false

[projects.bench.namespaces.bench]
publish = true
anonymous = true
presence = false
join_leave = false
"""

CLK_TCK = os.sysconf("SC_CLK_TCK")
DASHBOARD_PASSWORD = "bench dashboard password"


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds used so far by process `pid` (children not included)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def sys_cpu_seconds(pid: int) -> float:
    """The kernel's share of `cpu_seconds` (system CPU seconds: syscalls such as socket writes)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / CLK_TCK


def rss_kib(pid: int, key: str = "VmRSS") -> int:
    """Current (VmRSS) or peak (VmHWM) resident memory of `pid` in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


@dataclass
class HubProcess:
    """A `hub run` subprocess on ephemeral ports, with its listener URLs by adapter title."""

    proc: subprocess.Popen
    urls: dict[str, str]
    workdir: tempfile.TemporaryDirectory
    log: list[str] = field(default_factory=list)
    pages: subprocess.Popen | None = None  # dashboard pages held open (BENCH_DASHBOARD=1)
    profiler: subprocess.Popen | None = None  # py-spy recording the hub (BENCH_PROFILE=<file>.svg|.txt)
    gc: dict | None = None  # the hub's collector pauses (hub/gctune.py), read from its log when it stops
    gc_pauses: list | None = None  # its last pauses, [unix time, generation, wall ms] each (see `gc_between`)
    _drain: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int:
        stop_profiler(self.profiler)
        if self.pages is not None:
            self.pages.terminate()
            self.pages.wait(10)
        self.proc.terminate()
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()
        finally:
            if self._drain is not None:
                self._drain.join(5)
            self.gc = gc_summary(self.log)
            self.gc_pauses = gc_pauses(self.log)
            self.workdir.cleanup()


def start_hub(extra: str = "", queue: int = 4 << 20, adapters: tuple[str, ...] = ("realtime", "command_api"),
              adapter_settings: dict[str, str] | None = None) -> HubProcess:
    """Start `python -m hub run` with the bench config; wait until it logs that it is ready.

    `adapter_settings` adds TOML lines to an adapter's section (e.g. {"chat": 'channel_prefix = "bench:chat."'}).
    """
    workdir = tempfile.TemporaryDirectory(prefix="hub-bench-")
    from hub.adapters import adapter_registry

    text = BENCH_CONFIG.format(queue=queue)
    dashboard = bool(os.environ.get("BENCH_DASHBOARD")) and "dashboard" in adapter_registry()
    if dashboard:  # BENCH_DASHBOARD=1: the same run with dashboard pages open (bench/dashboard_pages.py)
        adapters = (*adapters, "dashboard")
        adapter_settings = {**(adapter_settings or {}), "dashboard": f'password = "{DASHBOARD_PASSWORD}"'}
    for name in adapter_registry():
        # room for the 10,000-connection scenarios plus the publishers on a shared listener
        text += f"\n[{name}]\nport = 0\nenabled = {'true' if name in adapters else 'false'}\nmax_connections = 30000\n"
        if name == "realtime":
            text += "ping_interval = 0\n"
            if "command_rate_limit" not in (adapter_settings or {}).get(name, ""):
                # The benches' publishers send thousands of commands a second on one connection: a load
                # generator, not a client the per-connection command rate is for (bench.security measures it).
                text += "command_rate_limit = 0\n"
        if adapter_settings and name in adapter_settings:
            text += adapter_settings[name].rstrip("\n") + "\n"
    text += extra
    cfg = Path(workdir.name) / "hub.toml"
    cfg.write_text(text)
    # HUB_GC_PAUSES: the hub also reports its last pauses with their times, for `gc_between`
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(cfg)], cwd=workdir.name,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "HUB_GC_PAUSES": "4096"})
    hub = HubProcess(proc, {}, workdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        hub.log.append(line)
        hub.urls.update(listener_urls(line))
        if READY in line:
            break
    else:
        proc.kill()
    if READY not in "".join(hub.log):
        raise RuntimeError("hub did not start:\n" + "".join(hub.log))
    # Keep draining stderr so the hub never blocks on a full pipe (keeping the GC pause report it logs at exit).
    def drain() -> None:
        for line in proc.stderr:
            if GC_LINE in line:
                hub.log.append(line)

    hub._drain = threading.Thread(target=drain, daemon=True)
    hub._drain.start()
    if dashboard:
        hub.pages = subprocess.Popen([sys.executable, "-m", "bench.dashboard_pages", "--url", hub.urls["dashboard"],
                                      "--password", DASHBOARD_PASSWORD], stdout=subprocess.PIPE, text=True)
        if hub.pages.stdout.readline().strip() != "ready":
            hub.stop()
            raise RuntimeError("dashboard pages did not open")
    return hub


def gc_summary(lines: list[str]) -> dict | None:
    """The hub's GC pause report (hub/gctune.py) from its log lines, condensed: collections, total and max ms
    per generation and the pause histogram summed over generations."""
    import json

    for line in reversed(lines):
        if GC_LINE in line:
            data = json.loads(line.split(GC_LINE, 1)[1])
            gens = data["generations"]
            hist = [sum(g["hist"][i] for g in gens) for i in range(len(data["bins_ms"]))]
            return {"thresholds": data["thresholds"], "collections": [g["count"] for g in gens],
                    "total_ms": round(sum(g["total_ms"] for g in gens), 1),
                    "cpu_ms": round(sum(g.get("cpu_ms", 0) for g in gens), 1), "max_ms": [g["max_ms"] for g in gens],
                    "hist": {f"<={b}ms" if b != "inf" else ">100ms": n for b, n in zip(data["bins_ms"], hist, strict=True) if n}}
    return None


def gc_pauses(lines: list[str]) -> list | None:
    """The hub's last collector pauses from its log lines, [unix time, generation, wall ms] each."""
    import json

    for line in reversed(lines):
        if GC_LINE in line:
            return json.loads(line.split(GC_LINE, 1)[1]).get("pauses")
    return None


def gc_between(pauses: list | None, start: float, end: float) -> dict | None:
    """Collections per generation, longest and total wall ms of the pauses between `start` and `end` (unix
    times): a scenario's hot phase, without the pauses of connecting and disconnecting its clients."""
    if pauses is None:
        return None
    inside = [(gen, ms) for t, gen, ms in pauses if start <= t <= end]
    return {"collections": [sum(1 for g, _ in inside if g == gen) for gen in range(3)],
            "max_ms": round(max((ms for _, ms in inside), default=0.0), 1), "total_ms": round(sum(ms for _, ms in inside), 1)}


def start_profiler(pid: int) -> subprocess.Popen | None:
    """With BENCH_PROFILE=<path>.svg (a flame graph) or <path>.txt (collapsed stacks), py-spy samples `pid` until
    `stop_profiler`: a worker calls this when its load starts, so the graph is the hot phase (`make profile`)."""
    out = os.environ.get("BENCH_PROFILE")
    if not out:
        return None
    import shutil

    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    fmt = "raw" if out.endswith(".txt") else "flamegraph"
    rate = os.environ.get("BENCH_PROFILE_RATE", "250")  # samples per second
    proc = subprocess.Popen([spy, "record", "-p", str(pid), "-o", out, "-f", fmt, "-r", rate, "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(0.5)  # py-spy attaches before the load starts
    return proc


def stop_profiler(proc: subprocess.Popen | None) -> None:
    """Stop py-spy (SIGINT: it writes its output and exits)."""
    if proc is None or proc.poll() is not None:
        return
    import signal

    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class LatencyHistogram:
    """Log-spaced bins (2% wide) from 10 µs to 100 s: mergeable across processes, small to ship."""

    BASE = 1e-5
    RATIO = 1.02

    def __init__(self, counts: dict[int, int] | None = None) -> None:
        self.counts: dict[int, int] = dict(counts or {})
        self.max = 0.0

    def add(self, seconds: float) -> None:
        if seconds > self.max:
            self.max = seconds
        b = 0 if seconds <= self.BASE else int(math.log(seconds / self.BASE, self.RATIO)) + 1
        self.counts[b] = self.counts.get(b, 0) + 1

    def merge(self, counts: dict, maximum: float) -> None:
        for b, n in counts.items():
            self.counts[int(b)] = self.counts.get(int(b), 0) + n
        self.max = max(self.max, maximum)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def percentile(self, p: float) -> float:
        total = self.total
        if not total:
            return 0.0
        rank = p / 100 * total
        seen = 0
        for b in sorted(self.counts):
            seen += self.counts[b]
            if seen >= rank:
                return self.BASE * self.RATIO ** b
        return self.max
