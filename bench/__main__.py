"""The benchmark harness: every scenario against a hub it starts itself and against the peers, side by side.

    python -m bench                          # the whole suite (what `make bench` runs), < 10 minutes
    python -m bench burst -k 1000 -m 500     # one scenario with its parameters (all its targets)
    python -m bench rate -k 100 --targets hub,mosquitto
    python -m bench report bench/results/20250101T120000.jsonl   # rebuild summary.md and charts from a run
    python -m bench list                     # scenarios, their parameters and the suite

Every result is appended as one JSON line to bench/results/<run>.jsonl with the command that
reproduces it, its parameters and the configuration (hub bench config, peer versions, git commit).
The suite also writes bench/results/summary.md and bench/results/*.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import report

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results"
ALL_TARGETS = ("hub", "mosquitto", "websockets", "socketio", "hub-mqtt", "redis", "h11")
FANOUT_TARGETS = ("hub", "mosquitto", "websockets", "socketio", "hub-mqtt", "redis")
MQTT_TARGETS = ("hub-mqtt", "mosquitto")


@dataclass(frozen=True)
class Opt:
    """One scenario parameter: its command-line flag, type, default and help."""

    flag: str
    dest: str
    type: type
    default: Any
    help: str
    short: str = ""


@dataclass(frozen=True)
class Scenario:
    """How to run one scenario: the worker module, its targets, parameters, label and time limit."""

    name: str
    help: str
    module: str
    targets: tuple[str, ...]
    options: tuple[Opt, ...]
    worker_args: Callable[[dict[str, Any], str], list[str]]
    label: Callable[[dict[str, Any]], str]
    timeout: Callable[[dict[str, Any]], float]
    requires: str = ""  # a protocols/<name> package the scenario needs; skipped (and said so) without it
    extra: dict[str, Any] = field(default_factory=dict)


# A repeat number, only in the label: the issue20 suite runs some scenarios three times, side by side each time.
ROUND = Opt("--round", "round", int, 0, "repeat number, only in the label (the suite runs some scenarios three times)")


def _round(p: dict[str, Any]) -> str:
    return f" (round {p['round']})" if p.get("round") else ""


def _fanout_common(p: dict[str, Any], target: str) -> list[str]:
    return ["--target", target, "--size", str(p["size"]), "--procs", str(p["procs"]), "--sample", str(p["sample"])]


BURST = Scenario(
    "burst", "fan-out burst: K subscribers on one channel, M publications of ~100 bytes as fast as the publisher can",
    "bench.fanout", FANOUT_TARGETS,
    (Opt("--subscribers", "subscribers", int, 100, "K subscribers", "-k"),
     Opt("--messages", "messages", int, 2000, "M publications", "-m"),
     Opt("--size", "size", int, 100, "bytes of publication data"),
     Opt("--procs", "procs", int, 2, "subscriber processes"),
     Opt("--sample", "sample", int, 1, "latency on every Nth subscriber"),
     Opt("--coalesce-ms", "coalesce_ms", float, 5.0, "subscribers read after this pause when several sockets are ready")),
    lambda p, t: ["-k", str(p["subscribers"]), "-m", str(p["messages"]), "--coalesce-ms", str(p["coalesce_ms"]),
                  *_fanout_common(p, t)],
    lambda p: f"burst K={p['subscribers']:,} M={p['messages']:,}",
    lambda p: 120.0,
)

RATE = Scenario(
    "rate", "fixed rate: R publications/s for D seconds to K subscribers; latency percentiles and whether it kept up",
    "bench.fanout", FANOUT_TARGETS,
    (Opt("--subscribers", "subscribers", int, 100, "K subscribers", "-k"),
     Opt("--rate", "rate", float, 1000.0, "publications per second"),
     Opt("--duration", "duration", float, 5.0, "seconds of publishing"),
     Opt("--drain-limit", "drain_limit", float, 10.0, "count deliveries until this many seconds after the last publish"),
     Opt("--size", "size", int, 100, "bytes of publication data"),
     Opt("--procs", "procs", int, 2, "subscriber processes"),
     Opt("--sample", "sample", int, 1, "latency on every Nth subscriber"),
     Opt("--coalesce-ms", "coalesce_ms", float, 0.0, "subscribers read after this pause when several sockets are ready"),
     Opt("--protocol", "protocol", str, "legacy", "the hub's client protocol: legacy (Centrifuge 0.8) or sdk (Centrifugo)"),
     ROUND),
    lambda p, t: ["-k", str(p["subscribers"]), "--rate", str(p["rate"]), "--duration", str(p["duration"]),
                  "--drain-limit", str(p["drain_limit"]), "--coalesce-ms", str(p["coalesce_ms"]),
                  *(["--protocol", p["protocol"]] if t == "hub" else []), *_fanout_common(p, t)],
    lambda p: (f"rate {p['rate']:,.0f}/s × {p['duration']:g} s K={p['subscribers']:,}"
               + (f" {p['protocol']}" if p["protocol"] != "legacy" else "") + _round(p)),
    lambda p: p["duration"] + 2 * p["drain_limit"] + 90,
)

CONNECTIONS = Scenario(
    "connections", "N idle subscribed connections: server RSS per connection and connect rate",
    "bench.fanout", FANOUT_TARGETS,
    (Opt("--connections", "connections", int, 1000, "N idle connections", "-n"),
     Opt("--procs", "procs", int, 2, "client processes"),
     Opt("--inflight", "inflight", int, 16, "connections each client process opens at once"), ROUND),
    lambda p, t: ["--idle", str(p["connections"]), "--procs", str(p["procs"]), "--inflight", str(p["inflight"]),
                  "--target", t],
    lambda p: f"connections N={p['connections']:,}{_round(p)}",
    lambda p: 60 + p["connections"] / 100,
)

COMMAND_API = Scenario(
    "command_api", "signed command API: publishes/s with one or many commands per request, request latency",
    "bench.command_api", ("hub", "h11"),
    (Opt("--per-request", "per_request", int, 1, "publish commands per request"),
     Opt("--requests", "requests", int, 3000, "requests"),
     Opt("--concurrency", "concurrency", int, 8, "keep-alive connections in flight"),
     Opt("--subscribers", "subscribers", int, 10, "websocket subscribers counting every delivery"), ROUND),
    lambda p, t: ["--per-request", str(p["per_request"]), "--requests", str(p["requests"]),
                  "--concurrency", str(p["concurrency"]), "--subscribers", str(p["subscribers"]), "--target", t],
    lambda p: f"command API {p['per_request']}/request{_round(p)}",
    lambda p: 120.0,
)

CHAT = Scenario(
    "chat", "REST chat: POST /api/rooms/<id>/send → a websocket subscriber of the room's channel receives it",
    "bench.chat", ("hub",),
    (Opt("--messages", "messages", int, 500, "messages sent over REST"),
     Opt("--concurrency", "concurrency", int, 4, "senders in flight"),
     Opt("--subscribers", "subscribers", int, 10, "websocket subscribers of the room's channel")),
    lambda p, t: ["--messages", str(p["messages"]), "--concurrency", str(p["concurrency"]),
                  "--subscribers", str(p["subscribers"])],
    lambda p: "chat REST send → websocket",
    lambda p: 120.0,
    requires="chat",
)

CHAT_RC = Scenario(
    "chat_rc", "Rocket.Chat APIs: chat.postMessage and DDP sendMessage messages/s, channels.history reads/s in a big room",
    "bench.chat_rc", ("hub",),
    (Opt("--messages", "messages", int, 2000, "messages over REST, and again over DDP"),
     Opt("--concurrency", "concurrency", int, 8, "REST connections in flight"),
     Opt("--ddp-clients", "ddp_clients", int, 4, "DDP websocket clients"),
     Opt("--stored", "stored", int, 100_000, "messages in the room for the history reads"),
     Opt("--reads", "reads", int, 2000, "channels.history requests")),
    lambda p, t: ["--messages", str(p["messages"]), "--concurrency", str(p["concurrency"]), "--ddp-clients",
                  str(p["ddp_clients"]), "--stored", str(p["stored"]), "--reads", str(p["reads"])],
    lambda p: f"chat REST/DDP/history at {p['stored']:,} messages",
    lambda p: 180.0,
    requires="chat",
)

JSONRPC = Scenario(
    "jsonrpc", "JSON-RPC: POST /execute requests/s (hub.publish action) with request latency",
    "bench.jsonrpc", ("hub",),
    (Opt("--requests", "requests", int, 2000, "requests"),
     Opt("--concurrency", "concurrency", int, 8, "keep-alive connections in flight"),
     Opt("--subscribers", "subscribers", int, 10, "websocket subscribers counting every publication")),
    lambda p, t: ["--requests", str(p["requests"]), "--concurrency", str(p["concurrency"]),
                  "--subscribers", str(p["subscribers"])],
    lambda p: "JSON-RPC /execute",
    lambda p: 120.0,
    requires="jsonrpc",
)

TOPICS = Scenario(
    "topics", "MQTT many topics: K subscribers spread over T topics (or bench/<n>/# filters), M publications round-robin",
    "bench.fanout", MQTT_TARGETS,
    (Opt("--subscribers", "subscribers", int, 1000, "K subscribers", "-k"),
     Opt("--topics", "topics", int, 100, "T topics"),
     Opt("--messages", "messages", int, 20000, "M publications (a multiple of T)", "-m"),
     Opt("--wildcard", "wildcard", int, 0, "1: subscribers use bench/<n>/# filters instead of the topic"),
     Opt("--size", "size", int, 100, "bytes of publication data"),
     Opt("--procs", "procs", int, 2, "subscriber processes"),
     Opt("--sample", "sample", int, 10, "latency on every Nth subscriber"),
     Opt("--coalesce-ms", "coalesce_ms", float, 5.0, "subscribers read after this pause when several sockets are ready")),
    lambda p, t: ["-k", str(p["subscribers"]), "-m", str(p["messages"]), "--topics", str(p["topics"]),
                  *(["--wildcard"] if p["wildcard"] else []), "--coalesce-ms", str(p["coalesce_ms"]), *_fanout_common(p, t)],
    lambda p: f"topics K={p['subscribers']:,} T={p['topics']:,}{' wildcard' if p['wildcard'] else ''} M={p['messages']:,}",
    lambda p: 120.0,
    requires="mqtt",
)

CHANNELS = Scenario(
    "channels", "many channels: N subscribers on a channel each, M publications round-robin (hub: signed API, 100 per request)",
    "bench.channels", ("hub", "mosquitto", "redis"),
    (Opt("--subscribers", "subscribers", int, 10_000, "N subscribers = channels", "-n"),
     Opt("--messages", "messages", int, 100_000, "M publications", "-m"),
     Opt("--per-request", "per_request", int, 100, "hub: publish commands per API request"), ROUND),
    lambda p, t: ["-n", str(p["subscribers"]), "-m", str(p["messages"]), "--per-request", str(p["per_request"]), "--target", t],
    lambda p: f"channels N={p['subscribers']:,} M={p['messages']:,}{_round(p)}",
    lambda p: 150.0,
)

SCENARIOS = {s.name: s for s in (BURST, RATE, CONNECTIONS, COMMAND_API, CHAT, CHAT_RC, JSONRPC, TOPICS, CHANNELS)}

# The suite `make bench` runs: bounded so that it finishes in well under 10 minutes on 2 cores.
SUITE: list[tuple[str, dict[str, Any]]] = [
    ("burst", {"subscribers": 100, "messages": 2000}),
    ("burst", {"subscribers": 1000, "messages": 500, "sample": 10}),
    ("rate", {"subscribers": 100}),
    # At K=1,000 the subscribers pause 5 ms before reading when several sockets are ready: without it,
    # servers that write each message separately make them the bottleneck (latency resolution: 5 ms).
    ("rate", {"subscribers": 1000, "sample": 10, "coalesce_ms": 5.0}),
    ("command_api", {"per_request": 1, "requests": 3000}),  # hub and the bare h11 baseline
    # the hub alone: a bare h11 "hello" server does nothing per publish, so at 100 per request no ratio means anything
    ("command_api", {"per_request": 100, "requests": 300, "subscribers": 100, "_targets": ("hub",)}),
    ("chat", {}),
    ("chat_rc", {}),
    ("jsonrpc", {}),
    # MQTT: the hub's listener and Mosquitto with the same raw MQTT 3.1.1 QoS 0 clients (burst and rate above run
    # against hub-mqtt too); many topics, exact and wildcard subscriptions.
    ("topics", {"subscribers": 1000, "topics": 100}),
    ("topics", {"subscribers": 1000, "topics": 100, "wildcard": 1}),
    ("connections", {"connections": 1000}),
    ("connections", {"connections": 10000}),
    # issue 20: many channels (hub, Mosquitto, Redis); the hub's p99 at 1,000/s to 1,000 three times, both protocols
    ("channels", {}),
    ("rate", {"subscribers": 1000, "sample": 10, "coalesce_ms": 5.0, "round": 2, "_targets": ("hub",)}),
    ("rate", {"subscribers": 1000, "sample": 10, "coalesce_ms": 5.0, "round": 3, "_targets": ("hub",)}),
    ("rate", {"subscribers": 1000, "sample": 10, "coalesce_ms": 5.0, "protocol": "sdk", "_targets": ("hub",)}),
    ("rate", {"subscribers": 1000, "sample": 10, "coalesce_ms": 5.0, "protocol": "sdk", "round": 2, "_targets": ("hub",)}),
    ("rate", {"subscribers": 1000, "sample": 10, "coalesce_ms": 5.0, "protocol": "sdk", "round": 3, "_targets": ("hub",)}),
]

# `python -m bench issue20`: the workloads of issue 20 only (many channels, tail latency, memory and connects per
# connection, the command API against a bare h11 server, burst), hub and peers side by side; the ratio targets and
# the hub's p99 three rounds each (this machine's neighbours move single runs by ±20%); about 5 minutes.
_RATE_1000 = {"subscribers": 1000, "sample": 10, "coalesce_ms": 5.0}
ISSUE20: list[tuple[str, dict[str, Any]]] = [
    ("channels", {}),
    ("rate", {**_RATE_1000, "_targets": ("hub", "mosquitto", "redis")}),
    ("rate", {**_RATE_1000, "protocol": "sdk", "_targets": ("hub",)}),
    ("burst", {"subscribers": 1000, "messages": 500, "sample": 10, "_targets": ("hub", "mosquitto", "redis")}),
    ("connections", {"connections": 10000, "_targets": ("hub", "mosquitto", "redis")}),
    ("command_api", {"per_request": 1, "requests": 3000}),
] + [entry for n in (2, 3) for entry in (
    ("channels", {"round": n, "_targets": ("hub", "mosquitto")}),
    ("rate", {**_RATE_1000, "round": n, "_targets": ("hub",)}),
    ("rate", {**_RATE_1000, "protocol": "sdk", "round": n, "_targets": ("hub",)}),
    ("connections", {"connections": 10000, "round": n, "_targets": ("hub", "mosquitto")}),
    ("command_api", {"per_request": 1, "requests": 3000, "round": n}),
)]


def suite_jobs(suite: list[tuple[str, dict[str, Any]]], targets: list[str]) -> list[Job]:
    """The jobs of a suite: each entry on its scenario's targets (or its own `_targets`) that are in `targets`."""
    jobs = []
    for name, given in suite:
        given = dict(given)
        only = given.pop("_targets", None)
        sc = SCENARIOS[name]
        jobs += [Job(sc, params_for(sc, given), t) for t in sc.targets if t in targets and (only is None or t in only)]
    return jobs


def params_for(scenario: Scenario, given: dict[str, Any]) -> dict[str, Any]:
    """The scenario's defaults overridden by `given` (unknown keys are an error)."""
    known = {o.dest: o.default for o in scenario.options}
    unknown = set(given) - set(known)
    if unknown:
        raise ValueError(f"{scenario.name}: unknown parameters {sorted(unknown)}")
    return {**known, **given}


def command_line(scenario: Scenario, params: dict[str, Any], target: str) -> str:
    """The `python -m bench ...` command that reproduces one result."""
    parts = ["python", "-m", "bench", scenario.name]
    for o in scenario.options:
        parts += [o.flag, str(params[o.dest])]
    parts += ["--targets", target]
    return shlex.join(parts)


@dataclass
class Job:
    scenario: Scenario
    params: dict[str, Any]
    target: str

    @property
    def label(self) -> str:
        return self.scenario.label(self.params)

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", self.scenario.module, *self.scenario.worker_args(self.params, self.target)]


# -- environment recorded with every result ------------------------------------------------------

def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def run_config() -> dict[str, Any]:
    """What a rerun needs to know: versions, machine, the hub's bench config, the commit."""
    from .common import BENCH_CONFIG
    from .peers import peer_versions

    return {
        "python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
        # Dirty: the code differs from the commit (earlier runs' results, rewritten by a run, do not count).
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results")),
        "peers": peer_versions(), "hub_bench_config": BENCH_CONFIG.format(queue=4 << 20).strip(),
        "loadavg": os.getloadavg()[0],
    }


def adapter_available(name: str) -> bool:
    return (ROOT / "protocols" / name / "__init__.py").exists()


# -- progress on stderr --------------------------------------------------------------------------

class Progress:
    """A one-line text progress bar on stderr; redrawn every second on a terminal, one line per step otherwise."""

    def __init__(self, total: int, stream: Any = None) -> None:
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.started = time.monotonic()
        self.current = ""
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._stop = threading.Event()
        if self.tty:
            threading.Thread(target=self._tick, daemon=True).start()

    def bar(self) -> str:
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        el = int(time.monotonic() - self.started)
        return f"[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} {el // 60}:{el % 60:02d}"

    def _draw(self, text: str, end: str = "") -> None:
        line = f"{self.bar()}  {text}"
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:160] + end)
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _tick(self) -> None:
        while not self._stop.wait(1.0):
            if self.current:
                self._draw(self.current)

    def start(self, text: str) -> None:
        self.current = f"▶ {text}"
        self._draw(self.current)

    def finish(self, text: str, ok: bool = True) -> None:
        self.done += 1
        self.current = ""
        self._draw(f"{'✓' if ok else '✗'} {text}", end="\n")

    def close(self) -> None:
        self._stop.set()


# -- running jobs ------------------------------------------------------------------------------------

def run_job(job: Job, log: Any, timeout: float) -> tuple[dict[str, Any] | None, str | None, float]:
    """Run one worker in its own process group; (its JSON result, an error, wall seconds). Killed at `timeout`."""
    started = time.monotonic()
    proc = subprocess.Popen(job.argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        log.write(f"== {shlex.join(job.argv)} (killed after {timeout:.0f} s)\n{err[-4000:]}\n")
        return None, f"timed out after {timeout:.0f} s", time.monotonic() - started
    wall = time.monotonic() - started
    log.write(f"== {shlex.join(job.argv)} (exit {proc.returncode}, {wall:.1f} s)\n{err[-4000:]}\n")
    log.flush()
    for line in reversed(out.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line), None, wall
            except ValueError:
                break
    tail = [ln for ln in err.strip().splitlines() if ln.strip()][-1:] or [f"exit {proc.returncode}, no result"]
    return None, tail[0][:300], wall


def short(result: dict[str, Any] | None, error: str | None, scenario: str) -> str:
    if result is None:
        return f"not run: {error}"
    key, unit = report.THROUGHPUT.get(scenario, ("", ""))
    text = f"{result.get(key, 0):,} {unit}"
    lat = result.get("latency_ms")
    if lat:
        text += f", p99 {lat['p99']} ms"
    if scenario == "connections":
        text += f", {result.get('rss_per_conn_kib')} KiB/conn"
    if result.get("lost"):
        text += f", {result['lost']:,} undelivered"
    return text


def run_jobs(jobs: list[Job], out_dir: Path, run_id: str, budget: float, argv: list[str]) -> Path:
    """Run `jobs` in order, appending one JSON line per result; jobs past the time budget are recorded as skipped."""
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / f"{run_id}.jsonl"
    config = run_config()
    progress = Progress(len(jobs))
    started = time.monotonic()
    with open(out_dir / f"{run_id}.log", "a") as log, open(results_path, "a") as results:
        for job in jobs:
            text = f"{job.label} → {job.target}"
            progress.start(text)
            result, error, wall = None, None, 0.0
            remaining = budget - (time.monotonic() - started)
            if job.scenario.requires and not adapter_available(job.scenario.requires):
                error = f"protocols/{job.scenario.requires} is not in this tree yet"
            elif remaining < 15:
                error = "skipped: the run's time budget is spent"
            else:
                result, error, wall = run_job(job, log, min(job.scenario.timeout(job.params), remaining))
            record = {
                "run": run_id, "scenario": job.scenario.name, "label": job.label, "target": job.target,
                "params": job.params, "command": command_line(job.scenario, job.params, job.target),
                "worker": shlex.join(["python", *job.argv[1:]]), "harness_argv": argv,
                "wall_s": round(wall, 2), "time": datetime.now().isoformat(timespec="seconds"),
                "result": result, "error": error, "config": config,
            }
            results.write(json.dumps(record) + "\n")
            results.flush()
            progress.finish(f"{text}: {short(result, error, job.scenario.name)}", ok=result is not None)
    progress.close()
    return results_path


def write_summary(results_path: Path, out_dir: Path, charts: bool = True) -> Path:
    records = report.load(results_path)
    cfg = next((r.get("config") for r in records if r.get("config")), {}) or {}
    notes = [
        f"Run `{results_path.stem}` ({len(records)} results, `{results_path.name}`): commit `{cfg.get('git_commit', '?')[:12]}`"
        f"{' (uncommitted changes)' if cfg.get('git_dirty') else ''}, Python {cfg.get('python', '?')}, {cfg.get('cpus', '?')} CPUs, "
        f"{cfg.get('platform', '?')}; peers: "
        + ", ".join(f"{k} {v}" for k, v in (cfg.get("peers") or {}).items()) + ".",
        "Every row's `command` in the JSONL file reruns it (`python -m bench <scenario> ... --targets <target>`); "
        "loopback only, subscribers in separate processes.",
    ]
    summary = out_dir / "summary.md"
    text = report.summary_markdown(records, notes=notes)
    if charts:
        written = report.write_charts(records, out_dir)
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in written) + "\n"
    summary.write_text(text)
    return summary


# -- command line --------------------------------------------------------------------------------------

def parse_targets(text: str, allowed: tuple[str, ...]) -> list[str]:
    names = [t.strip() for t in text.split(",") if t.strip()]
    bad = [t for t in names if t not in ALL_TARGETS]
    if bad:
        raise SystemExit(f"unknown target(s) {', '.join(bad)}; choose from {', '.join(ALL_TARGETS)}")
    return [t for t in names if t in allowed]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=RESULTS, help="results directory (default bench/results)")
    sub = p.add_subparsers(dest="command")
    for name, text, budget in (("all", "the whole suite (default)", 600.0), ("issue20", "issue 20's workloads only", 420.0)):
        s = sub.add_parser(name, help=text)
        s.add_argument("--targets", default=",".join(ALL_TARGETS), help="comma-separated: " + ",".join(ALL_TARGETS))
        s.add_argument("--budget", type=float, default=budget, help="seconds; scenarios after that are recorded as skipped")
        s.add_argument("--no-charts", action="store_true")
    for sc in SCENARIOS.values():
        s = sub.add_parser(sc.name, help=sc.help, description=sc.help)
        for o in sc.options:
            flags = [o.flag] + ([o.short] if o.short else [])
            s.add_argument(*flags, dest=o.dest, type=o.type, default=o.default, help=f"{o.help} (default {o.default})")
        s.add_argument("--targets", default=",".join(sc.targets), help=f"comma-separated, from {','.join(sc.targets)}")
        s.add_argument("--budget", type=float, default=600.0)
        s.add_argument("--summary", action="store_true", help="also rewrite summary.md and the charts from this run")
    r = sub.add_parser("report", help="rebuild summary.md and charts from a results file")
    r.add_argument("file", type=Path)
    r.add_argument("--no-charts", action="store_true")
    sub.add_parser("list", help="scenarios, parameters and the suite")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv or ["all"])
    out_dir: Path = args.out
    run_id = datetime.now().strftime("%Y%m%dT%H%M%S")
    if args.command == "list":
        for sc in SCENARIOS.values():
            print(f"{sc.name}: {sc.help}\n  targets: {', '.join(sc.targets)}")
            for o in sc.options:
                print(f"  {o.flag:16} {o.help} (default {o.default})")
        print("suite:")
        for name, params in SUITE:
            params = {k: v for k, v in params.items() if k != "_targets"}
            print(f"  {SCENARIOS[name].label(params_for(SCENARIOS[name], params))}")
        return 0
    if args.command == "report":
        print(write_summary(args.file, out_dir, charts=not args.no_charts).read_text())
        return 0
    if args.command in ("all", "issue20"):
        targets = parse_targets(args.targets, ALL_TARGETS)
        jobs = suite_jobs(SUITE if args.command == "all" else ISSUE20, targets)
        started = time.monotonic()
        path = run_jobs(jobs, out_dir, run_id, args.budget, ["python", "-m", "bench", *argv])
        summary = write_summary(path, out_dir, charts=not args.no_charts)
        print(summary.read_text())
        print(f"results: {path}\nsummary: {summary} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
        return 0
    sc = SCENARIOS[args.command]
    params = {o.dest: getattr(args, o.dest) for o in sc.options}
    jobs = [Job(sc, params, t) for t in parse_targets(args.targets, sc.targets)]
    if not jobs:
        raise SystemExit(f"{sc.name} runs against: {', '.join(sc.targets)}")
    path = run_jobs(jobs, out_dir, run_id, args.budget, ["python", "-m", "bench", *argv])
    records = report.load(path)
    for r in records:
        print(json.dumps({"target": r["target"], "command": r["command"], "result": r["result"], "error": r["error"]}))
    if args.summary:
        write_summary(path, out_dir)
    print(report.summary_markdown(records, title=f"{sc.name} ({path.name})"), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
