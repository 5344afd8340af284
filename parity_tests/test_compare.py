"""`nnparity compare`: the spec trained three backends in three child processes, the report, the PNG.

The runs here are real (children, Lightning and all), shortened with --epochs and --repeat 1.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nnparity.cli import main
from nnparity.commands.compare.report import BACKENDS, format_table, step_rel_diff, warmup_steps
from nnparity.defaults import default_spec
from scratch.policy import FLOAT32_DRIFT_BOUND, TRAJECTORY_TOL as RUN_TOL
from scratch.spec import load_spec
from shown_output import assert_output_matches

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
WAY_FIELDS = {"final_train_loss", "test_accuracy", "median_step_seconds", "train_seconds", "process_seconds",
              "peak_rss_mib", "step_loss", "steps"}


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(["compare", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_default_spec_is_the_digits_spec():
    assert default_spec("compare").to_dict() == load_spec(SPECS / "digits.toml").to_dict()


def readme_compare_block() -> list[str]:
    text = (ROOT / "README.md").read_text()
    start = text.index("$ .venv/bin/nnparity compare\n")
    return text[start:text.index("```", start)].splitlines()


def test_readme_first_command_sets_up_and_runs_compare():
    text = (ROOT / "README.md").read_text()
    block = text[text.index("```bash\n") + 8:].splitlines()
    setup = 'python3 -m venv .venv && .venv/bin/pip install -q -c constraints.txt -e ".[test]" && '
    assert block[0] == setup + ".venv/bin/nnparity compare"
    assert block[1] == setup + ".venv/bin/python -m pytest -q"


@pytest.mark.slow
def test_default_spec_json_report_png_and_the_readme_table(capsys, tmp_path):
    png = tmp_path / "curves.png"
    code, out, _ = run_cli(capsys, "--json", "--repeat", "1", "--plot", str(png))
    assert code == 0
    report = json.loads(out)
    assert report["ok"] is True and report["dtype"] == "float64" and report["tol"] == RUN_TOL
    backends = report["backends"]
    assert set(backends) == set(BACKENDS)
    for backend in BACKENDS:
        e = backends[backend]
        assert WAY_FIELDS <= set(e), f"{backend} lacks {WAY_FIELDS - set(e)}"
        assert e["steps"] == 10 * 45 and len(e["step_loss"]) == 450
        assert 0.95 <= e["test_accuracy"] <= 1.0
        assert 0 < e["median_step_seconds"] < e["train_seconds"] < e["process_seconds"]
        assert e["peak_rss_mib"] > 10
    # torch and Lightning match scratch at every step, and the report says by how much
    for backend in ("torch", "lightning"):
        assert backends[backend]["max_step_rel_diff"] <= RUN_TOL
        assert backends[backend]["max_step_rel_diff"] == max(step_rel_diff(backends[backend]["step_loss"], backends["scratch"]["step_loss"]))
        assert backends[backend]["test_accuracy"] == backends["scratch"]["test_accuracy"]
    assert backends["scratch"]["peak_rss_mib"] < backends["torch"]["peak_rss_mib"]   # scratch never imports torch
    o = report["lightning_overhead"]
    assert o["ratio"] == pytest.approx(backends["lightning"]["median_step_seconds"] / backends["torch"]["median_step_seconds"])
    assert o["per_step_seconds"] == pytest.approx(backends["lightning"]["median_step_seconds"]
                                                  - backends["torch"]["median_step_seconds"])
    assert backends["lightning"]["world_size"] == 1
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    table = format_table(report).splitlines()
    assert any(line.startswith("Lightning over the torch loop: ") for line in table)
    assert any(line.startswith("parity: ") for line in table)
    # the README's table: the same layout, and the same losses and accuracies (timings vary; the
    # step differences are rounding noise, held to the tolerance, not to their digits)
    readme = readme_compare_block()
    runs = re.compile(r"best of \d+ run")                   # the README shows the default, 3
    assert [runs.sub("", line) for line in readme[1:5]] == [runs.sub("", line) for line in table[:4]]
    for backend in BACKENDS:
        ours = next(line for line in table if line.startswith(f"{backend} ")).split()
        theirs = next(line for line in readme if line.startswith(f"{backend} ")).split()
        assert_output_matches([" ".join(ours[:4])], [" ".join(theirs[:4])], RUN_TOL)
    assert_output_matches([table[-2]], [readme[-2]], RUN_TOL)
    assert readme[-1] == "plot: nnparity-compare.png"


@pytest.mark.slow
def test_float32_drift_is_shown_within_its_bound_and_a_tighter_tol_fails(capsys, tmp_path):
    code, out, _ = run_cli(capsys, "--json", "--dtype", "float32", "--epochs", "1", "--repeat", "1",
                           "--tol", "1e-12", "--plot", "none")
    report = json.loads(out)
    assert report["dtype"] == "float32" and report["plot"] is None
    drift = report["max_step_rel_diff"]
    assert 1e-12 < drift <= FLOAT32_DRIFT_BOUND    # rounding drift: past 1e-12, inside the default bound
    assert code == 1 and report["ok"] is False
    assert "FAIL" in format_table(report)
    assert not list(tmp_path.iterdir())


@pytest.mark.slow
def test_compare_with_two_ddp_processes(capsys, tmp_path):
    spec = tmp_path / "xor.json"
    raw = load_spec(SPECS / "xor.toml").to_dict()
    raw["train"] = {"epochs": 30}
    spec.write_text(json.dumps(raw))
    code, out, _ = run_cli(capsys, str(spec), "--devices", "2", "--json", "--plot", str(tmp_path / "x.png"))
    report = json.loads(out)
    assert code == 0 and report["ok"] is True
    assert report["backends"]["lightning"]["world_size"] == 2 and report["strategy"] == "ddp"
    assert report["runs_per_backend"] == 1
    assert report["backends"]["lightning"]["max_step_rel_diff"] <= RUN_TOL


@pytest.mark.parametrize("argv, message", [
    (["no/such/spec.toml"], "no such file"),
    (["--devices", "0"], "--devices: must be >= 1"),
    (["--epochs", "0"], "--epochs: must be >= 1"),
    (["--repeat", "0"], "--repeat: must be >= 1"),
    (["--plot", "curves.pdf"], "--plot: expected a .png"),
    (["--plot", "no/such/dir/curves.png"], "--plot: no such directory"),
    (["--tol", "-1"], "--tol: must be > 0"),
    (["--tol", "inf"], "--tol: must be > 0 and finite"),
    (["--tol", "nan"], "--tol: must be > 0 and finite"),
    ([str(SPECS / "xor.toml"), "--devices", "8"], "cannot be split over 8 processes"),
])
def test_bad_input_exits_2_with_one_line_and_starts_nothing(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("nnparity compare: ") and message in err and err.count("\n") == 1
    assert not list(tmp_path.iterdir())


def test_a_bad_spec_field_is_named(capsys, tmp_path):
    path = tmp_path / "bad.json"
    raw = load_spec(SPECS / "digits.toml").to_dict()
    raw["train"]["batch_size"] = 0
    path.write_text(json.dumps(raw))
    code, _, err = run_cli(capsys, str(path))
    assert code == 2 and "train.batch_size" in err


def test_step_differences_and_warmup():
    assert step_rel_diff([1.0, 2.0, 0.5], [1.0, 2.5, 0.0]) == [0.0, 0.2, 0.5]   # absolute where scratch is 0
    assert step_rel_diff([1.0, 2.0], [1.0]) == [0.0]
    assert warmup_steps(450, 45) == 45 and warmup_steps(45, 45) == 4
    assert warmup_steps(1000, 1) == 1
