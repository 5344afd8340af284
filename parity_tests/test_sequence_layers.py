"""The sequence layer kinds (embedding, positional_embedding, seq_last, seq_mean, a dense layer at every
time step) and the per-token loss token_cce against torch's own modules: forward, every
intermediate, loss and every gradient through torch_ref.check.check (float64 <= 1e-12, float32 <=
1e-5); the padding row's gradient; whole training runs with every optimizer; the token data (the
shipped text, the generated tasks and their known solutions); the spec's refusals as the command
line reports them.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import CHECK_TOL, CNN_OPTIMIZER_RUNS as OPTIMIZER_RUNS, DTYPES, TRAJECTORY_TOL, assert_parity, \
    assert_check_refuses, assert_close, assert_same_run
from nnparity.cli import main
from scratch.data import load_dataset
from scratch.layer_kinds import KINDS
from scratch.losses import make_loss
from scratch.network import LAYER_CLASSES
from scratch.sequence_data import PLUS, EQUALS, SEPARATOR, TEXT_PATH, decode, load_text, text_vocab
from scratch.spec import parse_spec
from scratch.training import train as scratch_train
from torch_ref.check import check
from torch_ref.model import TORCH_LAYERS, TORCH_LOSSES
from torch_ref.training import train as torch_train

SEQ_KINDS = sorted(kind for kind, cls in KINDS.items() if cls.__module__ == "scratch.seq_kinds")
STEPS, VOCAB = 6, 9

# Each kind in a small network on token ids: an embedding, the layer under test between dense
# layers at every time step, then a per-token loss (a sequence output) or a readout and a class loss.
VARIANTS = {
    "embedding": [{"vocab": VOCAB, "dim": 5}, {"vocab": VOCAB, "dim": 4, "padding_index": 0},
                  {"vocab": VOCAB, "dim": 3, "padding_index": VOCAB - 1, "activation": "tanh"}],
    "positional_embedding": [{"max_len": STEPS}, {"max_len": 11, "activation": "relu"}],
    "seq_last": [{}, {"activation": "tanh"}],
    "seq_mean": [{}, {"activation": "sigmoid"}],
}
CASES = [(kind, i) for kind in SEQ_KINDS for i in range(len(VARIANTS[kind]))]


def token_spec(layer: dict, dtype: str = "float64", seed: int = 0, **extra) -> object:
    kind = layer["kind"]
    embedding = layer if kind == "embedding" else {"kind": "embedding", "vocab": VOCAB, "dim": 5}
    layers = [embedding] + ([] if kind == "embedding" else [{"units": 4, "activation": "tanh"}, layer])
    if kind in ("seq_last", "seq_mean"):
        layers.append({"units": 3})
        loss = {"name": "softmax_cce"}
    else:
        layers += [{"units": 6, "activation": "tanh"}, {"units": VOCAB}]
        loss = {"name": "token_cce", "ignore_index": 2}
    return parse_spec({"seed": seed, "dtype": dtype, "input_shape": [STEPS], "layers": layers, "loss": loss,
                       **extra})


def test_sequence_layers_registries_name_the_same_kinds():
    assert set(SEQ_KINDS) == {"embedding", "positional_embedding", "seq_last", "seq_mean"}
    assert set(SEQ_KINDS) <= set(LAYER_CLASSES) & set(TORCH_LAYERS)
    assert set(VARIANTS) == set(SEQ_KINDS)
    for kind in SEQ_KINDS:
        doc = LAYER_CLASSES[kind].__doc__
        assert "Backward" in doc and "Torch twin" in doc, kind


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_sequence_layers_parity(kind, i, dtype):
    spec = token_spec({"kind": kind, **VARIANTS[kind][i]}, dtype=dtype, seed=i)
    report = check(spec, batch=4)
    assert_parity(report)
    grads = report["scratch"]["grads"]
    assert "input" not in grads   # token ids have no gradient, on either side
    assert set(grads) == set(report["torch"]["grads"])
    assert np.any(grads["layers.0.weight"] != 0), "no gradient reached the embedding"
    assert report["scratch"]["output"].shape == (4, *spec.shapes[-1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_sequence_layers_padding_row_gets_no_gradient(dtype):
    """Ids that are the padding index everywhere in the batch: the padding row starts at zero, its
    gradient is exactly 0 on both sides, and every other row read gets one."""
    spec = token_spec({"kind": "embedding", "vocab": VOCAB, "dim": 4, "padding_index": 3}, dtype=dtype)
    x = np.array([[3, 1, 3, 4, 3, 5], [3, 3, 6, 1, 7, 3]])
    y = np.array([[1, 5, 0, 4, 5, 6], [7, 8, 1, 6, 3, 4]])   # no 2: the ignore_index of token_spec
    report = check(spec, x=x, y=y)
    assert_parity(report)
    for side in ("scratch", "torch"):
        grad = report[side]["grads"]["layers.0.weight"]
        assert np.all(grad[3] == 0), side
        assert np.all(np.any(grad[[1, 4, 5, 6, 7]] != 0, axis=1)), side
        assert np.all(grad[[0, 2, 8]] == 0), side   # rows no id read


def token_targets(rng, n: int, steps: int, classes: int):
    target = rng.integers(0, classes, size=(n, steps))
    target[rng.uniform(size=(n, steps)) < 0.4] = -1
    target[0, 0] = 0
    return target


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_sequence_layers_token_loss_is_torchs_cross_entropy(reduction, dtype):
    """token_cce with ignore_index −1 against nn.CrossEntropyLoss(ignore_index=−1) on (N·T, V) itself."""
    rng = np.random.default_rng(4)
    pred = rng.normal(size=(3, 5, 7)).astype(dtype)
    target = token_targets(rng, 3, 5, 7)
    ours = make_loss("token_cce", reduction, ignore_index=-1)
    value = ours.forward(pred, target)
    grad = ours.backward()
    pt = torch.tensor(pred, requires_grad=True)
    vt = nn.CrossEntropyLoss(ignore_index=-1, reduction=reduction)(pt.reshape(-1, 7), torch.tensor(target).reshape(-1))
    vt.backward()
    assert_close(value, vt.item(), dtype, what="token_cce value")
    assert_close(grad, pt.grad.numpy(), dtype, what="token_cce gradient")
    assert np.all(grad[target == -1] == 0)
    twin = TORCH_LOSSES["token_cce"](reduction, -1)(torch.tensor(pred), torch.tensor(target))
    assert_close(value, twin.item(), dtype, what="token_cce twin")


def test_sequence_layers_token_loss_with_every_target_ignored_is_nan_as_torchs():
    pred = np.random.default_rng(0).normal(size=(2, 3, 4))
    target = np.full((2, 3), -100)
    value = make_loss("token_cce").forward(pred, target)
    theirs = nn.CrossEntropyLoss()(torch.tensor(pred).reshape(-1, 4), torch.tensor(target).reshape(-1))
    assert np.isnan(value) and torch.isnan(theirs)


# --------------------------------------------------------------------------------- training


def token_run(optimizer: dict, task: str = "copy", dtype: str = "float64") -> dict:
    return {"seed": 5, "dtype": dtype, "input_shape": [8],
            "layers": [{"kind": "embedding", "vocab": 6, "dim": 6, "padding_index": 0},
                       {"kind": "positional_embedding", "max_len": 8},
                       {"units": 12, "activation": "tanh"}, {"units": 6}],
            "loss": {"name": "token_cce"}, "optimizer": optimizer,
            "data": {"name": task, "samples": 48, "test_fraction": 0.25},
            "train": {"epochs": 3, "batch_size": 12, "shuffle": True}}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_RUNS))
def test_sequence_layers_training_run_parity(name):
    """Both loops, step by step, on the copy task: 9 shuffled steps of each optimizer, and the
    per-token accuracy over the steps that have a target."""
    spec = parse_spec(token_run(OPTIMIZER_RUNS[name]))
    ours, theirs = scratch_train(spec, progress=False), torch_train(spec, progress=False)
    assert len(ours.history.step_loss) == 9
    assert_same_run(ours, theirs, TRAJECTORY_TOL, f"copy task with {name}")
    assert ours.test_loss == pytest.approx(theirs.test_loss, rel=TRAJECTORY_TOL, abs=0)
    assert ours.test_accuracy == theirs.test_accuracy and 0 <= ours.test_accuracy <= 1


# ------------------------------------------------------------------------------------- data


def dataset(task: str, steps: int, vocab: int, samples: int = 50):
    last = {"units": vocab}
    spec = parse_spec({"seed": 3, "input_shape": [steps], "loss": {"name": "token_cce"},
                       "layers": [{"kind": "embedding", "vocab": vocab, "dim": 2}, last],
                       "data": {"name": task, "samples": samples}})
    data = load_dataset(spec)
    return data.x_train, data.y_train


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_sequence_layers_echo_tasks_solutions(task):
    """x = L symbols, the separator, blanks; y = nothing (−100) for L steps, then the symbols
    (reversed for reverse)."""
    x, y = dataset(task, 10, 7)
    assert x.shape == y.shape == (50, 10) and x.dtype == y.dtype == np.int64
    symbols = x[:, :5]
    assert np.all((symbols >= 2) & (symbols < 7)) and np.all(x[:, 5] == SEPARATOR)
    assert np.all(y[:, :5] == -100)
    assert np.array_equal(y[:, 5:], symbols[:, ::-1] if task == "reverse" else symbols)


def test_sequence_layers_addition_solutions():
    """Every row's answer digits read as a number are the sum of its two operands (digits least
    significant first, as the inputs)."""
    x, y = dataset("addition", 11, 13, samples=200)
    digits = 3
    assert np.all(x[:, digits] == PLUS) and np.all(x[:, 2 * digits + 1] == EQUALS)
    assert np.all(y[:, :2 * digits + 1] == -100)

    def number(row):
        return sum(int(d) * 10 ** k for k, d in enumerate(row))

    for xr, yr in zip(x, y):
        assert number(yr[2 * digits + 1:]) == number(xr[:digits]) + number(xr[digits + 1:2 * digits + 1])


def test_sequence_layers_text_is_next_character():
    """The shipped text: windows of T characters, each target the next character; the ids decode
    back to the text."""
    text, vocab = load_text(), text_vocab()
    assert TEXT_PATH.stat().st_size == len(text.encode()) and 20_000 < len(text) < 60_000
    assert len(vocab) == 59 and text.startswith("In the beginning God created the heaven and the earth.")
    x, y = dataset("text", 32, 59, samples=10)
    assert np.array_equal(x[:, 1:], y[:, :-1])
    assert decode(np.concatenate([x[0], y[0, -1:]]), vocab) == text[:33]
    assert decode(x[1], vocab) == text[32:64]


# ------------------------------------------------------------------------------- the spec


GOOD = [{"kind": "embedding", "vocab": 5, "dim": 3}, {"kind": "positional_embedding", "max_len": 4},
        {"units": 5}]


def bad(index: int, **fields) -> dict:
    layers = [dict(layer) for layer in GOOD]
    layers[index].update(fields)
    return {"input_shape": [4], "layers": layers, "loss": {"name": "token_cce"}}


def inline(x, y=None, **loss) -> dict:
    return {**bad(0), "loss": {"name": "token_cce", **loss},
            "data": {"x": x, "y": y if y is not None else [[0] * 4 for _ in x]}}


BAD_SPECS = [
    ("vocab-zero", bad(0, vocab=0), "layers[0].vocab", ["must be >= 1"]),
    ("dim-negative", bad(0, dim=-2), "layers[0].dim", ["must be >= 1"]),
    ("padding-out-of-range", bad(0, padding_index=5), "layers[0].padding_index", ["5", "0 to 4"]),
    ("padding-negative", bad(0, padding_index=-1), "layers[0].padding_index", [">= 0"]),
    ("table-too-short", bad(1, max_len=3), "layers[1].max_len", ["4 steps", "3 positions"]),
    ("max-len-zero", bad(1, max_len=0), "layers[1].max_len", ["must be >= 1"]),
    ("embedding-not-first", {**bad(0), "layers": [{"units": 3, "inputs": 4}, GOOD[0], GOOD[2]]}, "layers[1].kind",
     ["token ids", "layers[0]"]),
    ("tokens-need-one-axis", {**bad(0), "input_shape": [2, 3, 4]}, "input_shape", ["[T]", "[2, 3, 4]"]),
    ("positional-on-features", {"input_shape": [4], "layers": [{"kind": "positional_embedding", "max_len": 4},
                                {"units": 2}]}, "layers[0].kind", ["[time, features]", "[4]"]),
    ("readout-on-features", {"layers": [{"inputs": 3, "units": 4}, {"kind": "seq_mean"}]}, "layers[1].kind",
     ["[time, features]"]),
    ("token-loss-on-features", {**bad(0), "layers": [GOOD[0], {"kind": "seq_last"}, {"units": 5}]}, "loss.name",
     ["token_cce", "[5]"]),
    ("class-loss-on-sequence", {**bad(0), "loss": {"name": "softmax_cce"}}, "layers[2].kind",
     ["seq_last", "token_cce"]),
    ("ignore-index-on-mse", {"layers": [{"inputs": 2, "units": 1}], "loss": {"name": "mse", "ignore_index": 0}},
     "loss.ignore_index", ["token_cce"]),
    ("token-out-of-range", inline([[0, 1, 2, 5]]), "data.x", ["token id 5", "vocab of 5", "0 to 4"]),
    ("token-negative", inline([[0, -1, 2, 3]]), "data.x", ["token id -1"]),
    ("token-not-integer", inline([[0, 1.5, 2, 3]]), "data.x", ["integers"]),
    ("tokens-wrong-length", inline([[0, 1, 2]]), "data.x", ["(N, 4)"]),
    ("target-out-of-range", inline([[0, 1, 2, 3]], [[0, 1, 7, 2]]), "data.y", ["target 7", "5 classes", "-100"]),
    ("target-not-the-ignore-index", inline([[0, 1, 2, 3]], [[0, 1, -100, 2]], ignore_index=4), "data.y",
     ["target -100", "or 4"]),
]


@pytest.mark.parametrize("raw,field,words", [case[1:] for case in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_sequence_layers_bad_spec_exits_2_naming_layer_and_field(raw, field, words, tmp_path, capsys):
    assert_check_refuses(raw, field, words, tmp_path, capsys)


def data_spec(name: str, steps: int = 8, vocab: int = 6, **changes) -> dict:
    raw = {"input_shape": [steps], "layers": [{"kind": "embedding", "vocab": vocab, "dim": 3}, {"units": vocab}],
           "loss": {"name": "token_cce"}, "data": {"name": name, "samples": 20}, "train": {"epochs": 1}}
    raw.update(changes)
    return raw


@pytest.mark.parametrize("raw,field,words", [
    (data_spec("text"), "layers[0].vocab", ["59", "got 6"]),
    (data_spec("copy", steps=7), "input_shape", ["even", "[7]"]),
    (data_spec("addition", steps=8, vocab=12), "layers[0].vocab", ["exactly 13"]),
    (data_spec("addition", steps=9, vocab=13), "input_shape", ["3·digits + 2"]),
    (data_spec("copy", vocab=2), "layers[0].vocab", ["at least 3"]),
    (data_spec("copy", layers=[{"kind": "embedding", "vocab": 6, "dim": 3}, {"units": 5}]), "layers[1].units",
     ["6 tokens", "5"]),
    (data_spec("digits"), "data.name", ["token ids"]),
    (data_spec("copy", loss={"name": "mse"}, layers=[{"kind": "embedding", "vocab": 6, "dim": 3},
                                                     {"kind": "seq_mean"}, {"units": 6}]), "loss.name", ["token_cce"]),
    ({"layers": [{"inputs": 2, "units": 2}], "data": {"name": "copy"}}, "data.name", ["embedding"]),
    (data_spec("copy", data={"name": "copy", "scale": "standard"}), "data.scale", ["not scaled"]),
], ids=["text-vocab", "copy-odd-length", "addition-vocab", "addition-length", "copy-vocab", "output-width",
        "float-data", "loss", "no-tokens", "scaled"])
def test_sequence_layers_train_refuses_in_one_line(raw, field, words, tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    assert main(["train", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{field}: " in err[0] and all(word in err[0] for word in words), err


def test_sequence_layers_spec_round_trip():
    spec = token_spec({"kind": "embedding", "vocab": VOCAB, "dim": 4, "padding_index": 0}, dtype="float32")
    raw = spec.to_dict()
    assert raw["layers"][0] == {"kind": "embedding", "vocab": VOCAB, "dim": 4, "padding_index": 0,
                                "activation": "identity", "activation_params": {}}
    assert raw["loss"]["ignore_index"] == 2
    assert parse_spec(json.loads(spec.to_json())) == spec
    import tomllib
    assert parse_spec(tomllib.loads(spec.to_toml())) == spec
    assert spec.shapes == [(STEPS,), (STEPS, 4), (STEPS, 6), (STEPS, VOCAB)]
    assert spec.vocab == VOCAB and spec.outputs == VOCAB
