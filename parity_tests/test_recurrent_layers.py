"""The recurrent kinds (rnn with tanh or relu, lstm, gru; stacked, bidirectional) against torch's own
nn.RNN, nn.LSTM and nn.GRU (batch_first=True): forward, every intermediate, loss and every gradient
through torch_ref.check.check (float64 <= 1e-12, float32 <= 1e-5); the hidden and cell states of
every layer at every step; whole training runs with every optimizer (per step <= 1e-10); resume
from a checkpoint bit for bit; and the spec's refusals as the command line reports them.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from conftest import CHECK_TOL, CNN_OPTIMIZER_RUNS as OPTIMIZER_RUNS, DTYPES, TRAJECTORY_TOL, assert_parity, \
    assert_check_refuses, assert_same_run, torch_checkpoint_roundtrip
from scratch import checkpoint
from scratch.checkpoint import Checkpointer
from scratch.layer_kinds import KINDS
from scratch.network import LAYER_CLASSES, Network, build_loss
from scratch.policy import rel_error
from scratch.spec import parse_spec
from scratch.training import train as scratch_train
from strict_xp import strict
from torch_ref.check import check, run_scratch, run_torch
from torch_ref.model import TORCH_DTYPES, TORCH_LAYERS, build
from torch_ref.training import train as torch_train

RECURRENT_KINDS = sorted(kind for kind, cls in KINDS.items() if cls.__module__ == "scratch.recurrent_kinds")
STEPS, VOCAB = 5, 7

VARIANTS = {
    "rnn": [{"hidden": 4}, {"hidden": 3, "nonlinearity": "relu"}, {"hidden": 3, "num_layers": 3, "bidirectional": True},
            {"hidden": 5, "nonlinearity": "relu", "num_layers": 2, "activation": "tanh"}],
    "lstm": [{"hidden": 4}, {"hidden": 3, "num_layers": 2}, {"hidden": 3, "bidirectional": True},
             {"hidden": 2, "num_layers": 2, "bidirectional": True, "activation": "relu"}],
    "gru": [{"hidden": 4}, {"hidden": 3, "num_layers": 2}, {"hidden": 3, "bidirectional": True},
            {"hidden": 2, "num_layers": 3, "bidirectional": True}],
}
CASES = [(kind, i) for kind in RECURRENT_KINDS for i in range(len(VARIANTS[kind]))]


def recurrent_spec(layer: dict, dtype: str = "float64", seed: int = 0, readout: bool = False):
    """embedding -> the recurrent layer -> a dense layer at every step (token_cce), or a readout of
    the last step and a class loss."""
    tail = ([{"kind": "seq_last"}, {"units": 3}], "softmax_cce") if readout else ([{"units": VOCAB}], "token_cce")
    layers = [{"kind": "embedding", "vocab": VOCAB, "dim": 4}, layer, *tail[0]]
    return parse_spec({"seed": seed, "dtype": dtype, "input_shape": [STEPS], "layers": layers,
                       "loss": {"name": tail[1]}})


def test_recurrent_layers_registries_name_the_same_kinds():
    assert set(RECURRENT_KINDS) == {"rnn", "lstm", "gru"}
    assert set(RECURRENT_KINDS) <= set(LAYER_CLASSES) & set(TORCH_LAYERS)
    assert set(VARIANTS) == set(RECURRENT_KINDS)
    for kind in RECURRENT_KINDS:
        doc = LAYER_CLASSES[kind].__doc__
        assert "Backward" in doc and "Torch twin" in doc, kind


@pytest.mark.parametrize("readout", [False, True], ids=["per-step", "last-step"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_recurrent_layers_parity(kind, i, dtype, readout):
    spec = recurrent_spec({"kind": kind, **VARIANTS[kind][i]}, dtype=dtype, seed=i, readout=readout)
    report = check(spec, batch=3)
    assert_parity(report)
    grads = report["scratch"]["grads"]
    assert set(grads) == set(report["torch"]["grads"])
    layer = spec.layers[1]
    assert len([name for name in grads if name.startswith("layers.1.")]) == 4 * layer.num_layers * layer.directions
    assert all(np.any(grads[name] != 0) for name in grads if name.startswith("layers.1.weight_ih")), \
        "a gradient missed a layer or direction"


@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_recurrent_layers_parity_on_the_strict_device(kind, i):
    """The same pass on the CuPy stand-in that refuses host round-trips (parity_tests/strict_xp.py)."""
    spec = recurrent_spec({"kind": kind, **VARIANTS[kind][i]}, seed=i)
    rng = np.random.default_rng(i)
    x, y = rng.integers(0, VOCAB, size=(3, STEPS)), rng.integers(0, VOCAB, size=(3, STEPS))
    ours, theirs = run_scratch(spec, x, y, xp=strict), run_torch(spec, x, y)
    assert rel_error(ours["output"], theirs["output"]) <= CHECK_TOL["float64"]
    for name, grad in theirs["grads"].items():
        assert rel_error(ours["grads"][name], grad) <= CHECK_TOL["float64"], name


# ----------------------------------------------------------------------- states at every step


def pair(kind: str, dtype: str, **fields):
    """The scratch layer and its torch module (as the spec builds them, with the same weights), and
    a seeded float sequence (N, T, D) for them."""
    spec = recurrent_spec({"kind": kind, "hidden": 3, **fields}, dtype=dtype, seed=7)
    ours, theirs = Network.from_spec(spec).layers[1], build(spec).linears[1]
    x = np.random.default_rng(2).normal(size=(4, 6, 4)).astype(dtype)
    return ours, theirs, x


def torch_full(module, x, state=None):
    """torch's own (output, final state) of the recurrent module (the spec's twin keeps the output only)."""
    return super(type(module), module).forward(x, state) if state is not None else super(type(module), module).forward(x)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_recurrent_layers_states_at_every_step(kind, dtype):
    """Two stacked layers: scratch's hidden (and cell) state of each layer at each step t against
    torch's final state after the first t + 1 steps, the sequence fed to torch's module one step at
    a time with its state carried."""
    ours, theirs, x = pair(kind, dtype, num_layers=2)
    ours.forward(x)
    states = ours.states()
    xt = torch.tensor(x)
    state = None
    with torch.no_grad():
        for t in range(x.shape[1]):
            _, state = torch_full(theirs, xt[:, t:t + 1], state)
            h, c = state if kind == "lstm" else (state, None)
            for layer in range(2):
                assert rel_error(states[f"h_l{layer}"][:, t], h[layer].numpy()) <= CHECK_TOL[dtype], (t, layer)
                if c is not None:
                    assert rel_error(states[f"c_l{layer}"][:, t], c[layer].numpy()) <= CHECK_TOL[dtype], (t, layer)
    assert ("c_l1" in states) == (kind == "lstm")


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_recurrent_layers_bidirectional_states(kind):
    """Each layer of a stacked bidirectional network: every step's states of both directions against
    the output of torch's module cut to that many layers (the same weights), and the final states."""
    ours, theirs, x = pair(kind, "float64", num_layers=2, bidirectional=True)
    ours.forward(x)
    states = ours.states()
    with torch.no_grad():
        _, final = torch_full(theirs, torch.tensor(x))
        first = type(theirs).__mro__[1](4, 3, num_layers=1, batch_first=True, bidirectional=True, dtype=torch.float64)
        first.load_state_dict({k: v for k, v in theirs.state_dict().items() if "_l0" in k})
        outputs = {0: first(torch.tensor(x))[0].numpy(), 1: torch_full(theirs, torch.tensor(x))[0].numpy()}
    h_n, c_n = final if kind == "lstm" else (final, None)
    for layer in range(2):
        both = np.concatenate([states[f"h_l{layer}"], states[f"h_l{layer}_reverse"]], axis=2)
        assert rel_error(both, outputs[layer]) <= CHECK_TOL["float64"], layer
        assert rel_error(states[f"h_l{layer}"][:, -1], h_n[2 * layer].numpy()) <= CHECK_TOL["float64"]
        assert rel_error(states[f"h_l{layer}_reverse"][:, 0], h_n[2 * layer + 1].numpy()) <= CHECK_TOL["float64"]
        if c_n is not None:
            assert rel_error(states[f"c_l{layer}"][:, -1], c_n[2 * layer].numpy()) <= CHECK_TOL["float64"]
            assert rel_error(states[f"c_l{layer}_reverse"][:, 0], c_n[2 * layer + 1].numpy()) <= CHECK_TOL["float64"]


@pytest.mark.parametrize("dtype", DTYPES)
def test_recurrent_layers_sigmoid_at_the_extremes(dtype):
    """The gates' sigmoid never overflows for a finite input (warnings are errors here), keeps SciPy's
    expit to a few roundings wherever that is above the bound's value (σ(−0.9·ln max)), and gives at
    most that value below it; its ``out`` may be its input."""
    from scipy.special import expit

    from scratch.recurrent import sigmoid

    info = np.finfo(dtype)
    z = np.array([info.min, -1e4, -200, -70, -30, -1, -1e-30, 0, 1e-30, 1, 30, 200, info.max], dtype=dtype)
    floor = expit(np.float64(-0.9 * np.log(np.float64(info.max))))
    got = sigmoid(z, np).astype(np.float64)
    expected = expit(z.astype(np.float64))
    above = expected > floor
    assert np.all(np.abs(got[above] - expected[above]) <= 4 * info.eps * expected[above])
    assert np.all((0 < got[~above]) & (got[~above] <= floor * (1 + 4 * info.eps)))
    same = z.copy()
    assert sigmoid(same, np, out=same) is same and np.array_equal(same, sigmoid(z, np))


def test_recurrent_layers_release_what_forward_kept():
    spec = recurrent_spec({"kind": "lstm", "hidden": 3})
    net = Network.from_spec(spec)
    x = np.random.default_rng(0).integers(0, VOCAB, size=(2, STEPS))
    net.loss_and_gradients(x, np.zeros((2, STEPS), dtype=np.int64), build_loss(spec))
    assert net.layers[1].saved is None


# --------------------------------------------------------------------------------- training


def recurrent_run(kind: str, optimizer: dict, epochs: int = 3) -> dict:
    return {"seed": 3, "input_shape": [8],
            "layers": [{"kind": "embedding", "vocab": 6, "dim": 5},
                       {"kind": kind, "hidden": 6, "bidirectional": kind == "gru"}, {"units": 6}],
            "loss": {"name": "token_cce"}, "optimizer": optimizer,
            "data": {"name": "reverse", "samples": 48, "test_fraction": 0.25},
            "train": {"epochs": epochs, "batch_size": 12, "shuffle": True}}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_RUNS))
@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
def test_recurrent_layers_training_run_parity(kind, name):
    """Both loops, step by step, on the reverse task: 9 shuffled steps of each optimizer (clipping,
    momentum and weight decay among them)."""
    spec = parse_spec(recurrent_run(kind, OPTIMIZER_RUNS[name]))
    ours, theirs = scratch_train(spec, progress=False), torch_train(spec, progress=False)
    assert len(ours.history.step_loss) == 9
    assert_same_run(ours, theirs, TRAJECTORY_TOL, f"{kind} on reverse with {name}")
    assert ours.test_loss == pytest.approx(theirs.test_loss, rel=TRAJECTORY_TOL, abs=0)


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_recurrent_layers_resume_bit_identical(backend, tmp_path):
    """An LSTM run of two epochs at once, or one, a checkpoint and one more: the same losses and
    parameters, bit for bit."""
    trainer = scratch_train if backend == "scratch" else torch_train
    spec = parse_spec(recurrent_run("lstm", OPTIMIZER_RUNS["adam"], epochs=2))
    whole = trainer(spec, progress=False)
    path = tmp_path / checkpoint.FILENAME
    trainer(spec, epochs=1, progress=False, checkpoints=Checkpointer(path))
    saved = checkpoint.load(path)
    assert saved.params["layers.1.weight_hh_l0"].shape == (24, 6)
    resumed = trainer(spec, progress=False, checkpoints=Checkpointer(tmp_path / "again.npz", resume=saved))
    assert resumed.history.step_loss == whole.history.step_loss
    for name, value in whole.params.items():
        assert np.array_equal(resumed.params[name], value), name


def test_recurrent_layers_checkpoint_roundtrip_through_torch(tmp_path):
    """scratch's checkpoint of a GRU -> a torch .pt (nn.GRU's own parameter names) -> back, bit for bit."""
    spec = parse_spec(recurrent_run("gru", OPTIMIZER_RUNS["adam"], epochs=1))
    original, model_state = torch_checkpoint_roundtrip(spec, tmp_path)
    assert torch.equal(model_state["linears.1.weight_ih_l0_reverse"],
                       torch.from_numpy(original.params["layers.1.weight_ih_l0_reverse"]))


def test_recurrent_layers_initial_weights_are_torchs_distribution():
    """U(±1/√hidden) for every weight and bias, as nn.LSTM starts them."""
    spec = recurrent_spec({"kind": "lstm", "hidden": 64})
    params = {k: v for k, v in Network.from_spec(spec).parameters().items() if k.startswith("layers.1.")}
    module = torch.nn.LSTM(4, 64, batch_first=True, dtype=TORCH_DTYPES["float64"])
    for name, value in params.items():
        theirs = getattr(module, name.split(".")[-1]).detach().numpy()
        assert value.shape == theirs.shape
        assert np.abs(value).max() <= 1 / 8 and np.abs(value).max() == pytest.approx(np.abs(theirs).max(), rel=0.1)


# ------------------------------------------------------------------------------- the spec


def seq_spec(layer: dict, input_shape=(STEPS,), first=None) -> dict:
    first = first or [{"kind": "embedding", "vocab": VOCAB, "dim": 4}]
    return {"input_shape": list(input_shape), "layers": [*first, layer, {"units": VOCAB}],
            "loss": {"name": "token_cce"}}


BAD_SPECS = [
    ("hidden-zero", seq_spec({"kind": "lstm", "hidden": 0}), "layers[1].hidden", ["must be >= 1"]),
    ("hidden-missing", seq_spec({"kind": "gru"}), "layers[1].hidden", ["missing"]),
    ("layers-absurd", seq_spec({"kind": "lstm", "hidden": 3, "num_layers": 10**11}), "layers[1].num_layers",
     ["at most 10000"]),
    ("layers-zero", seq_spec({"kind": "rnn", "hidden": 3, "num_layers": 0}), "layers[1].num_layers", [">= 1"]),
    ("nonlinearity", seq_spec({"kind": "rnn", "hidden": 3, "nonlinearity": "sigmoid"}), "layers[1].nonlinearity",
     ["sigmoid", "tanh", "relu"]),
    ("lstm-nonlinearity", seq_spec({"kind": "lstm", "hidden": 3, "nonlinearity": "relu"}),
     "layers[1].nonlinearity", ["unknown field"]),
    ("bidirectional-not-bool", seq_spec({"kind": "gru", "hidden": 3, "bidirectional": "yes"}),
     "layers[1].bidirectional", ["true or false"]),
    ("on-token-ids", {"input_shape": [STEPS], "layers": [{"kind": "lstm", "hidden": 3}, {"units": VOCAB}],
                      "loss": {"name": "token_cce"}}, "layers[0].kind", ["[time, features]", "embedding"]),
    ("on-features", {"layers": [{"inputs": 3, "units": 4}, {"kind": "gru", "hidden": 2}, {"kind": "seq_last"},
                                {"units": 2}]}, "layers[1].kind", ["[time, features]", "[4]"]),
]


@pytest.mark.parametrize("raw,field,words", [case[1:] for case in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_recurrent_layers_bad_spec_exits_2_naming_layer_and_field(raw, field, words, tmp_path, capsys):
    assert_check_refuses(raw, field, words, tmp_path, capsys)


# ------------------------------------------------------------------------------------ README


def readme_sequence_block() -> list[str]:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = text.split("### Sequences: embeddings and recurrent layers", 1)[1].split("```bash\n", 1)[1]
    return block.split("```", 1)[0].strip().splitlines()


def _readme_sequence_expectations() -> dict:
    """What each of the README's sequence commands must print (its first two words after nnparity)."""
    import re

    def lm(out):
        assert float(re.search(r"test loss ([0-9.]+)", out).group(1)) < 1.4
        assert "sample (greedy): 'And God said" in out

    return {"check specs/char_lstm.toml": lambda out: out.rstrip().endswith("all tensors agree"),
            "compare specs/char_lstm.toml": lambda out: "parity: the three per-step loss trajectories agree" in out,
            "train specs/char_lstm.toml": lambda out: lm(out) is None,
            "train specs/seq_gru.toml":
                lambda out: float(re.search(r"test accuracy ([0-9.]+)%", out).group(1)) > 90}


@pytest.mark.slow
@pytest.mark.parametrize("line", readme_sequence_block(), ids=lambda line: "-".join(line.split("#")[0].split()[1:3]))
def test_recurrent_layers_readme_commands_as_written(line, tmp_path):
    """The README's sequence commands, as written, one each: check agrees on every tensor,
    compare's three backends agree per step, the char-LSTM reaches its documented test loss and
    prints its sample, the GRU adds."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    os.symlink(root / "specs", tmp_path / "specs")
    words = line.split("#")[0].split()
    assert words[0] == ".venv/bin/nnparity"
    proc = subprocess.run([sys.executable, "-m", "nnparity", *words[1:]], capture_output=True, text=True,
                          timeout=900, cwd=tmp_path, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
    assert proc.returncode == 0, f"{line}: {proc.stderr[-2000:]}"
    assert _readme_sequence_expectations()[" ".join(words[1:3])](proc.stdout), proc.stdout
