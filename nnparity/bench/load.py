"""Is the machine quiet enough for a timing to mean something?

A ratio of two medians taken on a machine whose other processes, hypervisor (steal) or clock
move under it says more about them than about the sides. ``LoadWatch`` samples ``/proc/stat``
and this process tree's CPU time at the start and end of a run; what the machine's CPUs spent
busy beyond this process tree is *other load*; ``reasons`` says what makes the run unreliable.
"""
from __future__ import annotations

import os
import time

import psutil

OTHER_LOAD_LIMIT = 0.10     # of all cores: other processes busy more than this, the ratios move
STEAL_LIMIT = 0.02          # of all cores: the hypervisor taking more than this
FREQ_DRIFT_LIMIT = 0.10     # a clock that moved by more than this between start and end


def cpu_jiffies() -> dict[str, int] | None:
    """The machine's busy, steal and total jiffies (the `cpu` line of /proc/stat); None off Linux."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return {"busy": user + nice + system + irq + softirq, "steal": steal,
            "total": user + nice + system + idle + iowait + irq + softirq + steal}


def tree_cpu_seconds() -> float:
    """CPU seconds of this process and its children, live and ended."""
    me = psutil.Process()
    t = me.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for child in me.children(recursive=True):
        try:
            c = child.cpu_times()
            total += c.user + c.system
        except psutil.Error:
            pass
    return total


def cpu_mhz() -> float | None:
    freq = psutil.cpu_freq()
    return float(freq.current) if freq and freq.current else None


def classify(other_fraction: float | None, steal_fraction: float | None, mhz_start: float | None,
             mhz_end: float | None) -> list[str]:
    """The reasons (empty: none) that make a run's ratios unreliable."""
    reasons = []
    if other_fraction is not None and other_fraction > OTHER_LOAD_LIMIT:
        reasons.append(f"other processes kept {100 * other_fraction:.0f}% of the CPUs busy "
                       f"(limit {100 * OTHER_LOAD_LIMIT:.0f}%)")
    if steal_fraction is not None and steal_fraction > STEAL_LIMIT:
        reasons.append(f"the hypervisor stole {100 * steal_fraction:.1f}% of the CPU time "
                       f"(limit {100 * STEAL_LIMIT:.0f}%)")
    if mhz_start and mhz_end and abs(mhz_end - mhz_start) / mhz_start > FREQ_DRIFT_LIMIT:
        reasons.append(f"the CPU clock moved from {mhz_start:.0f} to {mhz_end:.0f} MHz")
    return reasons


class LoadWatch:
    """Start at a run's beginning, ``report()`` at its end: the load the run shared the machine with."""

    def __init__(self):
        self.cores = os.cpu_count() or 1
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.start_jiffies, self.start_tree = cpu_jiffies(), tree_cpu_seconds()
        self.start_wall, self.start_mhz = time.monotonic(), cpu_mhz()

    def report(self) -> dict:
        end, tree = cpu_jiffies(), tree_cpu_seconds()
        wall, mhz = time.monotonic() - self.start_wall, cpu_mhz()
        other = steal = None
        if self.start_jiffies and end and end["total"] > self.start_jiffies["total"]:
            total = end["total"] - self.start_jiffies["total"]
            busy = (end["busy"] - self.start_jiffies["busy"]) / self.ticks
            mine = tree - self.start_tree
            other = max(0.0, busy - mine) / (total / self.ticks)
            steal = (end["steal"] - self.start_jiffies["steal"]) / total
        reasons = classify(other, steal, self.start_mhz, mhz)
        return {"seconds": wall, "other_load_fraction": other, "steal_fraction": steal,
                "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
                "mhz": [self.start_mhz, mhz], "reliable": not reasons, "reasons": reasons}


def quiet_check(seconds: float = 0.5) -> list[str]:
    """Before a run: what the machine's CPUs do while this process sleeps ``seconds`` (all of
    their busy time is other load); the reasons it is not quiet, empty when it is."""
    start = cpu_jiffies()
    time.sleep(seconds)
    end = cpu_jiffies()
    if not start or not end or end["total"] <= start["total"]:
        return []
    total = end["total"] - start["total"]
    return classify((end["busy"] - start["busy"]) / total, (end["steal"] - start["steal"]) / total, None, None)
