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
