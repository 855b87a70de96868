"""This process's memory and CPU use as NanoMQ's `update_process_info` reads them (Linux `/proc`; zeros elsewhere)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass
class ProcessSampler:
    """CPU use since the previous sample, as a percentage of the whole machine's CPU time (all cores), and the
    resident set size in bytes. The first sample measures from boot, as NanoMQ's static counters start at 0."""

    last_cpu: int = 0
    last_proc: int = 0

    def sample(self) -> tuple[int, float]:
        """(memory bytes, cpu percent); (0, 0.0) where /proc cannot be read."""
        try:
            with open("/proc/stat", "rb") as f:
                cpu = sum(int(v) for v in f.readline().split()[1:9])
            with open(f"/proc/{os.getpid()}/stat", "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()  # after the command name, which may hold spaces
        except (OSError, ValueError, IndexError):
            return 0, 0.0
        # fields[0] is the state (field 3): utime..cstime are fields 14-17, rss field 24
        proc = sum(int(v) for v in fields[11:15])
        memory = int(fields[21]) * os.sysconf("SC_PAGESIZE")
        span = cpu - self.last_cpu
        percent = 100.0 * (proc - self.last_proc) / (span if span else -1)
        self.last_cpu, self.last_proc = cpu, proc
        return memory, percent if percent > 0 else 0.0  # `cpu_percent <= 0 ? 0 : cpu_percent` (never -0.00)
