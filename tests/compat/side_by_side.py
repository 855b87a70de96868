"""Run the 127 original-protocol checks against the original Centrifuge 0.8.4 and the hub; count equal answers.

    # both live (the original from /work/shared/reference/centrifuge-0.8: BG=1 ./run.sh 18000)
    python -m tests.compat.side_by_side --ref http://127.0.0.1:18000 --start-hub
    # record the original's answers as the fixture the tests compare with
    python -m tests.compat.side_by_side --ref http://127.0.0.1:18000 --record tests/compat/fixtures/centrifuge-0.8.4.json
    # the hub against the recorded answers (no original needed)
    python -m tests.compat.side_by_side --start-hub

`--start-hub` runs `hub run --config <the reference config.json>` on a free port (the hub serves that
file as the original does). Prints one line per check, the differences in full, and `N/127 same`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .legacy_checks import CHECKS, compare, run_all, show

HERE = Path(__file__).parent
FIXTURE = HERE / "fixtures" / "centrifuge-0.8.4.json"
CONFIG = HERE / "fixtures" / "config.json"

# Differences kept on purpose: where the original was broken, the hub does what it intended.
KEPT = {
    "api_utf8_latin1_range": "the original hashes `data` as latin-1, so UTF-8 JSON signed as sent is refused (401); the hub signs UTF-8",
    "api_utf8_outside_latin1": "the original fails with 500 (UnicodeEncodeError) on non-latin-1 `data`; the hub signs UTF-8",
    "api_json_body_with_header_sign": "the original's JSON-body variant (X-API-Sign) fails with 500 on Python 3; the hub serves it",
    "api_unsubscribe_all_channels": "the original answers 500 and leaves one channel (dict changed size during iteration); "
                                    "the hub unsubscribes from every channel and answers true",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def hub_process(config: Path = CONFIG) -> Iterator[str]:
    """`hub run --config config.json` on a free port; yields its base URL.

    The copy it runs has no `password`: that would also start the dashboard (the 0.8 admin interface's
    replacement) on its own fixed port, which no check uses."""
    port = free_port()
    data = json.loads(config.read_text())
    data.pop("password", None)
    workdir = Path(tempfile.mkdtemp(prefix="hub-compat-"))
    config = workdir / "config.json"
    config.write_text(json.dumps(data))
    cmd = [sys.executable, "-m", "hub", "run", "--config", str(config), "--port", str(port)]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, cwd=workdir)
    log = []
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                raise RuntimeError("hub exited:\n" + "".join(log))
            log.append(line)
            if "hub ready" in line:
                break
        # Keep reading its log so that a chatty hub never blocks on a full pipe.
        threading.Thread(target=lambda: [log.append(line) for line in proc.stderr], daemon=True).start()
        base = f"http://127.0.0.1:{port}"
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)


def report(expected: dict[str, Any], actual: dict[str, Any], label: str) -> list[str]:
    differ = compare(expected, actual)
    for name, _ in CHECKS:
        mark = "same" if name not in differ else ("DIFFERENT (kept)" if name in KEPT else "DIFFERENT")
        print(f"  {mark:17} {name}")
    for name in differ:
        print(f"\n--- {name}" + (f"  [kept: {KEPT[name]}]" if name in KEPT else ""))
        print("original:", show(expected[name]))
        print(f"{label}:", show(actual[name]))
    same = len(CHECKS) - len(differ)
    print(f"\n{same}/{len(CHECKS)} same; {len(differ)} different ({len([d for d in differ if d in KEPT])} kept on purpose)")
    return differ


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", help="base URL of a running original Centrifuge 0.8.4")
    ap.add_argument("--hub", help="base URL of a running hub (started with the reference config.json)")
    ap.add_argument("--start-hub", action="store_true", help="start `hub run --config fixtures/config.json` on a free port")
    ap.add_argument("--record", type=Path, help="write the original's answers here (needs --ref)")
    ap.add_argument("--fixture", type=Path, default=FIXTURE, help="recorded answers to compare with when --ref is not given")
    ap.add_argument("--only", nargs="*", help="run only these checks")
    ap.add_argument("--json", type=Path, help="write the hub's answers here")
    a = ap.parse_args(argv)

    if a.ref:
        print(f"original: {a.ref}")
        expected = run_all(a.ref, only=a.only)
        if a.record:
            a.record.parent.mkdir(parents=True, exist_ok=True)
            a.record.write_text(json.dumps({"server": "centrifuge 0.8.4 (Python 3.6, memory engine)",
                                            "recorded": time.strftime("%Y-%m-%d"), "answers": expected},
                                           indent=1, ensure_ascii=False) + "\n")
            print(f"recorded {len(expected)} answers in {a.record}")
            if not (a.hub or a.start_hub):
                return 0
    else:
        expected = json.loads(a.fixture.read_text())["answers"]
        if a.only:
            expected = {k: v for k, v in expected.items() if k in a.only}
    if a.start_hub:
        with hub_process() as base:
            actual = run_all(base, only=a.only)
    elif a.hub:
        actual = run_all(a.hub, only=a.only)
    else:
        ap.error("give --hub or --start-hub (or --record)")
    if a.json:
        a.json.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n")
    report(expected, actual, "hub")
    return 0


if __name__ == "__main__":
    sys.exit(main())
