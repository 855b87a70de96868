"""Results of a bench run → the Markdown summary (hub vs each peer) and PNG charts. Pure except `write_charts`.

A result record is one JSON line of `bench/results/<run>.jsonl`:
`{"scenario", "label", "target", "params", "command", "result": {...} | null, "error": str | null, ...}`.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from pathlib import Path
from typing import Any

TARGETS = ("hub", "mosquitto", "redis", "websockets", "socketio", "hub-mqtt", "h11")
PEERS = ("mosquitto", "websockets", "socketio", "redis", "h11")
EXTRA_PEERS = ("redis", "h11")  # columns of the hub-vs-peers table only in runs that have them

# Per scenario: the headline throughput metric (higher is better) and its unit.
THROUGHPUT = {
    "burst": ("deliveries_per_s", "deliveries/s"),
    "rate": ("deliveries_per_s", "deliveries/s"),
    "connections": ("connects_per_s", "connects/s"),
    "command_api": ("publishes_per_s", "publishes/s"),
    "chat": ("messages_per_s", "messages/s"),
    "chat_rc": ("rest_messages_per_s", "REST messages/s"),
    "jsonrpc": ("requests_per_s", "requests/s"),
    "topics": ("deliveries_per_s", "deliveries/s"),
    "channels": ("deliveries_per_s", "deliveries/s"),
}


def load(path: str | Path) -> list[dict[str, Any]]:
    """The records of one results file (blank or broken lines skipped)."""
    out = []
    for line in Path(path).read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def labels_in_order(records: Iterable[dict[str, Any]]) -> list[str]:
    seen: list[str] = []
    for r in records:
        if r["label"] not in seen:
            seen.append(r["label"])
    return seen


def by_label(records: Iterable[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """{label: {target: record}}; a later record for the same label and target replaces an earlier one."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for r in records:
        out.setdefault(r["label"], {})[r["target"]] = r
    return out


def throughput(record: dict[str, Any]) -> float | None:
    res = record.get("result") or {}
    key = THROUGHPUT.get(record["scenario"], ("", ""))[0]
    value = res.get(key)
    return float(value) if isinstance(value, int | float) else None


def latency(record: dict[str, Any], pct: str = "p99") -> float | None:
    """A latency percentile in ms, capped at the maximum (histogram bins are 2% wide, so a percentile may overshoot it)."""
    lat = (record.get("result") or {}).get("latency_ms") or {}
    value, top = lat.get(pct), lat.get("max")
    if not isinstance(value, int | float):
        return None
    return min(float(value), float(top)) if isinstance(top, int | float) and top > 0 else float(value)


def ratio(hub: float | None, peer: float | None) -> float | None:
    """hub ÷ peer, or None when either side is missing or the peer's value is zero."""
    if hub is None or peer is None or peer == 0:
        return None
    return hub / peer


def fmt_ratio(x: float | None) -> str:
    if x is None:
        return "—"
    if x < 0.1:
        return f"×{x:.3f}"
    return f"×{x:.2f}" if x < 10 else f"×{x:.0f}" if x >= 100 else f"×{x:.1f}"


def fmt_num(x: Any) -> str:
    if x is None or x == "":
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "**no**"
    if isinstance(x, float) and not x.is_integer():
        return f"{x:,.2f}" if abs(x) < 100 else f"{x:,.0f}"
    if isinstance(x, int | float):
        return f"{int(x):,}"
    return str(x)


def delivery_note(res: dict[str, Any]) -> str:
    """Loss and backlog in words: never folded into an average."""
    if "expected" not in res and "deliveries_expected" not in res:
        return ""
    expected = res.get("expected", res.get("deliveries_expected", 0))
    missing = res.get("lost", 0) or 0
    parts = []
    if missing:
        pct = 100 * missing / expected if expected else 0
        if res.get("drain_cut"):
            parts.append(f"{missing:,} ({pct:.1f}%) not delivered within the {res.get('drain_limit_s', '?')} s drain limit "
                         "after the last publish (a backlog still queued, or dropped)")
        else:
            parts.append(f"{missing:,} ({pct:.1f}%) lost")
    if res.get("server_closed"):
        parts.append(f"{res['server_closed']} connections closed by the server")
    drain = res.get("drain_s")
    if drain is not None and drain > 1.0 and not res.get("drain_cut"):
        parts.append(f"drained {drain:.1f} s after the last publish")
    if res.get("errors"):
        parts.append(f"{res['errors']} request errors")
    return "; ".join(parts)


def comparison_cells(hub: dict[str, Any] | None, peer: dict[str, Any] | None) -> str:
    """One 'hub vs peer' cell: throughput ratio; p99 ratio where there is latency; RSS/connection for connections."""
    if hub is None or peer is None or hub.get("result") is None or peer.get("result") is None:
        return "—"
    scenario = hub["scenario"]
    hres, pres = hub["result"], peer["result"]
    if scenario == "connections":
        return (f"connects/s {fmt_ratio(ratio(throughput(hub), throughput(peer)))}, "
                f"RSS/conn {fmt_ratio(ratio(hres.get('rss_per_conn_kib'), pres.get('rss_per_conn_kib')))}")
    cell = f"{THROUGHPUT[scenario][1]} {fmt_ratio(ratio(throughput(hub), throughput(peer)))}"
    if scenario in ("command_api", "channels") and hres.get("server_cpu_s") and pres.get("server_cpu_s"):
        # per server CPU second: steadier than wall time when other processes share the cores
        per_cpu = ratio(throughput(hub) / hres["server_cpu_s"] * hres.get("elapsed_s", 1),
                        throughput(peer) / pres["server_cpu_s"] * pres.get("elapsed_s", 1))
        cell += f", per server CPU s {fmt_ratio(per_cpu)}"
    if latency(hub) is not None and latency(peer) is not None:
        cell += f", p99 {fmt_ratio(ratio(latency(hub), latency(peer)))}"
    if scenario == "rate" and pres.get("kept_up") is False and hres.get("kept_up") is not False:
        cell += " (peer fell behind)"
    if pres.get("lost"):
        cell += " (peer: lost/undelivered)"
    if hres.get("lost"):
        cell += " (hub: lost/undelivered)"
    return cell


DETAIL_COLUMNS = ("scenario", "target", "throughput", "p50 ms", "p99 ms", "max ms", "kept up (rate)", "server CPU s",
                  "server peak RSS MB", "client CPU s", "saturated", "loss / backlog")


def detail_row(record: dict[str, Any]) -> list[str]:
    res = record.get("result")
    if res is None:
        return [record["label"], record["target"], f"not run: {record.get('error') or 'no result'}"] + [""] * (len(DETAIL_COLUMNS) - 3)
    unit = THROUGHPUT.get(record["scenario"], ("", ""))[1]
    tp = throughput(record)
    extra = ""
    if record["scenario"] == "connections":
        extra = f"; {fmt_num(res.get('rss_per_conn_kib'))} KiB RSS/conn"
    lat = res.get("latency_ms") or {}
    return [
        record["label"], record["target"], f"{fmt_num(tp)} {unit}{extra}" if tp is not None else "—",
        fmt_num(latency(record, "p50")), fmt_num(latency(record, "p99")), fmt_num(lat.get("max")),
        fmt_num(res.get("kept_up")) if "kept_up" in res and record["scenario"] == "rate" else "—",
        fmt_num(res.get("server_cpu_s")), fmt_num(res.get("server_peak_rss_mb")), fmt_num(res.get("client_cpu_s")),
        str(res.get("saturated", "—")), delivery_note(res) or "none",
    ]


def table(header: Iterable[str], rows: Iterable[Iterable[str]]) -> str:
    header = list(header)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c).replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines)


def summary_markdown(records: list[dict[str, Any]], *, title: str = "Benchmark summary", notes: Iterable[str] = ()) -> str:
    """The whole summary.md: hub-vs-peer ratios first, then every result with loss and backlog spelled out."""
    groups = by_label(records)
    order = labels_in_order(records)
    out = [f"# {title}", ""]
    out += [n for n in notes] + ([""] if notes else [])
    compare_rows = []
    peers = [p for p in PEERS if p not in EXTRA_PEERS or any(p in groups[label] for label in order)]
    for label in order:
        g = groups[label]
        if "hub" not in g or not any(p in g for p in peers):
            continue
        compare_rows.append([label] + [comparison_cells(g.get("hub"), g.get(p)) if p in g else "not run" for p in peers])
    if compare_rows:
        out += ["## Hub vs peers", "",
                "Each cell is the hub's figure divided by the peer's (×2.0 = twice the peer's). Higher is better for "
                "throughput and connects/s; lower is better for p99 latency and RSS per connection.", "",
                table(["scenario", *peers], compare_rows), ""]
    mqtt_rows = [[label, comparison_cells(groups[label]["hub-mqtt"], groups[label]["mosquitto"])]
                 for label in order if "hub-mqtt" in groups[label] and "mosquitto" in groups[label]]
    if mqtt_rows:
        out += ["## MQTT: the hub's listener vs Mosquitto", "",
                "The same raw MQTT 3.1.1 QoS 0 subscribers and publisher against both (`hub-mqtt`); each cell is the "
                "hub's figure divided by Mosquitto's.", "", table(["scenario", "mosquitto"], mqtt_rows), ""]
    out += issue20_section(groups, order)
    out += gc_section(groups, order)
    out += ["## All results", "", table(DETAIL_COLUMNS, [detail_row(groups[label][t]) for label in order
                                                         for t in TARGETS + tuple(sorted(set(groups[label]) - set(TARGETS)))
                                                         if t in groups[label]]), ""]
    out += ["Throughput for burst and rate is deliveries (publications × subscribers) per second from the first publish "
            "to the last delivery. Latency: publish → receive at a subscriber (burst, rate), request → response "
            "(command API, JSON-RPC), REST send → websocket receive (chat). 'saturated' says which side was the limit "
            "(server CPU ≥ 85% of the elapsed time = server). Loss and backlog are counted per run, never averaged away.", ""]
    return "\n".join(out)


def issue20_section(groups: dict[str, dict[str, dict[str, Any]]], order: list[str]) -> list[str]:
    """Issue 20's targets, each with the figure that decides it (only those this run measured); where a target was
    measured in several rounds, also the median of the rounds."""
    rows = []
    rounds: dict[tuple[str, str], list[float]] = {}  # (label without its round, target) -> the deciding figures

    def decided(label: str, target: str, value: float | None) -> None:
        if value is not None:
            rounds.setdefault((re.sub(r" \(round \d+\)$", "", label), target), []).append(value)

    def res(label: str, target: str) -> dict[str, Any] | None:
        return (groups.get(label, {}).get(target) or {}).get("result")

    for label in order:
        hub = res(label, "hub")
        if hub is None:
            continue
        scenario = groups[label]["hub"]["scenario"]
        if scenario == "channels" and res(label, "mosquitto"):
            r = ratio(hub.get("deliveries_per_s"), res(label, "mosquitto").get("deliveries_per_s"))
            decided(label, "≥ 1.5× Mosquitto's deliveries/s, nothing lost", r if not hub.get("lost") else 0.0)
            rows.append([label, "≥ 1.5× Mosquitto's deliveries/s, nothing lost",
                         f"{fmt_ratio(r)} ({fmt_num(hub.get('deliveries_per_s'))} vs "
                         f"{fmt_num(res(label, 'mosquitto').get('deliveries_per_s'))}), lost {fmt_num(hub.get('lost'))}",
                         "yes" if r is not None and r >= 1.5 and not hub.get("lost") else "**no**"])
        elif scenario == "rate" and groups[label]["hub"]["params"].get("subscribers") == 1000:
            p99 = latency(groups[label]["hub"])
            gc = hub.get("gc") or {}
            rows.append([label, "kept up, p99 ≤ 100 ms",
                         f"p99 {fmt_num(p99)} ms, max {fmt_num((hub.get('latency_ms') or {}).get('max'))} ms, "
                         f"kept up {fmt_num(hub.get('kept_up'))}; longest GC pause {fmt_num(max(gc.get('max_ms') or [0]))} ms",
                         "yes" if p99 is not None and p99 <= 100 and hub.get("kept_up") else "**no**"])
        elif scenario == "connections":
            rss, cps = hub.get("rss_per_conn_kib"), hub.get("connects_per_s")
            rows.append([label, "≤ 8 KiB RSS per idle connection", f"{fmt_num(rss)} KiB"
                         + (f" (Redis {fmt_num(res(label, 'redis').get('rss_per_conn_kib'))})" if res(label, "redis") else ""),
                         "yes" if rss is not None and rss <= 8 else "**no**"])
            decided(label, "≥ 5,000 connects/s", cps)
            rows.append([label, "≥ 5,000 connects/s", f"{fmt_num(cps)}/s"
                         + (f" (Mosquitto {fmt_num(res(label, 'mosquitto').get('connects_per_s'))})" if res(label, "mosquitto") else ""),
                         "yes" if cps is not None and cps >= 5000 else "**no**"])
        elif scenario == "command_api" and hub.get("per_request") == 1 and res(label, "h11"):
            h11 = res(label, "h11")
            r = ratio(hub.get("requests_per_s"), h11.get("requests_per_s"))
            decided(label, "≥ 0.8× a bare h11 server", r)
            rows.append([label, "≥ 0.8× a bare h11 server", f"{fmt_ratio(r)} ({fmt_num(hub.get('requests_per_s'))} vs "
                         f"{fmt_num(h11.get('requests_per_s'))} requests/s)", "yes" if r is not None and r >= 0.8 else "**no**"])
        elif scenario == "burst" and hub.get("subscribers") == 1000 and res(label, "redis"):
            r = ratio(hub.get("deliveries_per_s"), res(label, "redis").get("deliveries_per_s"))
            rows.append([label, "no regression; aim at ≥ 0.5× Redis", f"{fmt_ratio(r)} of Redis' deliveries/s",
                         "yes" if r is not None and r >= 0.5 else "**no**"])
    if not rows:
        return []
    for (base, target), values in rounds.items():
        if len(values) > 1:
            mid = statistics.median(values)
            figure = f"{fmt_num(mid)}/s" if target.endswith("connects/s") else fmt_ratio(mid)
            bound = 5000 if target.endswith("connects/s") else 1.5 if "Mosquitto" in target else 0.8
            rows.append([f"{base}, median of {len(values)} rounds", target,
                         f"{figure} (rounds: {', '.join(fmt_num(v) if bound == 5000 else fmt_ratio(v) for v in values)})",
                         "yes" if mid >= bound else "**no**"])
    return ["## Issue 20 targets", "", table(["scenario", "target", "this run", "met"], rows), ""]


def gc_section(groups: dict[str, dict[str, dict[str, Any]]], order: list[str]) -> list[str]:
    """The hub's collector pauses per scenario (hub/gctune.py): collections per generation, longest pause, histogram."""
    rows = []
    for label in order:
        for target in ("hub", "hub-mqtt"):
            result = (groups[label].get(target) or {}).get("result") or {}
            gc = result.get("gc")
            if gc:
                hist = ", ".join(f"{k} {v}" for k, v in gc.get("hist", {}).items())
                hot = result.get("gc_hot")
                rows.append([label, target, "/".join(str(n) for n in gc.get("collections", [])),
                             fmt_num(max(gc.get("max_ms") or [0])), fmt_num(gc.get("total_ms")), fmt_num(gc.get("cpu_ms")),
                             hist or "none",
                             f"{'/'.join(str(n) for n in hot['collections'])}, longest {fmt_num(hot['max_ms'])} ms" if hot else "—"])
    if not rows:
        return []
    return ["## GC pauses (hub)", "",
            "Collections per generation (0/1/2) while serving, the longest pause and the total (wall ms: a pause includes "
            "time the process was descheduled, so CPU ms is given too), and the pause histogram; where the scenario "
            "tells them apart, the pauses of its hot phase alone (first publish to last delivery: not connecting or "
            "disconnecting its clients).", "",
            table(["scenario", "target", "collections", "longest ms", "total ms", "CPU ms", "histogram", "hot phase"], rows), ""]


def write_charts(records: list[dict[str, Any]], outdir: str | Path) -> list[Path]:
    """throughput.png (bars per target for each scenario), latency.png (p50/p99/max), connections.png (RSS per connection)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    groups = by_label(records)
    order = labels_in_order(records)
    colors = {"hub": "#1f77b4", "mosquitto": "#2ca02c", "websockets": "#ff7f0e", "socketio": "#d62728",
              "hub-mqtt": "#9467bd", "redis": "#8c564b", "h11": "#7f7f7f"}
    written: list[Path] = []

    def grid(n: int) -> tuple[Any, list[Any]]:
        cols = min(3, max(1, n))
        rows = -(-n // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(5 * cols, 3.6 * rows), squeeze=False)
        flat = [ax for row in axes for ax in row]
        for ax in flat[n:]:
            ax.axis("off")
        return fig, flat

    tp_labels = [lab for lab in order if any(throughput(r) is not None for r in groups[lab].values())]
    if tp_labels:
        fig, axes = grid(len(tp_labels))
        for ax, label in zip(axes, tp_labels, strict=False):
            g = groups[label]
            names = [t for t in TARGETS if t in g and throughput(g[t]) is not None]
            values = [throughput(g[t]) for t in names]
            bars = ax.bar(names, values, color=[colors.get(t, "grey") for t in names])
            for bar, t in zip(bars, names, strict=True):
                res = g[t]["result"]
                behind = g[t]["scenario"] == "rate" and res.get("kept_up") is False
                mark = " *" if res.get("lost") or behind else ""
                ax.annotate(f"{bar.get_height():,.0f}{mark}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
            ax.set_title(label, fontsize=9)
            ax.set_ylabel(THROUGHPUT[g[names[0]]["scenario"]][1] if names else "")
            ax.tick_params(axis="x", labelsize=8)
        fig.suptitle("Throughput (* = not all delivered, or fell behind the rate)", fontsize=10)
        fig.tight_layout()
        path = outdir / "throughput.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    lat_labels = [lab for lab in order if any(latency(r) is not None for r in groups[lab].values())]
    if lat_labels:
        fig, axes = grid(len(lat_labels))
        for ax, label in zip(axes, lat_labels, strict=False):
            g = groups[label]
            names = [t for t in TARGETS if t in g and latency(g[t]) is not None]
            width = 0.8 / 3
            for i, pct in enumerate(("p50", "p99", "max")):
                xs = [j + (i - 1) * width for j in range(len(names))]
                ax.bar(xs, [max(latency(g[t], pct) or 0, 0.01) for t in names], width, label=pct,
                       color=["#9ecae1", "#3182bd", "#08519c"][i])
            ax.set_xticks(range(len(names)), names, fontsize=8)
            ax.set_yscale("log")
            lows = [latency(g[t], "p50") or 0.01 for t in names]
            if lows:
                ax.set_ylim(bottom=max(min(lows) / 3, 0.005))  # bars start well below the smallest, so all are visible
            ax.set_ylabel("ms (log)")
            ax.set_title(label, fontsize=9)
            ax.legend(fontsize=7)
        fig.suptitle("Latency p50 / p99 / max", fontsize=10)
        fig.tight_layout()
        path = outdir / "latency.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    conn_labels = [lab for lab in order if any(r["scenario"] == "connections" and r.get("result") for r in groups[lab].values())]
    if conn_labels:
        fig, axes = grid(len(conn_labels))
        for ax, label in zip(axes, conn_labels, strict=False):
            g = groups[label]
            names = [t for t in TARGETS if t in g and g[t].get("result")]
            values = [g[t]["result"].get("rss_per_conn_kib", 0) for t in names]
            bars = ax.bar(names, values, color=[colors.get(t, "grey") for t in names])
            for bar in bars:
                ax.annotate(f"{bar.get_height():.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center", va="bottom", fontsize=8)
            ax.set_title(label, fontsize=9)
            ax.set_ylabel("server RSS KiB per connection")
        fig.suptitle("Memory per idle connection", fontsize=10)
        fig.tight_layout()
        path = outdir / "connections.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
