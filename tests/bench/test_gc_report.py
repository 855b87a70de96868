"""`hub run` applies the GC discipline (hub/gctune.py) and logs its pause report at exit; the bench reads it."""

from bench.common import gc_summary, start_hub
from hub.gctune import GC_LINE, THRESHOLDS, GcPauses


def test_hub_run_reports_gc_pauses_with_its_thresholds():
    hub = start_hub()
    assert hub.stop() == 0
    assert hub.gc is not None, hub.log
    assert hub.gc["thresholds"] == list(THRESHOLDS)
    assert len(hub.gc["collections"]) == 3 and all(isinstance(n, int) for n in hub.gc["collections"])


def test_pause_histogram_bins():
    pauses = GcPauses()
    for gen in (0, 0, 2):
        pauses("start", {"generation": gen})
        pauses("stop", {"generation": gen})
    summary = pauses.summary()
    assert [g["count"] for g in summary["generations"]] == [2, 0, 1]
    assert sum(summary["generations"][0]["hist"]) == 2
    line = GC_LINE + __import__("json").dumps(summary)
    assert gc_summary(["x\n", line + "\n"])["collections"] == [2, 0, 1]


def test_pauses_kept_with_their_times_tell_a_phase_apart():
    import json
    import time

    from bench.common import gc_between, gc_pauses

    pauses = GcPauses(keep=2)
    for gen in (2, 0, 1):
        pauses("start", {"generation": gen})
        pauses("stop", {"generation": gen})
    kept = pauses.summary()["pauses"]
    assert [p[1] for p in kept] == [0, 1]  # the last `keep`
    line = GC_LINE + json.dumps(pauses.summary()) + "\n"
    now = time.time()
    assert gc_between(gc_pauses([line]), now - 60, now + 1)["collections"] == [1, 1, 0]
    assert gc_between(gc_pauses([line]), now + 1, now + 2) == {"collections": [0, 0, 0], "max_ms": 0.0, "total_ms": 0.0}
    assert "pauses" not in GcPauses().summary()  # not kept unless asked (HUB_GC_PAUSES)


def test_the_bench_hub_reports_its_pauses_with_their_times():
    hub = start_hub()
    assert hub.stop() == 0
    assert isinstance(hub.gc_pauses, list), hub.log
