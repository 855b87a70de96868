"""Dashboard pages kept open during a benchmark (`BENCH_DASHBOARD=1`): the cost of watching the hub.

    python -m bench.dashboard_pages --url http://127.0.0.1:PORT --password PW --project bench

Logs in like the login form, then holds the live sockets of an Overview, a Clients, a Channels page and
one channel page per bench channel (each publication of the benchmark then goes through the dashboard's
watch path), reading every message. Prints "ready" once all are open and a JSON line of counts at exit.
Runs in its own process so the hub's CPU figures include only the hub's side of the work.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

from websockets.sync.client import connect

CHANNELS = ("bench:fanout", "bench:api", "bench:rpc")


def login(url: str, password: str) -> str:
    """The session cookie's value, from GET /login (form token) and POST /login."""
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = opener.open(url + "/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    opener.open(url + "/login", urllib.parse.urlencode({"csrf": csrf, "password": password}).encode())
    return next(c.value for c in jar if c.name == "hub_dashboard")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--project", default="bench")
    args = parser.parse_args()
    cookie = login(args.url, args.password)
    pages = ["page=overview", "page=clients", f"page=channels&project={args.project}"]
    pages += [f"page=channel&project={args.project}&channel={urllib.parse.quote(c)}" for c in CHANNELS]
    counts = dict.fromkeys(pages, 0)
    stop = threading.Event()

    def hold(query: str, ready: threading.Event) -> None:
        ws_url = args.url.replace("http://", "ws://") + "/ws?" + query
        with connect(ws_url, additional_headers={"Cookie": f"hub_dashboard={cookie}", "Origin": args.url}) as ws:
            ws.recv(timeout=10)
            counts[query] += 1
            ready.set()
            while not stop.is_set():
                try:
                    ws.recv(timeout=0.5)
                except TimeoutError:
                    continue
                except Exception:
                    return
                counts[query] += 1

    threads = []
    for query in pages:
        ready = threading.Event()
        thread = threading.Thread(target=hold, args=(query, ready), daemon=True)
        thread.start()
        if not ready.wait(10):
            sys.exit(f"dashboard page {query} did not open")
        threads.append(thread)
    print("ready", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        stop.set()
    for thread in threads:
        thread.join(2)
    print(json.dumps({"messages": counts}), flush=True)


if __name__ == "__main__":
    main()
