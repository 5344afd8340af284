"""The benchmark harness: its command line and the fields of its JSON (never its timings)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnparity.bench.cli import main
from nnparity.bench.configs import CONFIGS, OPS, Config, config
from conftest import cuda_ready

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv, flag", [
    (["--dtype", "float16"], "--dtype"),
    (["--device", "tpu"], "--device"),
    (["--threads", "0"], "--threads"),
    (["--threads", "many"], "--threads"),
    (["--plot", "out.svg"], "--plot"),
    (["--plot", "/no/such/folder/x.png"], "--plot"),
    (["--config", "huge"], "--config"),
    (["--json", "out.json"], "unrecognized arguments"),
])
def test_bench_cli_bad_input(argv, flag, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err and "Traceback" not in err


def test_bench_cli_cuda_without_gpu(capsys):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    assert main(["--device", "cuda"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--device cuda" in err


def test_bench_configs_match_specs():
    for name, (widths, batch) in CONFIGS.items():
        assert config(name) == Config(name, widths, batch)


def test_bench_flops_formula():
    # 2-4-2 at batch 4: forward 2·B·(2·4 + 4·2), dW 2·B·(2·4 + 4·2), dL/dx of the second layer only
    cfg = Config("t", (2, 4, 2), 4)
    assert cfg.train_flops == 2 * 4 * 16 + 2 * 4 * 16 + 2 * 4 * (4 * 2)


def test_bench_flops_formula_leaves_out_the_first_layers_input_gradient():
    cfg = config("wide")
    full = 6 * cfg.batch * sum(k * n for k, n in zip(cfg.widths[:-1], cfg.widths[1:]))
    assert cfg.train_flops == full - 2 * cfg.batch * cfg.widths[0] * cfg.widths[1]


def test_bench_bracketing_rate_takes_the_higher_and_reports_the_drift():
    from nnparity.bench.run import bracketing_rate

    rate = bracketing_rate({"best_flops": 100.0, "best_set": "numpy_warm", "best_spread": 0.01},
                           {"best_flops": 80.0, "best_set": "torch_warm", "best_spread": 0.02})
    assert rate["best_flops"] == 100.0 and rate["best_set"] == "numpy_warm" and rate["drift"] == pytest.approx(0.2)
    assert rate["best_spread"] == 0.01 and (rate["before_flops"], rate["after_flops"]) == (100.0, 80.0)


def test_bench_gemm_list_is_what_the_flops_count():
    from nnparity.bench.configs import config_names
    from nnparity.bench.machine import gemm_list

    for name in config_names():
        cfg = config(name)
        assert sorted(2 * m * k * n for _, m, k, n in gemm_list(cfg)) == \
            sorted(2 * m * k * n for m, k, n in cfg.gemm_shapes)


def test_bench_cnn_configs_are_their_specs():
    from nnparity.bench.configs import IMAGE_CONFIGS, ImageConfig, config_names

    assert config_names()[:len(CONFIGS) + 2] == [*CONFIGS, *IMAGE_CONFIGS]
    for name, shape, batch in (("lenet", (1, 28, 28), 64), ("resnet_small", (3, 32, 32), 128)):
        cfg = config(name)
        assert isinstance(cfg, ImageConfig) and cfg.batch == batch and cfg.spec().shapes[0] == shape
        assert cfg.spec("float64", "train_adam").optimizer.name == "adam" and cfg.spec("float64").dtype == "float64"
        x, y = cfg.batches("float32", 2)[1]
        assert x.shape == (batch, *shape) and x.dtype == "float32" and y.shape == (batch,) and 0 <= y.min() <= y.max() < 10


def test_bench_lenet_flops_by_hand():
    """LeNet's train step, counted by hand: multiply-adds per image of conv1 6·1·5·5·28·28 = 117,600,
    conv2 16·6·5·5·10·10 = 240,000, dense 400·120 + 120·84 + 84·10 = 58,920; a train step does each
    three times (forward, dW, dx) less conv1's dx, 2 FLOPs each, for 64 images."""
    forward = 117_600 + 240_000 + 58_920
    assert config("lenet").train_flops == 2 * 64 * (3 * forward - 117_600)


def test_bench_resnet_products_follow_its_layers():
    """resnet_small's products: 9 convolutions as im2col GEMMs (the stem, two per block, the two 1x1
    projections) and the dense layer, each forward with k = C·kh·kw and n = N·OH·OW; three products
    per layer, less the stem's dx."""
    cfg = config("resnet_small")
    forward = [(m, k, n) for layout, m, k, n in cfg.gemm_list() if layout == "NN"]
    assert (16, 27, 128 * 32 * 32) == forward[0] and (16, 144, 128 * 32 * 32) in forward
    assert (32, 16, 128 * 16 * 16) in forward and (64, 32, 128 * 8 * 8) in forward      # the 1x1 projections
    assert (128, 64, 10) == forward[-1]
    assert len(forward) == 10 and len(cfg.gemm_list()) == 3 * 10 - 1


@pytest.mark.parametrize("side", ["scratch", "torch_eager"])
def test_bench_cnn_sides_take_a_step(side):
    """Each side builds LeNet's Adam train step and runs it."""
    from nnparity.bench import sides

    step = getattr(sides, side)(config("lenet"), "train_adam", "float32", 1)
    step()


@pytest.mark.slow
def test_bench_cnn_jax_side_takes_a_step():
    """The JAX side's CNN (lax's convolution and windows, batchnorm, residual blocks) builds and runs
    resnet_small's and LeNet's Adam steps, in a process of its own (JAX's threads and this process's
    forks do not mix); skipped where JAX is not installed."""
    pytest.importorskip("jax")
    code = ("from nnparity.bench import sides; from nnparity.bench.configs import ImageConfig\n"
            "for name, batch in (('lenet', 8), ('resnet_small', 4)):\n"
            "    sides.jax_jit(ImageConfig(name, batch), 'train_adam', 'float32', 1)()\n"
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-2000:]


# ------------------------------------------------------------------------ the theoretical peak

def _cpuinfo_block(number: int, mhz: str) -> str:
    return (f"processor\t: {number}\nvendor_id\t: GenuineIntel\n"
            f"model name\t: Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz\ncpu MHz\t\t: {mhz}\n"
            f"physical id\t: 0\ncpu cores\t: 2\nflags\t\t: fpu sse2 ht fma avx avx2 avx512f\n")


#: two logical CPUs of one 2-core socket, their clocks apart (the highest is taken)
INTEL_AVX512 = _cpuinfo_block(0, "2900.000") + "\n" + _cpuinfo_block(1, "2800.000")


@pytest.mark.parametrize("dtype, threads, lanes, cores", [
    ("float32", 2, 16, 2), ("float64", 2, 8, 2), ("float32", 1, 16, 1), ("float32", 8, 16, 2),
], ids=["float32", "float64", "one_thread", "threads_past_the_cores"])
def test_bench_peak_intel_avx512(dtype, threads, lanes, cores):
    from nnparity.bench.peak import parse_cpuinfo, theoretical_peak

    peak = theoretical_peak(parse_cpuinfo(INTEL_AVX512), dtype, threads)
    # cores x 2 FMA units x lanes x 2 FLOPs x the highest clock listed
    assert peak["flops"] == pytest.approx(cores * 2 * lanes * 2 * 2900e6)
    assert (peak["lanes"], peak["cores"], peak["fma_units"], peak["mhz"]) == (lanes, cores, 2, 2900.0)
    assert any("assumed" in line for line in peak["assumptions"]) and len(peak["assumptions"]) == 5


@pytest.mark.parametrize("vendor, flags, bits, units", [
    ("AuthenticAMD", "sse2 fma avx avx2 avx512f", 512, 1),
    ("AuthenticAMD", "sse2 fma avx avx2", 256, 2),
    ("GenuineIntel", "sse2 avx", 256, 1),
    ("GenuineIntel", "sse2", 128, 1),
], ids=["amd_avx512", "amd_avx2", "avx_without_fma", "sse2"])
def test_bench_peak_vector_width_and_fma_units(vendor, flags, bits, units):
    from nnparity.bench.peak import parse_cpuinfo, theoretical_peak

    text = INTEL_AVX512.replace("GenuineIntel", vendor).replace("fpu sse2 ht fma avx avx2 avx512f", flags)
    peak = theoretical_peak(parse_cpuinfo(text), "float64", 2, max_mhz=3000.0)
    assert (peak["simd_bits"], peak["fma_units"]) == (bits, units)
    assert peak["flops"] == pytest.approx(2 * units * (bits // 64) * 2 * 3000e6)
    assert "the OS maximum" in peak["assumptions"][-1]


def test_bench_peak_without_a_clock_is_none():
    from nnparity.bench.peak import parse_cpuinfo, theoretical_peak

    text = "\n".join(line for line in INTEL_AVX512.splitlines() if not line.startswith("cpu MHz"))
    peak = theoretical_peak(parse_cpuinfo(text), "float32", 2)
    assert peak["flops"] is None and "no peak" in peak["assumptions"][-1]


# ------------------------------------------------------------------------ sweeps' crossovers


@pytest.mark.parametrize("points, expected", [
    ([(1, 4.0), (16, 2.0), (256, 0.5)], [(16, 256, "torch_eager")]),
    ([(16, 0.7), (64, 1.5), (256, 0.8), (1024, 0.9)], [(16, 64, "scratch"), (64, 256, "torch_eager")]),
    ([(1, 3.0), (16, 1.0), (256, 0.5)], [(1, 256, "torch_eager")]),
    ([(1, 3.0), (16, 2.0)], []),
], ids=["one", "two", "through_a_point_at_one", "none"])
def test_bench_sweep_crossovers(points, expected):
    import math

    from nnparity.bench.sweeps import crossovers

    found = crossovers(points)
    assert [(c["between"][0], c["between"][1], c["to"]) for c in found] == expected
    for c, (x0, x1, _) in zip(found, expected):
        assert x0 < c["at"] < x1
        # log(speedup) is linear in log(x) between the two points: it is 0 at the crossover
        s0, s1 = dict(points)[x0], dict(points)[x1]
        t = math.log(c["at"] / x0) / math.log(x1 / x0)
        assert math.log(s0) + t * (math.log(s1) - math.log(s0)) == pytest.approx(0, abs=1e-12)


# --------------------------------------------------------------------- spreads and reliability


def _row(median, iqr):
    return {"median_s": median, "iqr_s": iqr}


def test_bench_judge_flags_spread_drift_and_faults():
    from nnparity.bench.run import DRIFT_LIMIT, SPREAD_LIMIT, judge

    results = {"torch_eager": {"forward": _row(2.0, 0.02), "train_sgd": _row(4.0, 0.04)},
               "scratch": {"forward": _row(1.0, 2 * SPREAD_LIMIT), "train_sgd": _row(1.0, 0.01)}}
    yard = {"train_sgd": {"best_flops": 50.0, "best_spread": 0.03, "drift": 2 * DRIFT_LIMIT}}
    judge(results, train_flops=100, yardsticks=yard, peak={"flops": 80.0})
    fwd, sgd, torch_sgd = results["scratch"]["forward"], results["scratch"]["train_sgd"], results["torch_eager"]["train_sgd"]
    assert fwd["speedup_vs_torch_eager"] == 2.0 and fwd["speedup_spread"] == pytest.approx(2 * SPREAD_LIMIT + 0.01)
    assert "spread 20%" in fwd["unreliable"]
    assert sgd["achieved_flops"] == 100.0 and sgd["fraction_of_best_gemm"] == 2.0 and "yardstick_fault" in sgd
    assert sgd["fraction_of_peak"] == 1.25 and "peak_fault" in sgd
    assert sgd["fraction_spread"] == pytest.approx(0.01 + 0.03) and "GEMM rate moved 20%" in sgd["unreliable"]
    assert torch_sgd["fraction_of_best_gemm"] == 0.5 and "yardstick_fault" not in torch_sgd
    assert "unreliable" not in results["torch_eager"]["forward"]


def test_bench_judge_quiet_figures_are_reliable():
    from nnparity.bench.run import judge

    results = {"torch_eager": {"train_sgd": _row(4.0, 0.04)}, "scratch": {"train_sgd": _row(2.0, 0.02)}}
    judge(results, 100, {"train_sgd": {"best_flops": 100.0, "best_spread": 0.01, "drift": 0.0}}, {"flops": 200.0})
    row = results["scratch"]["train_sgd"]
    assert "unreliable" not in row and row["fraction_of_best_gemm"] == 0.5 and row["fraction_of_peak"] == 0.25


@pytest.mark.parametrize("other, steal, mhz, expected", [
    (0.0, 0.0, (3000, 3000), []),
    (0.5, 0.0, (3000, 3000), ["other processes"]),
    (0.0, 0.05, (3000, 3000), ["stole"]),
    (0.0, 0.0, (3000, 2000), ["clock"]),
    (0.3, 0.1, (3000, 2000), ["other processes", "stole", "clock"]),
])
def test_bench_load_classify(other, steal, mhz, expected):
    from nnparity.bench.load import classify

    reasons = classify(other, steal, *mhz)
    assert len(reasons) == len(expected) and all(word in r for word, r in zip(expected, reasons))


def test_bench_load_watch_sees_a_background_load(tmp_path):
    """A real CPU hog outside this process tree (started by a shell that exits at once, so it
    is no child of ours) must make the run unreliable. Never asserted the other way round: a
    shared machine may be loaded without us."""
    import time

    from nnparity.bench.load import LoadWatch

    done = tmp_path / "done"
    hog = (f"import time, pathlib\nend = time.monotonic() + 1.5\nwhile time.monotonic() < end: pass\n"
           f"pathlib.Path({str(done)!r}).touch()")
    watch = LoadWatch()
    subprocess.run(["sh", "-c", f'"{sys.executable}" -c "$0" >/dev/null 2>&1 &', hog], check=True, timeout=60)
    deadline = time.monotonic() + 120
    while not done.exists():
        assert time.monotonic() < deadline, "the background load never finished"
        time.sleep(0.05)
    report = watch.report()
    assert report["other_load_fraction"] > 0.1 and not report["reliable"], report
    assert any("other processes" in reason for reason in report["reasons"])


def test_bench_unreliable_names_every_fault():
    from nnparity.bench.cli import unreliable

    data = {"load": {"reasons": ["other processes kept 50% of the CPUs busy (limit 10%)"]},
            "configs": {"wide": {"gemm": {"drift": 0.3}, "results": {"scratch": {"train_sgd": {
                "yardstick_fault": "faster than the GEMM rate", "peak_fault": "above the theoretical peak",
                "unreliable": "its blocks spread 25%"}}}}}}
    point = {"scratch": 1.0, "scratch_iqr": 0.01, "torch_eager": 2.0, "torch_eager_iqr": 0.02}
    data["sweeps"] = {"batch": [{"batch": 1, **point}, {"batch": 16, **point, "torch_eager_iqr": 0.5}],
                      "width": [{"width": 16, **point}]}
    warnings = unreliable(data)
    assert len(warnings) == 6 and "unreliable" in warnings[0] and "moved by 30%" in warnings[1]
    assert warnings[2] == "wide: unreliable ratios: scratch train_sgd (its blocks spread 25%)"
    assert warnings[3].startswith("wide scratch train_sgd: faster") and "theoretical peak" in warnings[4]
    assert warnings[5].startswith("sweeps: points whose blocks spread") and warnings[5].endswith(": batch 16")


def test_bench_quiet_check_sees_a_background_load(tmp_path):
    """The check before a run sees a CPU hog that runs while it samples."""
    import time

    from nnparity.bench.load import quiet_check

    started = tmp_path / "started"
    hog = (f"import time, pathlib\npathlib.Path({str(started)!r}).touch()\nend = time.monotonic() + 3\n"
           f"while time.monotonic() < end: pass\n")
    proc = subprocess.Popen([sys.executable, "-c", hog])
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert time.monotonic() < deadline, "the background load never started"
            time.sleep(0.02)
        reasons = quiet_check(1.0)
    finally:
        proc.wait(timeout=60)
    assert any("other processes" in reason for reason in reasons), reasons


@pytest.mark.slow
def test_bench_quick_json_fields_under_load(tmp_path):
    """The whole --quick run on tiny (its sweeps included) beside real CPU hogs on half the cores: one
    JSON object on stdout, its fields, and the warnings, before and after, that the machine is not
    quiet and the ratios unreliable."""
    plot, stop = tmp_path / "sweeps.png", tmp_path / "stop"
    # busy 40% of each 0.1 s, on half the cores: 20% of the CPUs, twice the 10% that makes a machine
    # not quiet, on any core count, and the suite's other tests keep most of the machine meanwhile
    hog = (f"import os, time\nend = time.monotonic() + 240\n"
           f"while time.monotonic() < end and not os.path.exists({str(stop)!r}):\n"
           f"    busy = time.monotonic() + 0.04\n    while time.monotonic() < busy:\n        pass\n"
           f"    time.sleep(0.06)\n")
    hogs = [subprocess.Popen([sys.executable, "-c", hog]) for _ in range(max(1, (os.cpu_count() or 2) // 2))]
    try:
        proc = subprocess.run([sys.executable, "-m", "nnparity.bench", "--quick", "--config", "tiny", "--device",
                               "all", "--no-progress", "--json", "--plot", str(plot)], cwd=ROOT, capture_output=True,
                              text=True, timeout=300)
    finally:
        stop.touch()
        for h in hogs:
            h.wait(timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(proc.stdout)
    assert not data["load"]["reliable"] and not data["reliable"]
    assert "warning: the machine is not quiet" in proc.stderr
    assert "the ratios are unreliable; rerun on a quiet machine" in proc.stderr
    assert {"settings", "machine", "peak", "configs", "sweeps", "seconds", "load", "reliable", "unreliable"} <= set(data)
    assert isinstance(data["load"]["reliable"], bool) and data["load"]["reliable"] == (not data["load"]["reasons"])
    assert data["reliable"] == (not data["unreliable"])
    for warning in data["unreliable"]:
        assert warning in proc.stderr
    assert data["peak"]["assumptions"] and (data["peak"]["flops"] is None or data["peak"]["flops"] > 0)
    assert data["devices"]["cpu"] == "timed"
    assert "gpu" in data or "no CUDA device" in data["devices"]["cuda"]["skipped"]
    assert {"cpu", "cores", "versions"} <= set(data["machine"])
    assert any(t.get("user_api") == "blas" for t in data["machine"]["threads"])
    assert list(data["configs"]) == ["tiny"]
    c = data["configs"]["tiny"]
    assert {"widths", "batch", "train_flops", "gemm", "yardsticks", "results", "memory"} <= set(c)
    assert c["gemm"]["best_flops"] > 0 and c["gemm"]["best_spread"] >= 0 and len(c["gemm"]["samples_flops"]) == 3
    assert set(c["gemm"]["cold_warm_sets"]) == {"numpy_warm", "numpy_cold", "torch_warm", "torch_cold"}
    assert 0 <= c["gemm"]["drift"] < 1 and set(c["yardsticks"]) == {"train_sgd", "train_adam"}
    for side in ("scratch", "torch_eager"):
        for op in OPS:
            row = c["results"][side][op]
            assert row["median_s"] > 0 and row["iqr_s"] >= 0 and row["spread"] == row["iqr_s"] / row["median_s"]
            assert row["speedup_spread"] >= 0
        sgd = c["results"][side]["train_sgd"]
        assert 0 < sgd["fraction_of_best_gemm"] and sgd["fraction_spread"] >= 0
        assert sgd["fraction_of_best_gemm"] <= 1 or "yardstick_fault" in sgd, sgd
        assert "fraction_of_peak" not in sgd or sgd["fraction_of_peak"] <= 1 or "peak_fault" in sgd, sgd
        assert c["memory"][side]["peak_bytes"] > 0
    assert "skipped" in c["results"]["torch_compile"]["train_sgd"]
    assert "median_s" in c["results"]["micrograd"]["train_sgd"] or "skipped" in c["results"]["micrograd"]["train_sgd"]
    for axis in ("batch", "width"):
        assert all(r["speedup"] > 0 and r["scratch_iqr"] >= 0 for r in data["sweeps"][axis])
        assert isinstance(data["sweeps"][f"{axis}_crossovers"], list)
    assert plot.stat().st_size > 0 and f"plot: {plot}" in proc.stderr


@pytest.mark.parametrize("argv, message", [
    (["--threads", "many"], "--threads: 'many'"),
    (["--device", "tpu"], "--device"),
    (["--plot", "sweeps.svg"], "--plot"),
], ids=["threads", "device", "plot_suffix"])
def test_bench_nnparity_command_bad_input(argv, message, capsys):
    from nnparity.cli import main as nnparity_main

    assert nnparity_main(["bench", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("nnparity bench: ") and message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("entry", ["nnparity bench", "python -m nnparity.bench"])
def test_bench_refuses_to_overwrite_a_plot(entry, tmp_path, capsys):
    """An existing --plot file is kept unless --force: refused before any timing starts."""
    from nnparity.cli import main as nnparity_main

    kept = tmp_path / "sweeps.png"
    kept.write_text("mine")
    argv = ["--quick", "--plot", str(kept)]
    assert (nnparity_main(["bench", *argv]) if entry == "nnparity bench" else main(argv, prog=entry)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(entry + ": --plot") and "--force" in err and len(err.splitlines()) == 1
    assert kept.read_text() == "mine"


@pytest.mark.parametrize("module", ["nnparity.bench", "nnparity.bench.memory", "nnparity.bench.profile"])
def test_bench_module_entry_points_have_their_own_help(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.startswith(f"usage: python -m {module} "), proc.stdout + proc.stderr


@pytest.mark.parametrize("module, argv", [("nnparity.bench.memory", ["nobody", "float32", "1", "tiny"]),
                                          ("nnparity.bench.profile", ["--dtype", "float16"])])
def test_bench_module_entry_points_bad_input(module, argv):
    proc = subprocess.run([sys.executable, "-m", module, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert proc.stderr.startswith(f"python -m {module}: ") and "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------- the GPU


def test_bench_gpu_configs_add_large_at_batch_8192():
    from nnparity.bench import gpu

    assert gpu.gpu_config(gpu.LARGE_8192) == Config(gpu.LARGE_8192, CONFIGS["large"][0], 8192)
    assert gpu.config_names(quick=False) == [*CONFIGS, gpu.LARGE_8192]
    assert not set(gpu.QUICK_SKIPS) & set(gpu.config_names(quick=True))


@pytest.mark.parametrize("op", ["forward", "train_sgd", "train_adam"])
def test_bench_gpu_scratch_step_stays_on_the_device(op):
    """The scratch side the GPU benchmark times, run on the strict device namespace (which refuses
    every host round-trip) through the GPU timing helper."""
    from nnparity.bench import gpu
    from strict_xp import strict

    step = gpu.scratch_device(config("small"), op, "float32", strict)
    row = gpu.timed_step(step, min_run_time=0.02, synchronize=lambda: None)
    assert row["median_s"] > 0 and row["iqr_s"] >= 0 and row["runs"] >= 3 and row["per_run"] >= 1


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_ready(), reason="needs CUDA and CuPy")
def test_bench_gpu_tiny_fields():
    from nnparity.bench import gpu

    result = gpu.run_config(gpu.gpu_config("tiny"), "float32", quick=True)
    assert set(result["gemm_peaks"]) == {"fp32", "tf32", "bf16"}
    for side in ("scratch_cupy", "torch_fp32", "torch_graphs"):
        row = result["results"][side]["train_sgd"]
        assert row["median_s"] > 0, row
        assert isinstance(row["activities_per_step"], float) and row["activities_per_step"] >= 1, row


@pytest.mark.slow
def test_bench_gpu_check_script_skips_cleanly_without_cuda(tmp_path):
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the script would run for real")
    env = {**__import__("os").environ, "PYTHON": sys.executable}
    proc = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    summary = (tmp_path / "out" / "summary.txt").read_text()
    assert "GPU parts are skipped" in summary and "gpu tests (expected to skip): exit 0" in summary
    assert "torch" in (tmp_path / "out" / "env.txt").read_text()
    assert "skipped" in (tmp_path / "out" / "gpu-tests.log").read_text()
