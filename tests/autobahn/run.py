"""`make autobahn`: the Autobahn|Testsuite fuzzingclient (Python 2.7, from pyenv) against the hub's websocket layer.

Installs `autobahntestsuite` into .autobahn/site for the pyenv Python 2.7 (pip --target: 2.7 has no venv),
starts tests/autobahn/echo_server.py, runs cases 1-10 (12 and 13 are permessage-deflate, which the hub does
not offer), prints the summary and exits 1 if any case FAILED.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORK = ROOT / ".autobahn"
SITE = WORK / "site"
CASES = [f"{n}.*" for n in range(1, 11)]


def python27() -> str:
    """The pyenv Python 2.7 (installed with `pyenv install 2.7.18` if pyenv has none), else python2.7 on PATH."""
    roots = [os.environ.get("PYENV_ROOT", ""), os.path.expanduser("~/.pyenv")]
    pyenv = shutil.which("pyenv") or next((p for r in roots if r and os.path.exists(p := os.path.join(r, "bin", "pyenv"))), None)
    if pyenv:
        roots.insert(0, subprocess.run([pyenv, "root"], capture_output=True, text=True).stdout.strip())
    for root in roots:
        found = sorted(glob.glob(os.path.join(root, "versions", "2.7*", "bin", "python2.7"))) if root else []
        if found:
            return found[-1]
    if shutil.which("python2.7"):
        return str(shutil.which("python2.7"))
    if pyenv:
        subprocess.run([pyenv, "install", "--skip-existing", "2.7.18"], check=True)
        return python27()
    sys.exit("make autobahn needs Python 2.7: install pyenv and run `pyenv install 2.7.18`")


def install(py: str) -> None:
    if (SITE / "autobahntestsuite").exists():
        return
    SITE.mkdir(parents=True, exist_ok=True)
    subprocess.run([py, "-m", "pip", "install", "--disable-pip-version-check", "-q", "--target", str(SITE),
                    "autobahntestsuite"], check=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def summarize(index: dict) -> tuple[Counter, dict[str, Counter], list[str]]:
    total: Counter = Counter()
    sections: dict[str, Counter] = {}
    failed = []
    for cases in index.values():
        for case, result in cases.items():
            behavior = result["behavior"]
            total[behavior] += 1
            sections.setdefault(case.split(".")[0], Counter())[behavior] += 1
            if behavior == "FAILED":
                failed.append(case)
    return total, sections, failed


def main() -> int:
    py = python27()
    install(py)
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tests.autobahn.echo_server", "--port", str(port)], cwd=ROOT)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        reports = WORK / "reports"
        shutil.rmtree(reports, ignore_errors=True)
        spec = {"outdir": str(reports), "servers": [{"agent": "hub", "url": f"ws://127.0.0.1:{port}/"}],
                "cases": CASES, "exclude-cases": [], "exclude-agent-cases": {}}
        (WORK / "fuzzingclient.json").write_text(json.dumps(spec, indent=2))
        run = ("import site, sys; site.addsitedir(sys.argv[1]); sys.argv = ['wstest'] + sys.argv[2:]; "
               "from autobahntestsuite import wstest; wstest.run()")
        subprocess.run([py, "-c", run, str(SITE), "-m", "fuzzingclient", "-s", str(WORK / "fuzzingclient.json")],
                       check=True, cwd=WORK, stdout=subprocess.DEVNULL)
    finally:
        server.terminate()
        server.wait(10)
    total, sections, failed = summarize(json.loads((reports / "index.json").read_text()))
    print(f"Autobahn fuzzingclient, cases 1-10 against the hub's websocket layer (report: {reports}/index.html)")
    for section in sorted(sections, key=int):
        print(f"  {section:>2}: " + ", ".join(f"{n} {b}" for b, n in sorted(sections[section].items())))
    print("  total: " + ", ".join(f"{n} {b}" for b, n in sorted(total.items())))
    if failed:
        print("FAILED cases: " + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
