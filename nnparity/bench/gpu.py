"""The GPU half of the benchmarks: both networks on one CUDA device (``--device cuda`` / ``all``).

Configurations: the CPU's MLPs and ``large-8192`` (large at batch 8192; ``--quick`` leaves out
both large ones), or the ones ``--config`` names, any of the CPU's (the sequence models char_lstm
and tiny_gpt, the CNNs: every side is built from the configuration's spec and batches).

Sides, each a factory ``make(cfg, op, dtype) -> step()`` as in nnparity/bench/sides.py:

- ``scratch_cupy``: the scratch Network, loss and optimizer built with ``xp = cupy`` (the same
  code as on the CPU), the batches moved to the device once;
- ``torch_fp32`` (TF32 off), ``torch_tf32`` (TF32 matmuls), ``torch_bf16`` (bf16 autocast around
  forward and loss): torch eager on CUDA; float64 runs time ``torch_fp64`` only;
- ``torch_graphs``: the whole SGD train step captured once in a CUDA graph (static input
  buffers, the pattern of torch's CUDA-graphs notes) and replayed;
- ``scratch_loop`` / ``lightning``: the real training loops on the device (mean step of a run,
  the device synchronised at its end; not on the large configurations).

Method: the device is synchronised (``torch.cuda.synchronize()``, which waits for CuPy's stream
too) before and after every block of calls; a block lasts ~1/5 of ``min_run_time``; the median
per call over the blocks is reported with its spread. For each configuration: the GPU's
matrix-product rate at its own GEMM shapes, in every precision timed (fp32, tf32, bf16; fp64 for
float64), so each train step has a fraction of the peak at its precision; GPU activities
(kernels, copies, memsets, from torch.profiler's CUPTI trace, which sees CuPy's kernels too) per
train step on the tiny configuration; peak device memory per side (torch: the caching
allocator's max allocated and reserved; scratch: a fresh CuPy memory pool's bytes held, which
it never gives back, so its high-water mark).
"""
from __future__ import annotations

import itertools
import statistics
import time

from nnparity.bench.configs import CONFIGS, Config, config
from nnparity.bench.formatting import fmt_bytes, fmt_time
from nnparity.bench.machine import gemm_list
from nnparity.bench.run import each_side
from nnparity.bench.sides import Skip

#: the GPU's configurations: the CPU's MLPs, and the large one at batch 8192 too
LARGE_8192 = "large-8192"
QUICK_SKIPS = ("large", LARGE_8192)
GPU_OPS = ("forward", "train_sgd", "train_adam")
PRECISIONS = {"float32": ("fp32", "tf32", "bf16"), "float64": ("fp64",)}
STEP_SIDES = ("scratch_cupy", "torch_fp32", "torch_tf32", "torch_bf16", "torch_fp64", "torch_graphs")
LOOP_SIDES = ("scratch_loop", "lightning")


def gpu_config(name: str) -> Config:
    if name == LARGE_8192:
        base = config("large")
        return Config(LARGE_8192, base.widths, 8192)
    return config(name)


def config_names(quick: bool, named=None) -> list[str]:
    """The configurations ``--config`` names (any of the CPU's), else the MLPs and large-8192
    (``--quick``: less the large ones)."""
    if named:
        return list(named)
    return [n for n in (*CONFIGS, LARGE_8192) if not (quick and n in QUICK_SKIPS)]


def sync() -> None:
    import torch

    torch.cuda.synchronize()


def timed_step(step, min_run_time: float = 0.3, synchronize=sync) -> dict:
    """Median seconds per call of ``step``, the device synchronised around every block of calls."""
    step()
    synchronize()
    t0 = time.perf_counter()
    step()
    synchronize()
    once = time.perf_counter() - t0
    per_block = max(1, int(min_run_time / 5 / max(once, 1e-7)))
    blocks, deadline = [], time.perf_counter() + min_run_time
    while len(blocks) < 3 or (time.perf_counter() < deadline and len(blocks) < 50):
        synchronize()
        t0 = time.perf_counter()
        for _ in range(per_block):
            step()
        synchronize()
        blocks.append((time.perf_counter() - t0) / per_block)
    q = statistics.quantiles(blocks, n=4)
    return {"median_s": statistics.median(blocks), "iqr_s": q[2] - q[0], "runs": len(blocks), "per_run": per_block}


# ------------------------------------------------------------------------------------ sides


def scratch_device(cfg, op: str, dtype: str, xp):
    """The scratch step on the array module ``xp`` (CuPy here; the test suite's strict namespace
    proves it makes no host round-trip)."""
    from scratch.network import Network, build_loss
    from scratch.optimizers import make_optimizer

    spec = cfg.spec(dtype, op)
    net, loss = Network.from_spec(spec, xp=xp), build_loss(spec, xp=xp)
    batches = itertools.cycle([(xp.asarray(x), xp.asarray(y)) for x, y in cfg.batches(dtype, 2)])
    if op == "forward":
        return lambda: net.forward(next(batches)[0])
    optimizer = make_optimizer(spec.optimizer, net.parameters())

    def step():
        x, y = next(batches)
        loss.forward(net.forward(x), y)
        net.backward(loss.backward(), input_grad=False)
        optimizer.step(net.gradients())
    return step


def scratch_cupy(cfg, op, dtype):
    try:
        import cupy
    except ImportError:
        raise Skip("CuPy is not installed (pip install cupy-cuda12x or cupy-cuda13x)") from None
    return scratch_device(cfg, op, dtype, cupy)


def _torch_side(precision: str):
    def make(cfg, op, dtype):
        import torch

        from torch_ref.model import build, build_loss
        from torch_ref.optimizers import make_torch_optimizer

        if (precision == "fp64") != (dtype == "float64"):
            raise Skip(f"{precision} is for {'float64' if precision == 'fp64' else 'float32'} runs")
        torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
        torch.backends.cudnn.allow_tf32 = precision == "tf32"
        spec = cfg.spec(dtype, op)
        model, loss_fn = build(spec).to("cuda"), build_loss(spec)
        batches = itertools.cycle([(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda())
                                   for x, y in cfg.batches(dtype, 2)])
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=precision == "bf16")
        if op == "forward":
            def forward():
                with torch.no_grad(), autocast:
                    return model(next(batches)[0])
            return forward
        optimizer = make_torch_optimizer(spec.optimizer, model.parameters())

        def step():
            x, y = next(batches)
            optimizer.zero_grad(set_to_none=True)
            with autocast:
                value = loss_fn(model(x), y)
            value.backward()
            optimizer.step()
        return step
    return make


torch_fp32, torch_tf32, torch_bf16, torch_fp64 = (_torch_side(p) for p in ("fp32", "tf32", "bf16", "fp64"))


def torch_graphs(cfg, op, dtype):
    """The SGD train step captured in one CUDA graph; each call copies the next batch into the
    graph's static inputs and replays it."""
    import torch

    from torch_ref.model import build, build_loss
    from torch_ref.optimizers import make_torch_optimizer

    if op != "train_sgd":
        raise Skip("CUDA graphs: timed on the SGD train step only")
    torch.backends.cuda.matmul.allow_tf32 = False
    spec = cfg.spec(dtype, op)
    model, loss_fn = build(spec).to("cuda"), build_loss(spec)
    optimizer = make_torch_optimizer(spec.optimizer, model.parameters())
    batches = [(torch.from_numpy(x).cuda(), torch.from_numpy(y).cuda()) for x, y in cfg.batches(dtype, 2)]
    static_x, static_y = batches[0][0].clone(), batches[0][1].clone()
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):     # warm-up on a side stream, as capture requires
        for _ in range(3):
            optimizer.zero_grad(set_to_none=True)
            loss_fn(model(static_x), static_y).backward()
            optimizer.step()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    optimizer.zero_grad(set_to_none=True)
    with torch.cuda.graph(graph):
        loss_fn(model(static_x), static_y).backward()
        optimizer.step()
    rotation = itertools.cycle(batches)

    def step():
        x, y = next(rotation)
        static_x.copy_(x)
        static_y.copy_(y)
        graph.replay()
    return step


def training_loop_gpu(backend: str, cfg, dtype: str) -> dict:
    """The scratch loop or Lightning on the device: the mean step of a 2-epoch run (the device is
    synchronised at the run's end, so queued work is counted)."""
    from nnparity.bench.sides import training_loop

    seconds, steps = training_loop(backend, cfg, dtype, 1, steps=40, device="cuda", whole_run=True)
    return {"median_s": seconds, "iqr_s": None, "runs": steps, "per_run": 1, "note": "mean over the run"}


# -------------------------------------------------------------------- the device's limits


def gemm_peak(cfg, precision: str, min_run_time: float = 0.1) -> dict:
    """The device's matrix-product rate at the configuration's GEMM shapes in ``precision``:
    Σ FLOPs / Σ seconds over the step's products, and the best single shape."""
    import torch

    dtype = {"fp32": torch.float32, "tf32": torch.float32, "bf16": torch.bfloat16, "fp64": torch.float64}[precision]
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    seconds, best = {}, 0.0
    for layout, m, k, n in dict.fromkeys(gemm_list(cfg)):
        a = torch.randn((k, m) if layout == "TN" else (m, k), device="cuda", dtype=dtype)
        b = torch.randn((n, k) if layout == "NT" else (k, n), device="cuda", dtype=dtype)
        a_, b_ = (a.T if layout == "TN" else a), (b.T if layout == "NT" else b)
        t = timed_step(lambda: torch.mm(a_, b_), min_run_time)["median_s"]
        seconds[(layout, m, k, n)] = t
        best = max(best, 2 * m * k * n / t)
    total = sum(2 * m * k * n for _, m, k, n in gemm_list(cfg))
    return {"set_flops": total / sum(seconds[s] for s in gemm_list(cfg)), "best_shape_flops": best}


def activities_per_step(step, steps: int = 10) -> float | str:
    """GPU activities (kernels, copies, memsets) per call of ``step``, from torch.profiler's CUDA
    (CUPTI) trace; the reason as a string where the profiler cannot run."""
    import torch
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    step()
    sync()
    try:
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(steps):
                step()
            torch.cuda.synchronize()
        return sum(1 for e in prof.events() if e.device_type == DeviceType.CUDA) / steps
    except Exception as exc:   # CUPTI missing or busy: reported, not fatal
        return f"profiler failed: {type(exc).__name__}: {exc}"


class DeviceMemory:
    """Peak device memory of the side built inside ``with``: torch's allocator peaks, and a fresh
    CuPy pool (set as CuPy's allocator for the block) whose bytes held are its high-water mark."""

    def __enter__(self):
        import torch

        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.pool = None
        try:
            import cupy

            self.pool = cupy.cuda.MemoryPool()
            cupy.cuda.set_allocator(self.pool.malloc)
        except ImportError:
            pass
        return self

    def read(self) -> dict:
        import torch

        out = {"torch_max_allocated_bytes": torch.cuda.max_memory_allocated(),
               "torch_max_reserved_bytes": torch.cuda.max_memory_reserved()}
        if self.pool is not None:
            out["cupy_pool_held_bytes"] = self.pool.total_bytes()
        return out

    def __exit__(self, *exc):
        if self.pool is not None:
            import cupy

            cupy.cuda.set_allocator(cupy.get_default_memory_pool().malloc)
            self.pool.free_all_blocks()
        return False


# --------------------------------------------------------------------------------- the run


def device_info() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    info = {"name": props.name, "memory_bytes": props.total_memory, "capability": f"{props.major}.{props.minor}",
            "torch": torch.__version__, "torch_cuda": torch.version.cuda}
    try:
        import cupy

        info.update(cupy=cupy.__version__, cuda_runtime=cupy.cuda.runtime.runtimeGetVersion(),
                    cuda_driver=cupy.cuda.runtime.driverGetVersion())
    except ImportError:
        info["cupy"] = None
    return info


def run_config(cfg, dtype: str, quick: bool, bar=None) -> dict:
    min_run_time = 0.1 if quick else 0.3
    results: dict[str, dict] = {side: {} for side in STEP_SIDES}
    for op, side in each_side(GPU_OPS, STEP_SIDES, bar, f"cuda {cfg.name}"):
        try:
            with DeviceMemory() as memory:
                step = globals()[side](cfg, op, dtype)
                row = timed_step(step, min_run_time)
                row["memory"] = memory.read()
            if cfg.name == "tiny" and op == "train_sgd":
                row["activities_per_step"] = activities_per_step(step)
            results[side][op] = row
        except Skip as exc:
            results[side][op] = {"skipped": str(exc)}
        except Exception as exc:   # one side failing (a capture torch refuses, say) is reported
            results[side][op] = {"skipped": f"failed: {type(exc).__name__}: {exc}"}
        finally:
            step = None
    for side in LOOP_SIDES:
        if quick or cfg.batch * sum(k * n for k, n in zip(cfg.widths[:-1], cfg.widths[1:])) > 1e9:
            results[side] = {"train_sgd": {"skipped": "--quick or a large configuration"}}
            continue
        try:
            results[side] = {"train_sgd": training_loop_gpu("scratch" if side == "scratch_loop" else "lightning",
                                                             cfg, dtype)}
        except Exception as exc:
            results[side] = {"train_sgd": {"skipped": f"failed: {type(exc).__name__}: {exc}"}}
    peaks = {p: gemm_peak(cfg, p, 0.05 if quick else 0.1) for p in PRECISIONS[dtype]}
    _fractions(cfg, results, peaks)
    layers = {"layers": [layer.kind for layer in cfg.spec().layers]} if hasattr(cfg, "gemm_list") else {}
    return {"widths": list(cfg.widths), **layers, "batch": cfg.batch, "train_flops": cfg.train_flops,
            "gemm_peaks": peaks, "results": results}


def _fractions(cfg, results: dict, peaks: dict) -> None:
    """Each train step's rate as a fraction of the GEMM peak at its precision, and its ratio to torch fp32."""
    base = "fp64" if "fp64" in peaks else "fp32"
    precision = {"torch_tf32": "tf32", "torch_bf16": "bf16"}
    for side, ops in results.items():
        for op, row in ops.items():
            t = row.get("median_s")
            if t is None:
                continue
            reference = results.get(f"torch_{base}", {}).get(op, {}).get("median_s")
            if reference:
                row["speedup_vs_torch_eager"] = reference / t
            peak = peaks.get(precision.get(side, base))
            if op.startswith("train") and peak:
                row["achieved_flops"] = cfg.train_flops / t
                row["fraction_of_gemm_peak"] = row["achieved_flops"] / peak["set_flops"]


def run_all(dtype: str, quick: bool, bar=None, named=None) -> dict:
    return {"device": device_info(), "configs": {name: run_config(gpu_config(name), dtype, quick, bar)
                                                 for name in config_names(quick, named)}}


def steps_total(quick: bool, named=None) -> int:
    return len(config_names(quick, named)) * len(GPU_OPS) * len(STEP_SIDES)


def format_table(gpu: dict) -> str:

    device = gpu["device"]
    lines = [f"\nGPU: {device['name']} ({device['memory_bytes'] / 2**30:.0f} GiB), torch {device['torch']} "
             f"(CUDA {device['torch_cuda']}), CuPy {device.get('cupy')}"]
    for name, c in gpu["configs"].items():
        peaks = ", ".join(f"{p} {v['set_flops'] / 1e12:.1f}" for p, v in c["gemm_peaks"].items())
        shape = "-".join(c["layers"]) if "layers" in c else "-".join(map(str, c["widths"]))
        lines.append(f"\n{name}: {shape}, batch {c['batch']}  (GEMM peak at its shapes, "
                     f"TFLOP/s: {peaks})")
        lines.append(f"  {'side':16} {'forward':>10} {'train SGD':>10} {'train Adam':>10} {'SGD vs torch':>12} "
                     f"{'SGD %peak':>9} {'peak mem':>9} {'GPU acts/step':>13}")
        for side, ops in c["results"].items():
            sgd = ops.get("train_sgd", {})
            cells = [fmt_time(ops.get(op, {}).get("median_s")) for op in GPU_OPS]
            if all(x == "-" for x in cells):
                lines.append(f"  {side:16} skipped: {sgd.get('skipped', '')}")
                continue
            vs = f"{sgd['speedup_vs_torch_eager']:.2f}x" if "speedup_vs_torch_eager" in sgd else "-"
            frac = f"{100 * sgd['fraction_of_gemm_peak']:.1f}%" if "fraction_of_gemm_peak" in sgd else "-"
            mem = sgd.get("memory", {})
            held = mem.get("cupy_pool_held_bytes") if side == "scratch_cupy" else mem.get("torch_max_allocated_bytes")
            acts = sgd.get("activities_per_step", "-")
            acts = f"{acts:.0f}" if isinstance(acts, float) else "-"
            lines.append(f"  {side:16} " + " ".join(f"{x:>10}" for x in cells)
                         + f" {vs:>12} {frac:>9} {fmt_bytes(held):>9} {acts:>13}")
    lines.append("\nvs torch: torch eager fp32 (fp64 for float64) over this side. %peak: the train step's "
                 "FLOPs (the products it does, as on the CPU) over the GPU's GEMM rate at the configuration's "
                 "shapes in the side's precision. "
                 "peak mem: scratch, the CuPy pool's bytes held; torch, max allocated.")
    return "\n".join(lines)


def plot(gpu: dict, path: str) -> None:
    """SGD train-step time per configuration and side, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(gpu["configs"])
    sides = [s for s in (*STEP_SIDES, *LOOP_SIDES)
             if any("median_s" in gpu["configs"][n]["results"].get(s, {}).get("train_sgd", {}) for n in names)]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / max(len(sides), 1)
    for i, side in enumerate(sides):
        times = [gpu["configs"][n]["results"].get(side, {}).get("train_sgd", {}).get("median_s") for n in names]
        ax.bar([j + i * width for j in range(len(names))], [t or 0 for t in times], width, label=side)
    ax.set_yscale("log")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names)
    ax.set_ylabel("SGD train step (s)")
    ax.set_title(f"{gpu['device']['name']}: train step per side")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
