"""The benchmark harness: its command line and the fields of its JSON (never its timings)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.cli import main
from benchmarks.configs import CONFIGS, OPS, Config, config
from conftest import cuda_ready

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv, flag", [
    (["--dtype", "float16"], "--dtype"),
    (["--device", "tpu"], "--device"),
    (["--threads", "0"], "--threads"),
    (["--threads", "many"], "--threads"),
    (["--plot", "out.svg"], "--plot"),
    (["--json", "/no/such/folder/x.json"], "--json"),
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
    from benchmarks.run import bracketing_rate

    rate = bracketing_rate({"best_flops": 100.0, "best_lib": "numpy"}, {"best_flops": 80.0, "best_lib": "torch"})
    assert rate["best_flops"] == 100.0 and rate["best_lib"] == "numpy" and rate["drift"] == pytest.approx(0.2)


@pytest.mark.parametrize("other, steal, mhz, expected", [
    (0.0, 0.0, (3000, 3000), []),
    (0.5, 0.0, (3000, 3000), ["other processes"]),
    (0.0, 0.05, (3000, 3000), ["stole"]),
    (0.0, 0.0, (3000, 2000), ["clock"]),
    (0.3, 0.1, (3000, 2000), ["other processes", "stole", "clock"]),
])
def test_bench_load_classify(other, steal, mhz, expected):
    from benchmarks.load import classify

    reasons = classify(other, steal, *mhz)
    assert len(reasons) == len(expected) and all(word in r for word, r in zip(expected, reasons))


def test_bench_load_watch_sees_a_background_load(tmp_path):
    """A real CPU hog outside this process tree (started by a shell that exits at once, so it
    is no child of ours) must make the run unreliable. Never asserted the other way round: a
    shared machine may be loaded without us."""
    import time

    from benchmarks.load import LoadWatch

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


def test_bench_load_warnings_name_every_fault():
    from benchmarks.cli import load_warnings

    data = {"load": {"reasons": ["other processes kept 50% of the CPUs busy (limit 10%)"]},
            "configs": {"wide": {"gemm": {"drift": 0.3}, "results": {"scratch": {"train_sgd": {
                "yardstick_fault": "faster than the GEMM rate"}}}}}}
    warnings = load_warnings(data)
    assert len(warnings) == 3 and "unreliable" in warnings[0] and "moved by 30%" in warnings[1]
    assert warnings[2].startswith("wide scratch train_sgd: faster")


@pytest.mark.slow
def test_bench_quick_json_fields(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--device", "all", "--no-progress", "--json", str(out),
                           "--plot", str(tmp_path / "sweeps.png")], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    data = json.loads(out.read_text())
    assert {"settings", "machine", "configs", "sweeps", "seconds", "load"} <= set(data)
    assert isinstance(data["load"]["reliable"], bool) and data["load"]["reliable"] == (not data["load"]["reasons"])
    if not data["load"]["reliable"]:
        assert "unreliable" in proc.stderr
    assert data["devices"]["cpu"] == "timed"
    assert "gpu" in data or "no CUDA device" in data["devices"]["cuda"]["skipped"]
    assert {"cpu", "cores", "versions"} <= set(data["machine"])
    assert any(t.get("user_api") == "blas" for t in data["machine"]["threads"])
    assert list(data["configs"]) == ["tiny", "small", "mnist", "wide"]
    for name, c in data["configs"].items():
        assert {"widths", "batch", "train_flops", "gemm", "results", "memory"} <= set(c)
        assert c["gemm"]["best_flops"] > 0
        for side in ("scratch", "torch_eager"):
            for op in OPS:
                row = c["results"][side][op]
                assert row["median_s"] > 0 and row["iqr_s"] >= 0
            sgd = c["results"][side]["train_sgd"]
            assert 0 < sgd["fraction_of_best_gemm"]
            assert sgd["fraction_of_best_gemm"] <= 1 or "yardstick_fault" in sgd, (name, side, sgd)
            assert c["memory"][side]["peak_bytes"] > 0
        assert c["gemm"]["before_flops"] > 0 and c["gemm"]["after_flops"] > 0 and c["gemm"]["drift"] >= 0
        assert "skipped" in c["results"]["torch_compile"]["train_sgd"]
    assert "median_s" in data["configs"]["tiny"]["results"]["micrograd"]["train_sgd"] or \
        "skipped" in data["configs"]["tiny"]["results"]["micrograd"]["train_sgd"]
    assert {"batch", "width"} <= set(data["sweeps"])
    assert (tmp_path / "sweeps.png").stat().st_size > 0


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


def test_bench_nnparity_command_refuses_to_overwrite(tmp_path, capsys):
    """An existing --json file is kept unless --force: refused before any timing starts."""
    from nnparity.cli import main as nnparity_main

    kept = tmp_path / "bench.json"
    kept.write_text("{}")
    assert nnparity_main(["bench", "--quick", "--json", str(kept)]) == 2
    assert "--force" in capsys.readouterr().err and kept.read_text() == "{}"


# ---------------------------------------------------------------------------------- the GPU


def test_bench_gpu_configs_add_large_at_batch_8192():
    from benchmarks import gpu

    assert gpu.gpu_config(gpu.LARGE_8192) == Config(gpu.LARGE_8192, CONFIGS["large"][0], 8192)
    assert gpu.config_names(quick=False) == [*CONFIGS, gpu.LARGE_8192]
    assert not set(gpu.QUICK_SKIPS) & set(gpu.config_names(quick=True))


@pytest.mark.parametrize("op", ["forward", "train_sgd", "train_adam"])
def test_bench_gpu_scratch_step_stays_on_the_device(op):
    """The scratch side the GPU benchmark times, run on the strict device namespace (which refuses
    every host round-trip) through the GPU timing helper."""
    from benchmarks import gpu
    from strict_xp import strict

    step = gpu.scratch_device(config("small"), op, "float32", strict)
    row = gpu.timed_step(step, min_run_time=0.02, synchronize=lambda: None)
    assert row["median_s"] > 0 and row["iqr_s"] >= 0 and row["runs"] >= 3 and row["per_run"] >= 1


@pytest.mark.gpu
@pytest.mark.skipif(not cuda_ready(), reason="needs CUDA and CuPy")
def test_bench_gpu_tiny_fields():
    from benchmarks import gpu

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
