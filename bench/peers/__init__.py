"""The peers the hub is compared with, same workload in the same run: Mosquitto, `websockets`, python-socketio.

`start_peer(name)` gives a `Peer` with the URL the bench clients use, the server's pid (for CPU and
RSS), a peak-RSS reading and `stop()`. Mosquitto can be the system broker already running on
127.0.0.1:1883 (BENCH_MOSQUITTO=system): it is never started, stopped or reconfigured here; its peak RSS is sampled during
the run because its lifetime peak (VmHWM) says nothing about one scenario. By default a private
`mosquitto` process on a free port is used instead (same binary, default settings, no persistence).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..common import rss_kib

PEERS = ("mosquitto", "websockets", "socketio", "redis")
MOSQUITTO = ("127.0.0.1", 1883)


class RssSampler:
    """Samples a process's VmRSS every `interval` seconds in a thread; `.peak_kib` is the highest seen."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.pid, self.interval = pid, interval
        self.peak_kib = rss_kib(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.peak_kib = max(self.peak_kib, rss_kib(self.pid))
            except OSError:
                return

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak_kib


@dataclass
class Peer:
    """A running peer server: `url` for the bench clients, `pid` for CPU/RSS readings."""

    name: str
    url: str
    pid: int
    protocol: str
    proc: subprocess.Popen | None = None
    sampler: RssSampler | None = None
    info: dict = field(default_factory=dict)
    workdir: str | None = None

    def peak_rss_kib(self) -> int:
        if self.sampler is not None:
            return max(self.sampler.peak_kib, rss_kib(self.pid))
        return rss_kib(self.pid, "VmHWM")

    def stop(self) -> None:
        if self.sampler is not None:
            self.sampler.stop()
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def mosquitto_pid() -> int | None:
    """The pid of the broker listening on 1883, if this user can see it (`pgrep mosquitto`)."""
    try:
        out = subprocess.run(["pgrep", "-x", "mosquitto"], capture_output=True, text=True, timeout=5).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return None
    for pid in out:
        if Path(f"/proc/{pid}/status").exists():
            return int(pid)
    return None


def mosquitto_up() -> bool:
    try:
        socket.create_connection(MOSQUITTO, timeout=2).close()
        return True
    except OSError:
        return False


def mosquitto_version() -> str:
    try:
        out = subprocess.run(["mosquitto", "-h"], capture_output=True, text=True, timeout=5)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "unknown"


def _spawn(module: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", module], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    if not line:
        proc.wait(5)
        raise RuntimeError(f"{module} did not start")
    return proc, int(json.loads(line)["port"])


def peer_versions() -> dict[str, str]:
    """Versions of the peers, recorded with every result."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"mosquitto": mosquitto_version(), "redis": redis_version()}
    for key, dist in (("websockets", "websockets"), ("socketio", "python-socketio"), ("engineio", "python-engineio"),
                      ("aiohttp", "aiohttp")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "not installed"
    return out


def free_port() -> int:
    """A port the kernel says is free right now (for Mosquitto, which cannot listen on port 0)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_private_mosquitto() -> Peer:
    """Our own broker process on a free loopback port (fresh memory, CPU not shared); the system one is untouched."""
    workdir = tempfile.mkdtemp(prefix="bench-mosquitto-")
    conf = Path(workdir) / "mosquitto.conf"
    for _ in range(5):
        port = free_port()
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                        "log_dest stderr\nlog_type error\nlog_type warning\n")
        proc = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return Peer("mosquitto", f"mqtt://127.0.0.1:{port}/", proc.pid, "mqtt", proc,
                            info={"version": mosquitto_version(), "broker": "private"}, workdir=workdir)
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError("could not start a private mosquitto")


def redis_version() -> str:
    try:
        out = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=5).stdout
        return out.split()[2].removeprefix("v=") if out else "unknown"
    except (OSError, subprocess.TimeoutExpired, IndexError):
        return "not installed"


def start_private_redis() -> Peer:
    """A private redis-server (no persistence, room for 20,000 clients) on a free loopback port; never the machine's 6379."""
    if not shutil.which("redis-server"):
        raise RuntimeError("redis-server is not installed")
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    for _ in range(5):
        port = free_port()
        proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                                 "--dir", workdir, "--maxclients", "20000", "--loglevel", "warning"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        return Peer("redis", f"redis://127.0.0.1:{port}/", proc.pid, "redis", proc,
                                    info={"version": redis_version()}, workdir=workdir)
            except OSError:
                time.sleep(0.05)
        proc.kill()
        proc.wait()
    shutil.rmtree(workdir, ignore_errors=True)
    raise RuntimeError("could not start a private redis-server")


def start_peer(name: str) -> Peer:
    """Start (or, for Mosquitto, find) peer `name`; raises RuntimeError if it is not available.

    Mosquitto: a private broker process when the `mosquitto` binary is installed and BENCH_MOSQUITTO
    is not "system"; otherwise the system broker on 127.0.0.1:1883 (its RSS then carries its history).
    """
    if name == "mosquitto" and os.environ.get("BENCH_MOSQUITTO", "private") != "system" and shutil.which("mosquitto"):
        return start_private_mosquitto()
    if name == "mosquitto":
        if not mosquitto_up():
            raise RuntimeError("Mosquitto is not listening on 127.0.0.1:1883")
        pid = mosquitto_pid()
        if pid is None:
            raise RuntimeError("Mosquitto is listening but its pid is not readable")
        return Peer(name, "mqtt://127.0.0.1:1883/", pid, "mqtt", sampler=RssSampler(pid),
                    info={"version": mosquitto_version(), "broker": "system"})
    if name == "redis":
        return start_private_redis()
    if name == "websockets":
        proc, port = _spawn("bench.peers.ws_broadcast")
        return Peer(name, f"ws://127.0.0.1:{port}/", proc.pid, "wspeer", proc)
    if name == "socketio":
        proc, port = _spawn("bench.peers.sio_server")
        return Peer(name, f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket", proc.pid, "socketio", proc)
    raise ValueError(f"unknown peer {name!r}; choose from {', '.join(PEERS)}")

