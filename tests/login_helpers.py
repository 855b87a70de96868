"""What the login-blocking tests share: a clock they move by hand, and one sample read from a /metrics page."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


class Clock:
    """An injectable clock for `LoginLimiter.clock`: time moves only when a test sets `now`."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def metric(text: str, name: str, **labels: str) -> float:
    """The value of sample `name` with these labels in a Prometheus text page (0 when absent)."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0
