"""Regression tests for hostile but realistic input, one per crash class the fuzzing and a hostile
user found: loader crashes, lying verdicts, specs that make no sense, absurd sizes, work thrown
away or overwritten, and extremes. Bad input is one line on stderr and exit 2, never a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from nnparity.cli import main
from scratch.errors import MAX_FIELD_CHARS, MAX_MESSAGE_CHARS

ROOT = Path(__file__).resolve().parents[1]
TINY = '[[layers]]\ninputs = 2\nunits = 1\nactivation = "sigmoid"\n[loss]\nname = "bce"\n'


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line(err: str, command: str, fragment: str) -> None:
    assert err.count("\n") == 1 and err.startswith(f"nnparity {command}: "), err
    assert fragment in err and "Traceback" not in err, err
    assert len(err) <= len(f"nnparity {command}: ") + MAX_FIELD_CHARS + MAX_MESSAGE_CHARS + 3


# ------------------------------------------------------------------------------ loader crashes

LOADER_CASES = [
    ("utf16", ".toml", TINY.encode("utf-16"), "UTF-16"),
    ("stray-byte", ".toml", TINY.encode() + b"# \xff\n", "not UTF-8"),
    ("float-overflow", ".toml", (TINY + "[optimizer]\nlr = 1" + "0" * 400 + "\n").encode(), "optimizer.lr"),
    ("digits-4300", ".toml", (TINY + "seed = " + "1" * 5000 + "\n").encode(), "4300 digits"),
    ("deep-json", ".json", b'{"layers": ' + b"[" * 1000 + b"]" * 1000 + b"}", "nested too deeply"),
    ("deep-toml", ".toml", b"layers = " + b"[" * 5000 + b"]" * 5000, "nested too deeply"),
    ("init-scale-1e308", ".toml", TINY.replace("activation", 'init = "uniform"\ninit_scale = 1e308\nactivation').encode(),
     "init_scale"),
    ("string-in-x", ".json", json.dumps({"layers": [{"inputs": 2, "units": 1}],
                                         "data": {"x": [["1", "2"]], "y": [[1.0]]}}).encode(), "data.x"),
    ("string-in-y", ".json", json.dumps({"layers": [{"inputs": 2, "units": 1}],
                                         "data": {"x": [[1, 2]], "y": [["1"]]}}).encode(), "data.y"),
    ("long-value", ".json", json.dumps({"layers": [{"inputs": 2, "units": 1, "activation": "x" * 10_000}]}).encode(),
     "10002 chars"),
    ("long-key", ".json", json.dumps({"layers": [{"inputs": 2, "units": 1, "k" * 10_000: 1}]}).encode(), "unknown"),
    ("label-1e300", ".json", json.dumps({"layers": [{"inputs": 1, "units": 2, "activation": "softmax"}],
                                         "loss": {"name": "cce"}, "data": {"x": [[1.0]], "y": [1e300]}}).encode(),
     "out of range"),
]


@pytest.mark.parametrize("suffix,data,fragment", [c[1:] for c in LOADER_CASES], ids=[c[0] for c in LOADER_CASES])
def test_hostile_loader_one_line(suffix, data, fragment, tmp_path, capsys):
    path = tmp_path / f"spec{suffix}"
    path.write_bytes(data)
    code, out, err = run_cli(capsys, "check", str(path))
    assert code == 2 and out == ""
    assert_one_line(err, "check", fragment)


@pytest.mark.parametrize("text", [b"\xef\xbb\xbf" + TINY.encode(),
                                  TINY.replace("activation", 'init = "normal"\ninit_scale = -0.0\nactivation').encode()],
                         ids=["utf8-bom", "init-scale-minus-zero"])
def test_hostile_loader_accepts_harmless(text, tmp_path, capsys):
    """A UTF-8 BOM is dropped; init_scale = -0.0 is 0."""
    path = tmp_path / "spec.toml"
    path.write_bytes(text)
    code, out, err = run_cli(capsys, "check", str(path), "--json")
    assert code in (0, 1) and "Traceback" not in err and json.loads(out)["dtype"] == "float64"


# ----------------------------------------------------------------------------- lying verdicts

SOFTMAX_1000 = ('[[layers]]\ninputs = 1\nunits = 2\nactivation = "softmax"\nweight = [[1000.0, -1000.0]]\n'
                '[loss]\nname = "cce"\n[data]\nx = [[1.0]]\ny = [1]\n')
# found by the fuzzer: inf · 0 = NaN reaches the sigmoid, and torch's BCELoss raises on a NaN probability
NAN_PROBABILITY = ('dtype = "float32"\n[[layers]]\ninputs = 2\nunits = 2\nweight = [[0.0, 0.0], [0.0, 3e38]]\n'
                   '[[layers]]\nunits = 1\nweight = [[0.0], [0.0]]\n[[layers]]\nunits = 1\nactivation = "sigmoid"\n'
                   '[loss]\nname = "bce"\n[data]\nx = [[1.0, 2.0]]\ny = [[0.0]]\n')
FLOAT32_NEAR_MAX = ('dtype = "float32"\n[[layers]]\ninputs = 2\nunits = 1\nweight = [[3e38], [3e38]]\n'
                    '[loss]\nname = "mse"\n[data]\nx = [[1.0, 1.0]]\ny = [[0.0]]\n')


@pytest.mark.parametrize("text", [SOFTMAX_1000, FLOAT32_NEAR_MAX, NAN_PROBABILITY],
                         ids=["softmax-cce-1000", "float32-near-max", "nan-probability-bce"])
def test_hostile_verdict_overflow_is_no_pass(text, tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    code, out, _ = run_cli(capsys, "check", str(path))
    assert code == 1 and "all tensors agree" not in out and "overflow, not compared" in out
    assert " pass\n" not in out.split("loss", 1)[1].split("\n", 1)[0] + "\n"  # the inf loss is no pass
    code, out, _ = run_cli(capsys, "check", str(path), "--json")
    doc = json.loads(out)
    assert code == 1 and doc["ok"] is False and doc["errors"]["loss"]["result"] in ("overflow", "torch overflow")
    code, out, _ = run_cli(capsys, "check", str(path), "--allow-overflow")
    assert code == 0 and "accepted (--allow-overflow)" in out


def test_hostile_verdict_float32_weights_beyond_range(tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text('dtype = "float32"\n[[layers]]\ninputs = 1\nunits = 1\nweight = [[1e39]]\nbias = [0.0]\n')
    code, _, err = run_cli(capsys, "check", str(path))
    assert code == 2
    assert_one_line(err, "check", "layers[0].weight: 1e+39 at [0][0] is beyond the float32 range")


# --------------------------------------------------------------------------- nonsense specs


@pytest.mark.parametrize("output,loss,fix", [("identity", "bce", "bce_logits"), ("gelu", "bce", "bce_logits"),
                                             ("identity", "cce", "softmax_cce"), ("relu", "cce", "softmax_cce")])
def test_hostile_probability_loss_needs_probability_output(output, loss, fix, tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(f'[[layers]]\ninputs = 2\nunits = 2\nactivation = "{output}"\n[loss]\nname = "{loss}"\n')
    code, _, err = run_cli(capsys, "check", str(path))
    assert code == 2
    assert_one_line(err, "check", f"layers[0].activation: '{output}' does not output probabilities")
    assert repr(fix) in err


# ----------------------------------------------------------------------------- absurd sizes


@pytest.mark.parametrize("text,extra,field", [
    ('[[layers]]\ninputs = 1\nunits = 1000000000\n', (), "layers[0].units"),
    ('[[layers]]\ninputs = 1\nunits = 1\n[data]\nname = "linear"\nsamples = 1000000000000\n', (), "data.samples"),
    ('[[layers]]\ninputs = 4\nunits = 4\n', ("--batch", str(10**11)), "--batch"),
], ids=["units-1e9", "samples-1e12", "batch-1e11"])
def test_hostile_size_refused_up_front(text, extra, field, tmp_path, capsys):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    code, _, err = run_cli(capsys, "check", str(path), *extra)
    assert code == 2
    assert_one_line(err, "check", f"{field}: would need about ")
    assert "NNPARITY_MAX_MEMORY" in err


def test_hostile_size_limit_settable(tmp_path, capsys, monkeypatch):
    path = tmp_path / "spec.toml"
    path.write_text('[[layers]]\ninputs = 64\nunits = 1000\n')
    assert run_cli(capsys, "check", str(path))[0] == 0
    monkeypatch.setenv("NNPARITY_MAX_MEMORY", "1MB")
    code, _, err = run_cli(capsys, "check", str(path))
    assert code == 2 and "limit of 977 KiB" in err
    monkeypatch.setenv("NNPARITY_MAX_MEMORY", "lots")
    code, _, err = run_cli(capsys, "check", str(path))
    assert code == 2
    assert_one_line(err, "check", "NNPARITY_MAX_MEMORY: expected a size")


# ------------------------------------------------------------------ work thrown away, overwrites

SQUARE = ROOT / "specs" / "square.toml"


@pytest.mark.parametrize("command,plot,fragment", [
    ("train", "missing_dir/x.png", "no such directory"),
    ("train", ".", "expected a .png file name"),
    ("compare", "a_dir.png", "is a directory"),
    ("compare", "missing_dir/x.png", "no such directory"),
], ids=["train-missing-dir", "train-not-png", "compare-directory", "compare-missing-dir"])
def test_hostile_output_refused_before_work(command, plot, fragment, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_dir.png").mkdir()
    code, out, err = run_cli(capsys, command, str(SQUARE), "--plot", plot, "--quiet")
    assert code == 2 and out == ""
    assert_one_line(err, command, "--plot: ")
    assert fragment in err


def test_hostile_existing_output_needs_force(tmp_path, capsys):
    plot = tmp_path / "loss.png"
    plot.write_bytes(b"the user's own picture")
    code, out, err = run_cli(capsys, "train", str(SQUARE), "--epochs", "2", "--plot", str(plot), "--quiet")
    assert code == 2 and out == "" and plot.read_bytes() == b"the user's own picture"
    assert_one_line(err, "train", "exists; pass --force to overwrite it")
    code, out, _ = run_cli(capsys, "train", str(SQUARE), "--epochs", "2", "--plot", str(plot), "--quiet", "--force")
    assert code == 0 and "final loss" in out and plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["loss.png"]  # no temporary file left beside it


def test_hostile_compare_default_plot_is_replaceable(tmp_path, monkeypatch):
    """The default plot is compare's own output: a second run of the README's first command replaces it."""
    from nnparity.cli import build_parser
    from nnparity.commands.compare.command import DEFAULT_PLOT, checked_options

    monkeypatch.chdir(tmp_path)
    (tmp_path / DEFAULT_PLOT).write_bytes(b"an earlier run's plot")
    parser, _ = build_parser(["compare"])
    assert checked_options(parser.parse_args(["compare"])) == DEFAULT_PLOT
    from nnparity.usage import UsageError
    with pytest.raises(UsageError, match="exists; pass --force"):
        checked_options(parser.parse_args(["compare", "--plot", DEFAULT_PLOT]))


def test_hostile_diverged_run_keeps_its_history(tmp_path, capsys):
    path = tmp_path / "diverge.toml"
    text = SQUARE.read_text()
    assert "lr = 0.15" in text
    path.write_text(text.replace("lr = 0.15", "lr = 1e150"))
    code, out, err = run_cli(capsys, "train", str(path), "--json", "--quiet")
    assert code == 1 and "training diverged" in err and "Traceback" not in err
    doc = json.loads(out)
    assert doc["stopped"] == "diverged" and doc["diverged"]["step"] >= 1
    assert doc["diverged"]["message"] in err
    assert len(doc["history"]["step_loss"]) == doc["diverged"]["step"] - 1


# ----------------------------------------------------------------------------------- extremes


def _check_file(tmp_path, capsys, text, *extra):
    path = tmp_path / "spec.toml"
    path.write_text(text)
    code, out, _ = run_cli(capsys, "check", str(path), "--json", *extra)
    return code, json.loads(out)


def test_hostile_extreme_sigmoid_minus_500_bce(tmp_path, capsys):
    """p = σ(−500) = 7.1e-218 under target 0: the loss is −log1p(−p) = 7.1e-218 on both sides."""
    code, doc = _check_file(tmp_path, capsys, '[[layers]]\ninputs = 1\nunits = 1\nactivation = "sigmoid"\n'
                            'weight = [[-500.0]]\nbias = [0.0]\n[loss]\nname = "bce"\n[data]\nx = [[1.0]]\ny = [[0.0]]\n')
    assert code == 0 and doc["scratch"]["loss"] == pytest.approx(7.1245764067412855e-218, rel=1e-12)


def test_hostile_extreme_gelu_tanh_1e300_torch_overflow(tmp_path, capsys):
    """torch's gelu_tanh cubes z: at |z| = 1e300 its gradient is NaN, scratch's the exact limit;
    reported as torch's documented overflow, not FAIL, and no pass either."""
    code, doc = _check_file(tmp_path, capsys, '[[layers]]\ninputs = 1\nunits = 2\nactivation = "gelu_tanh"\n'
                            'weight = [[1e300, -1e300]]\nbias = [0.0, 0.0]\n[[layers]]\nunits = 1\nactivation = "sigmoid"\n'
                            'weight = [[1e-300], [1e-300]]\n[loss]\nname = "bce"\n[data]\nx = [[1.0]]\ny = [[1.0]]\n')
    results = {name: e["result"] for name, e in doc["errors"]["grads"].items()}
    assert code == 1 and results["layers.0.weight"] == "torch overflow" and "FAIL" not in results.values()
    assert all(v is not None for v in doc["scratch"]["grads"]["layers.0.weight"][0])


def test_hostile_extreme_mse_target_1e308_gradient_finite(tmp_path, capsys):
    """pred − target = −1e308 under mean MSE: the loss overflows on both sides (not a pass), but
    dL/dpred = 2(pred − target)/N = −5e307 is finite in torch and must be in scratch too (2·diff
    before the division overflowed: a false FAIL on every gradient)."""
    code, doc = _check_file(tmp_path, capsys, '[[layers]]\ninputs = 1\nunits = 1\nactivation = "identity"\n'
                            'weight = [[1.0]]\nbias = [0.0]\n[loss]\nname = "mse"\n[data]\nx = [[0.5], [0.25]]\n'
                            'y = [[1e308], [0.0]]\n')
    results = {name: e["result"] for name, e in doc["errors"]["grads"].items()}
    assert code == 1 and doc["errors"]["loss"]["result"] == "overflow"
    assert set(results.values()) == {"pass"}, results
    assert doc["scratch"]["grads"]["layers.0.bias"][0] == pytest.approx(-1e308, rel=1e-12)   # 2·(−1e308)/2
