"""Channel churn through the real entry points: `hub run` and the signed command API.

    python -m bench.channel_churn                      # 3 rounds of 200,000 channels, this tree
    python -m bench.channel_churn --before 6f8c155     # the same with the code before issue 23's core work

Each round publishes one small publication into each of N new channels (100 per signed request) of a
namespace that keeps history for `--lifetime` seconds (`history_meta_ttl` 1 s), waits until they have
expired, and reads the hub process's RSS. Prints the RSS after each round and last/first. With
`--before REF`, the `hub` package of REF is exported with `git archive` and run instead (same script).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = """
[hub]
log_level = "info"
[projects.bench]
secret = "bench-secret"
presence = false
join_leave = false
history_size = 10
history_lifetime = {lifetime}
[engine]
history_meta_ttl = 1
[realtime]
port = 0
[command_api]
port = 0
"""
PER_REQUEST = 100


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def body(commands: list[dict]) -> str:
    data = json.dumps(commands)
    sign = hmac.new(b"bench-secret", ("bench" + data).encode(), hashlib.sha256).hexdigest()
    return urllib.parse.urlencode({"data": data, "sign": sign})


def run(workdir: Path, code: str | None, rounds: int, n: int, lifetime: float) -> list[float]:
    import httpx

    from hub.adapters import adapter_registry
    from hub.runtime import READY, listener_urls

    others = [a for a in adapter_registry() if a not in ("realtime", "command_api")]
    (workdir / "hub.toml").write_text(CONFIG.format(lifetime=lifetime) + "".join(f"[{a}]\nenabled = false\n" for a in others))
    env = dict(os.environ)
    if code:  # the exported tree first; run from its directory (cwd comes first on sys.path with -m)
        env["PYTHONPATH"] = code
    proc = subprocess.Popen([sys.executable, "-m", "hub", "run", "--config", str(workdir / "hub.toml")],
                            cwd=code or str(workdir), stderr=subprocess.PIPE, text=True, env=env)
    text = ""
    while READY not in text:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit("hub did not start:\n" + text)
        text += line
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    url = listener_urls(text)["command API"]
    client = httpx.Client(timeout=60, trust_env=False)
    out = []
    try:
        for r in range(rounds):
            started = time.monotonic()
            for first in range(0, n, PER_REQUEST):
                commands = [{"method": "publish", "params": {"channel": f"r{r}c{i}", "data": {"n": i}}}
                            for i in range(first, min(first + PER_REQUEST, n))]
                resp = client.post(f"{url}/api/bench", content=body(commands),
                                   headers={"content-type": "application/x-www-form-urlencoded"})
                resp.raise_for_status()
            took = time.monotonic() - started
            full = rss_mb(proc.pid)
            time.sleep(max(0.0, lifetime - (time.monotonic() - started)) + 3.0)  # all expired, a pass or two later
            out.append(rss_mb(proc.pid))
            print(f"round {r + 1}: {n:,} channels published in {took:.1f} s; RSS {full:.0f} MB with them, "
                  f"{out[-1]:.0f} MB after they expired", file=sys.stderr, flush=True)
    finally:
        proc.terminate()
        proc.wait(30)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--channels", type=int, default=200_000)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--lifetime", type=float, default=25.0, help="history_lifetime (longer than a round's publishing)")
    p.add_argument("--before", help="git ref whose `hub` package to run instead of this tree's")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        code = None
        if args.before:
            code = os.path.join(tmp, "code")
            os.mkdir(code)
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before, "hub"], check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", code], input=archive, check=True)
        rss = run(Path(tmp), code, args.rounds, args.channels, args.lifetime)
    label = f"before ({args.before})" if args.before else "this tree"
    print(f"{label}: RSS after each round {', '.join(f'{x:.0f}' for x in rss)} MB; last/first {rss[-1] / rss[0]:.2f}")


if __name__ == "__main__":
    main()
