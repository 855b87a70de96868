"""`make sdk-suites`: the Centrifugo SDKs' own test suites against a fresh hub.

centrifuge-python: its sdist (downloaded once with pip into .cache/) holds `tests/` and the docker-compose.yml
whose environment is the Centrifugo configuration the suite expects; `centrifuge-python.json` beside this file is
that environment as a Centrifugo config.json. The hub is started on it (`hub run --config`), the sdist's whole
`tests/` runs (unittest discover, as its Makefile does) with a per-test timeout, JSON and Protobuf subtests
counted one by one.

centrifuge-js (with `--js PATH`, a checkout with `npm install` done): the hub is started on its own
`centrifugo_test.json` as is, and its `test` script (jest) runs on the test files named below.

Both suites talk to `localhost:8000`; the hub gets a free port and a scratch copy of each suite's tests points
there. With `--redis` the hub runs the Redis engine on a throwaway redis-server (bench/redis_server.py), the
suites' configs otherwise unchanged. Exit status 0 when every required test passes.

    python -m tests.protocols.realtime.suites [--python] [--js PATH] [--js-files a,b] [--timeout 60] [--redis]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
HERE = Path(__file__).resolve().parent
CACHE = ROOT / ".cache"
PY_VERSION = "0.7.0"
# centrifuge-js files that must pass whole; the others (map*, shared_poll*: Centrifugo 6.8 experimental) are counted.
JS_REQUIRED = ("centrifuge.test.ts", "getstate.test.ts", "delta.test.ts", "recovery.test.ts",
               "centrifuge.protobuf.test.ts")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def python_sdist() -> Path:
    """centrifuge-python's unpacked sdist (downloaded once with pip, kept in .cache/)."""
    target = CACHE / f"centrifuge_python-{PY_VERSION}"
    if (target / "tests").is_dir():
        return target
    CACHE.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-binary", ":all:", "--no-deps",
                    f"centrifuge-python=={PY_VERSION}", "-d", str(CACHE)], check=True, timeout=600)
    with tarfile.open(CACHE / f"centrifuge_python-{PY_VERSION}.tar.gz") as tar:
        tar.extractall(CACHE, filter="data")
    return target


class Hub:
    """`hub run --config <config.json>` on a free port, its output in a log file; with `redis_url`, on the Redis
    engine there (Centrifugo's `engine` object)."""

    def __init__(self, config: dict, workdir: Path, redis_url: str | None = None) -> None:
        self.port = free_port()
        config = dict(config, http_server={**config.get("http_server", {}), "port": self.port})
        if redis_url is not None:
            config["engine"] = {"type": "redis", "redis": {"address": redis_url, "prefix": "sdk-suite"}}
        path = workdir / "config.json"
        path.write_text(json.dumps(config))
        self.log_path = workdir / "hub.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - the hub writes to it until it stops
        self.proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(path)], stdout=self._log,
                                     stderr=subprocess.STDOUT, cwd=workdir)
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the hub did not start:\n{self.log_path.read_text(errors='replace')[-3000:]}")
            time.sleep(0.05)

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def _point_at(files: list[Path], port: int) -> None:
    for path in files:
        text = path.read_text()
        new = re.sub(r"localhost:8000", f"127.0.0.1:{port}", text)
        if new != text:
            path.write_text(new)


def run_python(timeout: float, pattern: str = "test*.py", keep: bool = False, redis_url: str | None = None) -> dict:
    """centrifuge-python's suite; returns {passed, failed, skipped, failed_ids, hub_exit}."""
    source = python_sdist()
    config = json.loads((HERE / "centrifuge-python.json").read_text())
    with tempfile.TemporaryDirectory(prefix="sdk-suite-py-") as tmp:
        work = Path(tmp)
        suite = work / "suite"
        shutil.copytree(source / "tests", suite / "tests")
        hub = Hub(config, work, redis_url)
        try:
            _point_at(list((suite / "tests").glob("*.py")), hub.port)
            out = subprocess.run([sys.executable, str(HERE / "unittest_runner.py"), str(timeout), pattern], cwd=suite,
                                 capture_output=True, text=True, timeout=1800)
        finally:
            code = hub.stop()
            if keep:
                shutil.copy(hub.log_path, CACHE / "sdk-suite-python-hub.log")
        line = next((x for x in reversed(out.stdout.splitlines()) if x.startswith("SUMMARY ")), None)
        if line is None:
            print(out.stdout[-3000:], out.stderr[-5000:])
            return {"passed": 0, "failed": 1, "skipped": 0, "failed_ids": ["(runner)"], "hub_exit": code}
        result = json.loads(line.removeprefix("SUMMARY "))
        if result["failed"]:
            print(out.stderr[-20000:])
        result["hub_exit"] = code
        return result


def run_js(checkout: Path, files: list[str], timeout: float, keep: bool = False,
           redis_url: str | None = None) -> dict[str, dict]:
    """centrifuge-js's jest suite on `files`; returns {file: {passed, failed, skipped}}."""
    config = json.loads((checkout / "centrifugo_test.json").read_text())
    for proxy in config.get("proxies", []):  # its docker-compose host for the suite's own backends: here, this host
        if isinstance(proxy, dict) and isinstance(proxy.get("endpoint"), str):
            proxy["endpoint"] = proxy["endpoint"].replace("host.docker.internal", "127.0.0.1")
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="sdk-suite-js-") as tmp:
        work = Path(tmp)
        suite = work / "suite"
        suite.mkdir()
        for item in checkout.iterdir():
            if item.name == "node_modules":
                (suite / "node_modules").symlink_to(item.resolve())
            elif item.name not in (".git", "build", "dist"):
                (shutil.copytree if item.is_dir() else shutil.copy)(item, suite / item.name)
        hub = Hub(config, work, redis_url)
        try:
            _point_at(list((suite / "src").glob("*.ts")), hub.port)
            report = work / "jest.json"
            cmd = ["npx", "jest", "--verbose", "--json", f"--outputFile={report}", f"--testTimeout={int(timeout * 1000)}",
                   "--forceExit", *[f"src/{f}" for f in files]]
            subprocess.run(cmd, cwd=suite, timeout=3600, env={**os.environ, "CI": "1"})
            data = json.loads(report.read_text()) if report.exists() else {"testResults": []}
        finally:
            hub.stop()
            if keep:
                shutil.copy(hub.log_path, CACHE / "sdk-suite-js-hub.log")
        for file_result in data["testResults"]:
            name = Path(file_result["name"]).name
            c = results.setdefault(name, {"passed": 0, "failed": 0, "skipped": 0})
            for case in file_result.get("assertionResults", []):
                status = case["status"]
                c["passed" if status == "passed" else "failed" if status == "failed" else "skipped"] += 1
            if not file_result.get("assertionResults") and file_result.get("status") == "failed":
                c["failed"] += 1  # the file did not run (compile error, crash)
    return dict(sorted(results.items()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--js", type=Path, help="a centrifuge-js checkout with `npm install` done")
    parser.add_argument("--js-files", help="comma-separated test files (default: every *.test.ts but the bench)")
    parser.add_argument("--no-python", action="store_true", help="skip centrifuge-python's suite")
    parser.add_argument("--pattern", default="test*.py", help="centrifuge-python test files (unittest pattern)")
    parser.add_argument("--timeout", type=float, default=60.0, help="per-test timeout in seconds")
    parser.add_argument("--keep", action="store_true", help="keep the hub's log in .cache/")
    parser.add_argument("--redis", action="store_true", help="the hub on the Redis engine (a throwaway redis-server)")
    args = parser.parse_args()
    if not args.redis:
        return _run(args, None)
    from bench.redis_server import REDIS_SERVER, RedisServer

    if REDIS_SERVER is None:
        print("--redis: redis-server is not installed (make system-deps installs it)")
        return 2
    with tempfile.TemporaryDirectory(prefix="sdk-suite-redis-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        try:
            return _run(args, server.url)
        finally:
            server.kill()


def _run(args: argparse.Namespace, redis_url: str | None) -> int:
    ok = True
    if not args.no_python:
        r = run_python(args.timeout, args.pattern, keep=args.keep, redis_url=redis_url)
        print(f"centrifuge-python {PY_VERSION}: {r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped"
              " (tests and JSON/Protobuf subtests)")
        for test_id in r["failed_ids"]:
            print(f"  FAILED {test_id}")
        ok = ok and r["failed"] == 0
    if args.js:
        checkout = args.js.resolve()
        if args.js_files:
            files = [f.strip() for f in args.js_files.split(",")]
        else:
            files = sorted(p.name for p in (checkout / "src").glob("*.test.ts") if "bench" not in p.name)
        counts = run_js(checkout, files, args.timeout, keep=args.keep, redis_url=redis_url)
        print(f"centrifuge-js ({checkout}){' on the Redis engine' if redis_url else ''}:")
        print(f"  {'file':34} {'passed':>6} {'failed':>6} {'skipped':>7}  must pass")
        for name, c in counts.items():
            required = name in JS_REQUIRED
            bad = c["failed"] > 0
            ok = ok and not (required and bad)
            print(f"  {name:34} {c['passed']:6} {c['failed']:6} {c['skipped']:7}  {'yes' if required else 'no'}"
                  f"{'  <-- FAILS' if required and bad else ''}")
        missing = [f for f in files if f in JS_REQUIRED and f not in counts]
        for f in missing:
            print(f"  {f}: did not run  <-- FAILS")
        ok = ok and not missing
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
