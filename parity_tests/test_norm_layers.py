"""Normalization, dropout and residual blocks against torch's own modules: forward, every
intermediate, loss, every gradient and the buffers after the pass through torch_ref.check.check
(float64 <= 1e-12, float32 <= 1e-5) in train and in eval mode; running statistics after several
training steps; torch's own nn.Dropout against the shared mask stream; whole training runs with
every optimizer; resume from a checkpoint; and the spec's refusals as the command line reports them.

What the dropout tests prove, together: the shared stream gives both backends the same mask
(test_norm_layers_parity in train mode: scratch's x ⊙ keep/(1 − p) and torch_ref's StreamDropout
agree on every tensor), and torch's own nn.Dropout computes exactly StreamDropout's arithmetic for
the mask it draws itself (test_norm_layers_dropout_is_torchs_dropout: its output and gradient, bit
for bit, from the mask read back from its output). So scratch's dropout is torch's dropout, given
torch's mask.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from conftest import CHECK_TOL, CNN_OPTIMIZER_RUNS as OPTIMIZER_RUNS, DTYPES, TRAJECTORY_TOL, assert_parity, \
    assert_check_refuses, assert_same_run, resumed_run, run_nnparity, strict_and_torch, torch_checkpoint_roundtrip
from scratch import checkpoint
from scratch.checkpoint import Checkpointer
from scratch.dropout import keep_mask
from scratch.layer_kinds import KINDS
from scratch.network import LAYER_CLASSES, Network, build_loss
from scratch.optimizers import OPTIMIZERS
from scratch.policy import rel_error
from scratch.spec import parse_spec
from scratch.training import train as scratch_train
from torch_ref.check import check
from torch_ref.model import TORCH_LAYERS, StreamDropout, buffers_to_scratch, build, build_loss as torch_loss
from torch_ref.training import train as torch_train

NORM_KINDS = sorted(kind for kind, cls in KINDS.items() if cls.__module__ == "scratch.norm_kinds")
IMAGE = [3, 6, 5]
FEATURES = [5]

# Each kind in the settings it takes, on images and on features: the layer under test sits after a
# tanh convolution (or dense layer) and before a flatten and a dense output.
VARIANTS = {
    "batchnorm": [{}, {"momentum": 0.3, "eps": 1e-3, "activation": "relu"}, {"affine": False}],
    "layernorm": [{}, {"dims": 2, "eps": 1e-3}, {"dims": 1, "elementwise_affine": False, "activation": "tanh"}],
    "dropout": [{"p": 0.3}, {"p": 0.0, "activation": "relu"}, {"p": 0.8}],
    "residual": [
        {"body": [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "use_bias": False},
                  {"kind": "batchnorm", "activation": "relu"}, {"kind": "dropout", "p": 0.25}]},
        {"projection": True, "activation": "relu",
         "body": [{"kind": "conv2d", "out_channels": 6, "kernel": 3, "padding": 1, "stride": 2},
                  {"kind": "residual", "body": [{"kind": "layernorm", "dims": 2}]}]},
        {"projection": True, "body": [{"kind": "layernorm"}, {"kind": "dropout", "p": 0.5}]},
    ],
}
FEATURE_VARIANTS = {
    "batchnorm": [{}, {"momentum": 0.0}],
    "layernorm": [{}],
    "dropout": [{"p": 0.4}],
    "residual": [{"body": [{"units": 5, "activation": "relu"}, {"kind": "batchnorm"}]},
                 {"projection": True, "body": [{"units": 7, "activation": "tanh"}, {"kind": "dropout", "p": 0.2}]}],
}
CASES = [(kind, i, "image") for kind in NORM_KINDS for i in range(len(VARIANTS[kind]))]
CASES += [(kind, i, "features") for kind in NORM_KINDS for i in range(len(FEATURE_VARIANTS[kind]))]


def layer_spec(layer: dict, where: str, dtype: str = "float64", seed: int = 0):
    first = ({"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "activation": "tanh"}
             if where == "image" else {"units": 5, "activation": "tanh"})
    layers = [first, layer, {"kind": "flatten"}, {"units": 3}]
    return parse_spec({"seed": seed, "dtype": dtype, "input_shape": IMAGE if where == "image" else FEATURES,
                       "layers": layers, "loss": {"name": "softmax_cce"}})


def variant(kind: str, i: int, where: str) -> dict:
    return {"kind": kind, **(VARIANTS if where == "image" else FEATURE_VARIANTS)[kind][i]}


def test_norm_layers_registries_name_the_same_kinds():
    """Every new kind has a scratch layer and a torch twin, each documented, and a variant here."""
    assert set(NORM_KINDS) == {"batchnorm", "layernorm", "dropout", "residual"}
    assert set(NORM_KINDS) <= set(LAYER_CLASSES) & set(TORCH_LAYERS)
    assert set(VARIANTS) == set(FEATURE_VARIANTS) == set(NORM_KINDS)
    for kind in NORM_KINDS:
        doc = LAYER_CLASSES[kind].__doc__
        assert "Backward" in doc and "Torch twin" in doc, kind


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,i,where", CASES, ids=[f"{k}-{w}-{i}" for k, i, w in CASES])
def test_norm_layers_parity(kind, i, where, dtype, mode):
    spec = layer_spec(variant(kind, i, where), where, dtype=dtype, seed=i)
    report = check(spec, batch=4, mode=mode)
    assert_parity(report)
    grads = report["scratch"]["grads"]
    assert np.any(grads["layers.0.weight"] != 0), "no gradient reached the first layer"
    buffers = report["scratch"]["buffers"]
    counts = [name for name in buffers if name.endswith(("num_batches_tracked", "draws"))]
    for name in counts:   # one train-mode pass counts once; eval mode counts nothing
        assert int(buffers[name]) == (mode == "train"), name
    assert set(buffers) == set(report["torch"]["buffers"])


@pytest.mark.parametrize("kind,i,where", CASES, ids=[f"{k}-{w}-{i}" for k, i, w in CASES])
def test_norm_layers_parity_on_the_strict_device(kind, i, where):
    """The train-mode pass on the CuPy stand-in that refuses host round-trips (strict_xp.py):
    the same output, gradients and buffers as torch's."""
    ours, theirs = strict_and_torch(layer_spec(variant(kind, i, where), where, seed=i), i)
    assert rel_error(ours["output"], theirs["output"]) <= CHECK_TOL["float64"]
    for name, grad in theirs["grads"].items():
        assert rel_error(ours["grads"][name], grad) <= CHECK_TOL["float64"], name
    for name, value in theirs["buffers"].items():
        assert rel_error(ours["buffers"][name], value) <= CHECK_TOL["float64"], name


def trained_pair(spec, steps: int, rows: int = 6):
    """Both networks after ``steps`` train-mode forward and backward passes on seeded batches
    (no update: the buffers alone change)."""
    net, model = Network.from_spec(spec), build(spec)
    loss, loss_t = build_loss(spec), torch_loss(spec)
    rng = np.random.default_rng(7)
    for _ in range(steps):
        x = rng.normal(size=(rows, *spec.shapes[0]))
        y = rng.integers(0, 3, size=rows)
        net.loss_and_gradients(x, y, loss)
        xt = torch.tensor(x, dtype=getattr(torch, spec.dtype))
        loss_t(model(xt), torch.tensor(y)).backward()
    return net, model


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_layers_running_statistics_after_steps(dtype):
    """Five train-mode passes: every running mean, running variance and count agrees; then an
    eval-mode pass on those statistics agrees in output and gradients."""
    spec = layer_spec(variant("residual", 0, "image"), "image", dtype=dtype)
    spec = parse_spec({**spec.to_dict(), "layers": [spec.to_dict()["layers"][0], {"kind": "batchnorm", "momentum": 0.2},
                                                    *spec.to_dict()["layers"][1:]]})
    net, model = trained_pair(spec, 5)
    ours, theirs = {k: np.asarray(v) for k, v in net.buffers().items()}, buffers_to_scratch(model)
    assert set(ours) == set(theirs) and len(ours) == 7
    for name, value in theirs.items():
        assert rel_error(ours[name], value) <= CHECK_TOL[dtype], name
    assert int(ours["layers.1.num_batches_tracked"]) == 5 and int(ours["layers.2.body.2.draws"]) == 5
    assert not np.allclose(ours["layers.1.running_var"], 1.0)   # the statistics moved
    x = np.random.default_rng(1).normal(size=(3, *IMAGE))
    report = check(spec, x=x, y=[0, 2, 1], mode="eval")
    assert_parity(report)   # the fresh networks' eval pass; now the trained statistics:
    net.eval()
    model.eval()
    out = net.forward(x.astype(dtype))
    out_t = model(torch.tensor(x, dtype=getattr(torch, dtype)))
    assert rel_error(out, out_t.detach().numpy()) <= CHECK_TOL[dtype]
    assert int(net.buffers()["layers.2.body.2.draws"]) == 5   # eval mode drew no mask


# ------------------------------------------------------------------------------------ dropout


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_norm_layers_dropout_is_torchs_dropout(p, dtype):
    """torch's own nn.Dropout draws its mask; read back from its output (x has no zeros), that mask
    fed to StreamDropout's arithmetic gives nn.Dropout's output and input gradient bit for bit."""
    torch_dtype = getattr(torch, dtype)
    x = torch.tensor(np.random.default_rng(0).uniform(0.5, 2.0, size=(64, 50)), dtype=torch_dtype,
                     requires_grad=True)
    torch.manual_seed(3)
    out = nn.Dropout(p).train()(x)
    grad_out = torch.tensor(np.random.default_rng(1).normal(size=(64, 50)), dtype=torch_dtype)
    out.backward(grad_out)
    keep = (out != 0).detach()
    assert 0 < keep.sum() < keep.numel()
    noise = keep.to(torch_dtype)
    noise.div_(1 - p)                     # StreamDropout's arithmetic on the mask torch drew
    assert torch.equal(out.detach(), x.detach() * noise)
    assert torch.equal(x.grad, grad_out * noise)
    ours = x.detach().numpy() * (keep.numpy().astype(dtype) / np.asarray(1 - p, dtype=dtype))
    assert np.array_equal(ours, out.detach().numpy())   # scratch's, in NumPy


def test_norm_layers_dropout_stream_draws():
    """Each draw of each layer is its own mask, kept with probability about 1 − p; the stream is a
    function of (seed, layer, draw) alone, and StreamDropout reads the same one."""
    masks = [keep_mask(0, "layers.1", k, (200, 50), 0.3) for k in range(3)]
    assert not np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[1], masks[2])
    assert np.array_equal(masks[0], keep_mask(0, "layers.1", 0, (200, 50), 0.3))
    assert not np.array_equal(masks[0], keep_mask(0, "layers.2", 0, (200, 50), 0.3))
    assert not np.array_equal(masks[0], keep_mask(1, "layers.1", 0, (200, 50), 0.3))
    assert abs(masks[0].mean() - 0.7) < 0.02
    module = StreamDropout(0.3)
    module.stream = "layers.1"
    x = torch.ones(200, 50, dtype=torch.float64)
    for k in range(2):
        assert torch.equal(module(x) != 0, torch.as_tensor(masks[k]))
    assert int(module.draws) == 2
    assert torch.equal(module.eval()(x), x) and int(module.draws) == 2


# --------------------------------------------------------------------------------- training


def digits_resnet(optimizer: dict, dtype: str = "float64", epochs: int = 3) -> dict:
    return {"seed": 2, "dtype": dtype, "input_shape": [1, 8, 8],
            "layers": [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "use_bias": False},
                       {"kind": "batchnorm", "activation": "relu"},
                       {"kind": "residual", "body": [
                           {"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "use_bias": False},
                           {"kind": "batchnorm", "activation": "relu"}, {"kind": "dropout", "p": 0.2}]},
                       {"kind": "residual", "projection": True, "activation": "relu", "body": [
                           {"kind": "conv2d", "out_channels": 6, "kernel": 3, "stride": 2, "padding": 1,
                            "use_bias": False},   # a bias the normalization subtracts again has gradient 0
                           {"kind": "layernorm", "dims": 2}]},
                       {"kind": "global_avgpool"}, {"kind": "dropout", "p": 0.1}, {"units": 10}],
            "loss": {"name": "softmax_cce"}, "optimizer": optimizer,
            "data": {"name": "digits", "samples": 120, "test_fraction": 0.25, "scale": "standard"},
            "train": {"epochs": epochs, "batch_size": 30, "shuffle": True}}


def test_norm_layers_every_optimizer_has_a_run():
    assert set(OPTIMIZER_RUNS) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_RUNS))
def test_norm_layers_training_run_parity(name):
    """Both loops, step by step, on a small ResNet-style CNN with batchnorm, residual blocks and
    dropout on the shared stream: 9 shuffled steps of each optimizer, then the running statistics,
    draw counts and the eval-mode test figures."""
    spec = parse_spec(digits_resnet(OPTIMIZER_RUNS[name]))
    ours, theirs = scratch_train(spec, progress=False), torch_train(spec, progress=False)
    assert len(ours.history.step_loss) == 9
    assert_same_run(ours, theirs, TRAJECTORY_TOL, f"digits ResNet with {name}")
    assert ours.buffers.keys() == theirs.buffers.keys() and len(ours.buffers) == 8
    for key, value in theirs.buffers.items():
        assert rel_error(ours.buffers[key], value) <= TRAJECTORY_TOL, key
    assert ours.test_loss == pytest.approx(theirs.test_loss, rel=TRAJECTORY_TOL, abs=0)
    assert ours.test_accuracy == theirs.test_accuracy


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_norm_layers_resume_bit_identical(backend, tmp_path):
    """Two epochs at once, or one, a checkpoint, and one more: the same parameters, running
    statistics and dropout draw counts, bit for bit (the masks after the resume are the same)."""
    trainer = scratch_train if backend == "scratch" else torch_train
    whole, saved, resumed = resumed_run(trainer, parse_spec(digits_resnet(OPTIMIZER_RUNS["adam"], epochs=2)), tmp_path)
    assert int(saved.buffers["layers.5.draws"]) == 3 and int(saved.buffers["layers.1.num_batches_tracked"]) == 3
    assert resumed.history.step_loss == whole.history.step_loss
    for name, value in whole.params.items():
        assert np.array_equal(resumed.params[name], value), name
    for name, value in whole.buffers.items():
        assert np.array_equal(resumed.buffers[name], value), name


def test_norm_layers_checkpoint_roundtrip_through_torch(tmp_path):
    """scratch's checkpoint -> a torch .pt (state_dict with the buffers under torch's names) -> back:
    bit for bit, running statistics and draw counts included."""
    spec = parse_spec(digits_resnet(OPTIMIZER_RUNS["adam"], epochs=1))
    original, model_state = torch_checkpoint_roundtrip(spec, tmp_path)
    assert torch.equal(model_state["linears.2.body.1.running_var"],
                       torch.from_numpy(original.buffers["layers.2.body.1.running_var"]))
    assert int(model_state["linears.5.draws"]) == 3


def test_norm_layers_checkpoint_refuses_a_negative_running_var(tmp_path):
    spec = parse_spec(digits_resnet(OPTIMIZER_RUNS["adam"], epochs=1))
    path = tmp_path / checkpoint.FILENAME
    scratch_train(spec, progress=False, checkpoints=Checkpointer(path))
    saved = checkpoint.load(path)
    saved.buffers["layers.1.running_var"][0] = -1.0
    checkpoint.save(saved, tmp_path / "bad.npz")
    with pytest.raises(checkpoint.CheckpointError, match="buffer/layers.1.running_var"):
        checkpoint.load(tmp_path / "bad.npz")
    del saved.buffers["layers.1.running_var"]
    checkpoint.save(saved, tmp_path / "missing.npz")
    with pytest.raises(checkpoint.CheckpointError, match="buffer/layers.1.running_var: missing"):
        checkpoint.load(tmp_path / "missing.npz")


# ------------------------------------------------------------------------------- the spec


def spec_with(layer: dict, input_shape=IMAGE) -> dict:
    return {"input_shape": input_shape, "layers": [layer, {"kind": "flatten"}, {"units": 3}]}


CONV_6 = {"kind": "conv2d", "out_channels": 6, "kernel": 3}

# (id, raw spec, the field named, words the message holds)
BAD_SPECS = [
    ("dropout-p-one", spec_with({"kind": "dropout", "p": 1.0}), "layers[0].p", ["must be < 1", "1"]),
    ("dropout-p-negative", spec_with({"kind": "dropout", "p": -0.1}), "layers[0].p", ["must be >= 0"]),
    ("momentum-over-one", spec_with({"kind": "batchnorm", "momentum": 1.5}), "layers[0].momentum", ["<= 1"]),
    ("momentum-negative", spec_with({"kind": "batchnorm", "momentum": -0.5}), "layers[0].momentum", [">= 0"]),
    ("eps-zero", spec_with({"kind": "batchnorm", "eps": 0}), "layers[0].eps", ["must be > 0"]),
    ("layernorm-eps-negative", spec_with({"kind": "layernorm", "eps": -1e-5}), "layers[0].eps", ["must be > 0"]),
    ("eps-zero-in-float32", dict(spec_with({"kind": "layernorm", "eps": 1e-300}), dtype="float32"), "layers[0].eps",
     ["1e-300 is 0 in float32", "must be > 0"]),
    ("eps-beyond-float32", dict(spec_with({"kind": "batchnorm", "eps": 1e39}), dtype="float32"), "layers[0].eps",
     ["beyond the float32 range"]),
    ("p-one-in-float32", dict(spec_with({"kind": "dropout", "p": 1 - 1e-12}), dtype="float32"), "layers[0].p",
     ["is 1 in float32", "must be < 1"]),
    ("layernorm-dims", spec_with({"kind": "layernorm", "dims": 4}), "layers[0].dims", ["4", "[3, 6, 5]"]),
    ("residual-not-joinable", spec_with({"kind": "residual", "body": [CONV_6]}), "layers[0].projection",
     ["[3, 6, 5]", "[6, 4, 3]", "projection = true"]),
    ("residual-images-to-features", spec_with({"kind": "residual", "projection": True,
                                              "body": [{"kind": "flatten"}]}), "layers[0].projection",
     ["[3, 6, 5]", "[90]"]),
    ("residual-no-stride", spec_with({"kind": "residual", "projection": True,
                                      "body": [{"kind": "conv2d", "out_channels": 2, "kernel": 1, "padding": 1}]}),
     "layers[0].projection", ["6x5", "8x7"]),
    ("residual-empty-body", spec_with({"kind": "residual", "body": []}), "layers[0].body", ["non-empty"]),
    ("residual-bad-inner", spec_with({"kind": "residual", "body": [{"kind": "dropout", "p": 2}]}),
     "layers[0].body[0].p", ["must be < 1"]),
    ("batchnorm-unknown-field", spec_with({"kind": "batchnorm", "p": 0.5}), "layers[0].p", ["unknown field"]),
]


@pytest.mark.parametrize("raw,field,words", [case[1:] for case in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_norm_layers_bad_spec_exits_2_naming_layer_and_field(raw, field, words, tmp_path, capsys):
    assert_check_refuses(raw, field, words, tmp_path, capsys)


ONE_ROW = {"input_shape": [2], "layers": [{"units": 3}, {"kind": "residual", "body": [{"kind": "batchnorm"}]},
                                          {"units": 2}]}


def test_norm_layers_one_row_batch_refused_in_train_mode(tmp_path, capsys):
    """torch refuses a train-mode batchnorm over one value per feature: so does every command, in
    one line naming what made the batch, before anything runs; eval mode takes one row."""
    assert_check_refuses(dict(ONE_ROW, data={"x": [[0.5, -1.0]], "y": [[0.0, 1.0]]}), "x", ["1 row", "batchnorm"],
                         tmp_path, capsys)
    path = tmp_path / "moons.json"
    path.write_text(json.dumps(dict(ONE_ROW, data={"name": "moons", "samples": 9},
                                    train={"batch_size": 4, "epochs": 1})))
    from nnparity.cli import main
    for backend in ("scratch", "torch"):
        assert main(["train", str(path), "--quiet", "--backend", backend]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "train.batch_size: 9 rows in batches of 4 leave a last batch of 1 row" in err[0]
    spec = parse_spec(ONE_ROW)
    assert_parity(check(spec, x=[[0.5, -1.0]], y=[[0.0, 1.0]], mode="eval"))


def test_norm_layers_spec_round_trip():
    spec = parse_spec(digits_resnet(OPTIMIZER_RUNS["sgd"], dtype="float32"))
    raw = spec.to_dict()
    assert raw["layers"][2]["body"][1]["kind"] == "batchnorm"
    assert parse_spec(json.loads(spec.to_json())) == spec
    import tomllib
    assert parse_spec(tomllib.loads(spec.to_toml())) == spec
    assert spec.shapes[3] == (4, 8, 8) and spec.shapes[4] == (6, 4, 4) and spec.shapes[-1] == (10,)


def test_norm_layers_layernorm_weight_keeps_its_layout():
    """A layernorm over [H, W] has a 2-D weight that is no dense weight: not transposed for torch."""
    spec = layer_spec({"kind": "layernorm", "dims": 2}, "image")
    model = build(spec)
    assert "layers.1.weight" not in model.transposed and "layers.3.weight" in model.transposed
    weight = np.arange(30.0).reshape(6, 5)
    from torch_ref.model import load_scratch_parameters, to_scratch
    params = dict(to_scratch(model), **{"layers.1.weight": weight})
    load_scratch_parameters(model, params)
    assert np.array_equal(model.linears[1].weight.detach().numpy(), weight)
    assert np.array_equal(to_scratch(model)["layers.1.weight"], weight)


README_RESNET_COMMANDS = {"check": ["check"], "check-eval": ["check", "--mode", "eval"],
                          "compare": ["compare", "--epochs", "1"], "train": ["train", "--json", "--quiet"]}


@pytest.mark.slow
@pytest.mark.parametrize("command", README_RESNET_COMMANDS)
def test_norm_layers_readme_commands_as_written(command, tmp_path):
    """The README's commands on specs/digits_resnet.toml, one each: check in both modes, compare for
    one epoch (three backends agreeing per step), train to its documented ~96.7% test accuracy."""
    from pathlib import Path

    spec = Path(__file__).resolve().parents[1] / "specs" / "digits_resnet.toml"
    first, *options = README_RESNET_COMMANDS[command]
    proc = run_nnparity(first, str(spec), *options, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if first == "check":
        assert proc.stdout.rstrip().endswith("all tensors agree"), proc.stdout
    elif first == "compare":
        assert "parity: the three per-step loss trajectories agree" in proc.stdout, proc.stdout
    else:
        assert json.loads(proc.stdout)["test_accuracy"] > 0.95


def test_norm_layers_projection_stride_is_the_smallest_that_fits():
    """The skip's 1x1 stride is the smallest s with (n − 1) // s + 1 = m, as a search over every s
    finds it; computed, so a hostile input size of 10^30 is answered at once."""
    from scratch.norm_kinds import _skip_stride

    for n in range(1, 40):
        for m in range(-1, 42):
            assert _skip_stride(n, m) == next((s for s in range(1, n + 1) if (n - 1) // s + 1 == m), None), (n, m)
    s = _skip_stride(10**30, 7)
    assert (10**30 - 1) // s + 1 == 7 and (10**30 - 1) // (s - 1) + 1 > 7


@pytest.mark.parametrize("dtype", DTYPES)
def test_norm_layers_bias_before_a_normalization_passes_check(dtype):
    """A conv's bias right before a train-mode batchnorm has an exact zero gradient; both sides compute
    rounding noise there, measured against the network's gradient scale: check and verify --spec pass,
    and the weight beside it keeps the plain measure."""
    from nnparity.verify.autograd.layerwise import first_wrong_layer
    from scratch.policy import gradient_scale, rounding_floor

    spec = parse_spec({"seed": 1, "dtype": dtype, "input_shape": [2, 5, 5], "layers": [
        {"kind": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1}, {"kind": "batchnorm", "activation": "relu"},
        {"kind": "flatten"}, {"units": 3}], "loss": {"name": "softmax_cce"}})
    report = check(spec, batch=6)
    assert_parity(report)
    bias = report["torch"]["grads"]["layers.0.bias"]
    assert np.linalg.norm(bias) <= rounding_floor(gradient_scale(report["torch"]["grads"].values()), dtype)
    assert np.linalg.norm(report["torch"]["grads"]["layers.0.weight"]) > 1e-3
    assert first_wrong_layer(spec, batch=6).ok
