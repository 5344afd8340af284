"""`nnparity bench`'s output on targets that cannot be written: a full disk behind stdout, --save or
--plot. One line, exit 2, and nothing lost: the results go wherever they can, and no file is left
half written or replaced by a broken one.

The timings themselves are a recorded run's (benchmarks/results/): the output stage is what is under
test, and a real run takes minutes. A full disk is a file size limit (RLIMIT_FSIZE: a write past it
fails with EFBIG, as ENOSPC on a full disk) or /dev/full.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RECORDED = REPO / "benchmarks" / "results" / "intel-r-xeon-r-processor-2core-float32.json"
LIMIT = 4000   # bytes a file may grow to: less than the JSON object or a plot, more than a line

# `nnparity bench` (or `python -m nnparity.bench`) with the timings replaced by the recorded run's
# results, --save's folder set, and files limited to LIMIT bytes
SCRIPT = """
import json, resource, sys, time
from pathlib import Path
from nnparity.bench import cli as bench
recorded, results, limit, entry, *argv = sys.argv[1:]
data = json.loads(Path(recorded).read_text())
bench.run = lambda args: bench._finish(args, data, time.perf_counter())
bench.RESULTS = Path(results)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(limit), int(limit)))
if entry == "module":
    sys.exit(bench.main(argv))
from nnparity import cli
sys.exit(cli.main(["bench", *argv]))
"""


def bench(tmp_path, *argv, entry="nnparity", stdout=subprocess.PIPE, limit=LIMIT):
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-c", SCRIPT, str(RECORDED), str(results), str(limit), entry, *argv],
                          cwd=tmp_path, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120)


def one_line(proc) -> str:
    """The one error line on stderr (beside the run's own lines: its total, its files, its warnings)."""
    run_lines = ("nnparity bench: warning: ", "total ", "plot: ", "saved: ")
    lines = [line for line in proc.stderr.strip().splitlines() if not line.startswith(run_lines)]
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


@pytest.mark.slow
@pytest.mark.parametrize("entry, prog", [("nnparity", "nnparity bench"), ("module", "nnparity bench")])
@pytest.mark.parametrize("json_flag", [["--json"], []])
def test_bench_outputs_full_stdout_is_one_line_exit_2(tmp_path, entry, prog, json_flag):
    with open("/dev/full", "w") as full:
        proc = bench(tmp_path, *json_flag, entry=entry, stdout=full)
    assert proc.returncode == 2
    assert one_line(proc) == f"{prog}: cannot write the output to stdout: No space left on device"


def test_bench_outputs_stdout_file_on_a_full_disk_is_cut_back_to_what_it_held(tmp_path):
    out = tmp_path / "out.json"
    out.write_text("an earlier run's line\n")
    with open(out, "a") as appended:
        proc = bench(tmp_path, "--json", stdout=appended)
    assert proc.returncode == 2
    assert one_line(proc).endswith("cannot write the output to stdout: File too large")
    assert out.read_text() == "an earlier run's line\n"


def test_bench_outputs_save_to_a_full_disk_keeps_the_earlier_results_and_prints_these(tmp_path):
    earlier = tmp_path / "results" / "intel-r-xeon-r-processor-2core-float32.json"
    earlier.parent.mkdir()
    earlier.write_text('{"earlier": true}')
    proc = bench(tmp_path, "--json", "--save")
    assert proc.returncode == 2
    line = one_line(proc)
    assert line.startswith(f"nnparity bench: --save: cannot write {earlier}") and line.endswith("File too large")
    assert earlier.read_text() == '{"earlier": true}'
    assert sorted(p.name for p in earlier.parent.iterdir()) == [earlier.name]     # no temporary file left
    printed = json.loads(proc.stdout)
    assert printed["configs"] == json.loads(RECORDED.read_text())["configs"]


@pytest.mark.slow
def test_bench_outputs_plot_to_a_full_disk_keeps_the_earlier_plot_and_still_saves(tmp_path):
    """A limit between the JSON's size and the plot's (the recorded run's own): --plot cannot be written,
    --save's JSON can, and is."""
    recorded_plot = RECORDED.with_name(RECORDED.stem + "-sweeps.png")
    assert RECORDED.stat().st_size < recorded_plot.stat().st_size
    plot = tmp_path / "sweeps.png"
    plot.write_bytes(b"an earlier plot")
    limit = (RECORDED.stat().st_size + recorded_plot.stat().st_size) // 2
    proc = bench(tmp_path, "--json", "--plot", str(plot), "--force", "--save", limit=limit)
    assert proc.returncode == 2
    line = one_line(proc)
    assert line.startswith(f"nnparity bench: --plot: cannot write {plot}") and line.endswith("File too large")
    assert plot.read_bytes() == b"an earlier plot"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "sweeps.png"]
    printed = json.loads(proc.stdout)
    assert printed["configs"] == json.loads(RECORDED.read_text())["configs"]
    saved = tmp_path / "results" / RECORDED.name
    assert json.loads(saved.read_text()) == printed


@pytest.mark.slow
def test_bench_outputs_plot_on_a_read_only_file_system_is_one_line_exit_2(tmp_path):
    target = Path("/proc/nnparity-bench.png")
    proc = bench(tmp_path, "--json", "--plot", str(target))
    assert proc.returncode == 2
    assert one_line(proc).startswith("nnparity bench: --plot: cannot write ")
    assert not target.exists()
    if proc.stdout:      # refused before the run (no write permission), or after it: the results printed whole
        assert json.loads(proc.stdout)["configs"] == json.loads(RECORDED.read_text())["configs"]
