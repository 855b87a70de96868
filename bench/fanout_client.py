"""A subscriber process for bench/fanout.py: N raw-socket connections on one epoll loop.

Cheap by design so the clients are never the bottleneck: after subscribing, a read is not
parsed frame by frame; publications are counted with `bytes.count` on a marker. Latency is
taken from every publication on every `--sample`th connection (the publisher's `"t"` stamp).
"""

from __future__ import annotations

import argparse
import json
import resource
import select
import sys
import time

from .common import LatencyHistogram
from .connector import connect_all, websocket_dialog
from .protocols import PROTOCOLS


def main(args: argparse.Namespace) -> None:
    proto = PROTOCOLS[args.protocol]
    # many topics or one channel per connection: the payload's start
    marker: bytes = proto["marker"] if not (args.topics or args.per_conn) else b'{"t":'

    def channel_of(i: int) -> str:
        return f"{args.channel}{args.prefix}{i}" if args.per_conn else args.channel

    tail_len = len(marker) - 1
    rest = args.url.split("://", 1)[1]
    hostport, _, path = rest.partition("/")
    host, port = hostport.rsplit(":", 1)
    started = time.time()
    dialog = proto.get("dialog")  # a non-websocket transport (MQTT, Redis) brings its own connect+subscribe
    if dialog is not None:
        from .mqtt import filter_of

        dialogs = (dialog(f"{args.prefix}{i}", filter_of(channel_of(i), args.topics, i, args.wildcard)) for i in range(args.n))
    else:
        dialogs = (websocket_dialog(host, int(port), "/" + path, proto["subprotocol"],
                                    proto["subscribe"](f"{args.prefix}{i}", channel_of(i)), proto["is_reply"])
                   for i in range(args.n))
    socks = connect_all(host, int(port), dialogs, args.n, max(1, args.inflight))
    ready_usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"ready": True, "connect_s": time.time() - started,
                      "connect_cpu_s": ready_usage.ru_utime + ready_usage.ru_stime}), flush=True)

    ep = select.epoll()
    by_fd = {}
    for i, s in enumerate(socks):
        ep.register(s.fileno(), select.EPOLLIN)
        by_fd[s.fileno()] = (i, s)
    stdin_fd = sys.stdin.fileno()
    ep.register(stdin_fd, select.EPOLLIN)
    counts = [0] * args.n
    tails = [b""] * args.n
    hist = LatencyHistogram()
    received = 0
    first = last = 0.0
    closed = 0
    done_at = None
    expected = args.expect * args.n
    sample = max(1, args.sample)
    coalesce = max(0.0, args.coalesce_ms) / 1000
    drain_timeout = args.drain_timeout
    stopped = ""
    while True:
        now = time.time()
        if done_at is not None:
            if expected and received >= expected:
                stopped = "all"
                break
            if now - done_at > drain_timeout:
                stopped = "timeout"
                break
            if now - max(last, done_at) > args.quiet:
                stopped = "quiet"
                break
        events = ep.poll(0.2)
        if coalesce and len(events) > 1:
            # Under load, let more frames pile up per socket so one recv reads many (cheap clients).
            time.sleep(coalesce)
        for fd, _ in events:
            if fd == stdin_fd:
                words = sys.stdin.readline().split()
                if len(words) > 1:  # "done SECONDS": stop counting that long from now at the latest
                    drain_timeout = float(words[1])
                ep.unregister(stdin_fd)
                done_at = time.time()
                continue
            i, s = by_fd[fd]
            try:
                data = s.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                ep.unregister(fd)
                closed += 1
                continue
            n = data.count(marker)
            if tail_len and tails[i]:
                n += (tails[i] + data[:tail_len]).count(marker)
            tails[i] = data[-tail_len:]
            if n:
                now = time.time()
                counts[i] += n
                received += n
                if not first:
                    first = now
                last = now
                if i % sample == 0:
                    pos = data.find(marker)
                    while pos >= 0:
                        t0 = data.find(b'"t":', pos)
                        end = data.find(b",", t0)
                        if t0 < 0 or end < 0:
                            break
                        try:
                            hist.add(now - float(data[t0 + 4:end]))
                        except ValueError:
                            pass
                        pos = data.find(marker, end)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({
        "received": received, "min_per_conn": min(counts) if counts else 0, "first": first, "last": last,
        "hist": hist.counts, "max": hist.max, "closed": closed, "cpu_s": usage.ru_utime + usage.ru_stime,
        # the counting phase only (after every connection subscribed): what the clients cost while the server works
        "hot_cpu_s": usage.ru_utime + usage.ru_stime - ready_usage.ru_utime - ready_usage.ru_stime,
        "stopped": stopped,
    }), flush=True)
    if args.hold:
        sys.stdin.read()  # until the bench closes our stdin, having read the server's CPU
    for s in socks:
        s.close()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--channel", default="bench:fanout")
    p.add_argument("--protocol", default="legacy", choices=sorted(PROTOCOLS))
    p.add_argument("--prefix", default="sub")
    p.add_argument("--expect", type=int, default=0, help="publications each connection should get")
    p.add_argument("--sample", type=int, default=1, help="record latency on every Nth connection")
    p.add_argument("--coalesce-ms", type=float, default=0.0,
                   help="when several sockets are ready, wait this long before reading so each recv gets more frames")
    p.add_argument("--drain-timeout", type=float, default=30.0)
    p.add_argument("--quiet", type=float, default=3.0)
    p.add_argument("--topics", type=int, default=0, help="MQTT: subscriber i takes topic bench/<i %% topics>/data")
    p.add_argument("--wildcard", action="store_true", help="MQTT with --topics: subscribe to bench/<n>/# instead")
    p.add_argument("--hold", action="store_true",
                   help="after the report, keep the connections open until stdin closes (disconnecting is not the work measured)")
    p.add_argument("--inflight", type=int, default=16,
                   help="connections being opened at once (handshake and subscribe in progress)")
    p.add_argument("--per-conn", action="store_true", help="connection i subscribes to channel <channel><prefix><i>")
    main(p.parse_args())
