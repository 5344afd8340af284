"""How the tables write a time and a size."""
from __future__ import annotations


def fmt_time(seconds) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def fmt_bytes(n) -> str:
    return "-" if n is None else f"{n / 2**20:.0f} MiB"
