"""The CPU's theoretical floating-point peak, from what /proc/cpuinfo says, with every assumption named.

    peak = cores × FMA units per core × SIMD lanes × 2 (a fused multiply-add is two FLOPs) × clock

- SIMD lanes: the widest vector extension in the flags (``avx512f`` 512 bits, ``avx2``/``avx``
  256, else ``sse2`` 128) over the element's bits (32 for float32, 64 for float64).
- FMA units per core: not in /proc/cpuinfo. Assumed 2 on Intel with AVX-512 or AVX2 and on AMD
  with AVX2; 1 for AVX-512 on AMD (Zen 4 runs a 512-bit FMA on its two 256-bit pipes); 1 without
  the ``fma`` flag (one multiply and one add port, counted as one unit). Some Intel parts have
  one 512-bit unit: then the peak printed is twice the real one.
- cores: physical cores (``cpu cores`` × sockets), at most the threads the run uses; a
  hyperthread shares its core's units.
- clock: the highest ``cpu MHz`` listed, or psutil's maximum where the OS reports one; a turbo
  clock above it would raise the real peak.
"""
from __future__ import annotations

import re


def parse_cpuinfo(text: str) -> dict:
    """vendor, model, flags (of the first processor), MHz of every processor, physical cores, logical CPUs."""
    blocks = [b for b in text.strip().split("\n\n") if b.strip()]
    fields = [dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in b.splitlines()))
              for b in blocks]
    first = fields[0] if fields else {}
    mhz = [float(f["cpu MHz"]) for f in fields if re.fullmatch(r"[0-9.]+", f.get("cpu MHz", ""))]
    sockets = len({f.get("physical id", "0") for f in fields}) or 1
    per_socket = int(first["cpu cores"]) if first.get("cpu cores", "").isdigit() else None
    return {"vendor": first.get("vendor_id", ""), "model": first.get("model name", ""),
            "flags": set(first.get("flags", "").split()), "mhz": mhz,
            "physical_cores": per_socket * sockets if per_socket else None, "logical_cpus": len(fields)}


def theoretical_peak(info: dict, dtype: str, threads: int, max_mhz: float | None = None) -> dict:
    """FLOP/s the CPU could reach at most with ``threads`` threads, and the assumptions behind it."""
    flags = info["flags"]
    simd_bits, ext = next(((bits, name) for name, bits in (("avx512f", 512), ("avx2", 256), ("avx", 256),
                                                            ("sse2", 128)) if name in flags), (64, "scalar"))
    lanes = simd_bits // (32 if dtype == "float32" else 64)
    amd = info["vendor"] == "AuthenticAMD"
    units = (1 if amd and ext == "avx512f" else 2) if "fma" in flags else 1
    physical = info["physical_cores"] or info["logical_cpus"] or 1
    cores = min(threads, physical)
    mhz = max_mhz or (max(info["mhz"]) if info["mhz"] else None)
    peak = cores * units * lanes * 2 * mhz * 1e6 if mhz else None
    assumptions = [
        f"{cores} core(s): {physical} physical, {threads} thread(s) used",
        f"{units} FMA unit(s) per core ({ext}{', ' + info['vendor'] if info['vendor'] else ''}; "
        f"not in /proc/cpuinfo, assumed)",
        f"{lanes} {dtype} lanes per {simd_bits}-bit vector ({ext})",
        "2 FLOPs per fused multiply-add",
        f"clock {mhz:.0f} MHz ({'the OS maximum' if max_mhz else 'highest cpu MHz listed; turbo not counted'})"
        if mhz else "clock unknown: no peak",
    ]
    return {"flops": peak, "cores": cores, "fma_units": units, "simd_bits": simd_bits, "extension": ext,
            "lanes": lanes, "mhz": mhz, "assumptions": assumptions}


def machine_peak(dtype: str, threads: int) -> dict:
    """theoretical_peak of this machine (Linux: /proc/cpuinfo; elsewhere no peak)."""
    try:
        with open("/proc/cpuinfo") as f:
            info = parse_cpuinfo(f.read())
    except OSError:
        return {"flops": None, "assumptions": ["no /proc/cpuinfo: no theoretical peak"]}
    try:
        import psutil

        freq = psutil.cpu_freq()
        max_mhz = float(freq.max) if freq and freq.max else None
    except (ImportError, RuntimeError, OSError):
        max_mhz = None
    return theoretical_peak(info, dtype, threads, max_mhz)
