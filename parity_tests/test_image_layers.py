"""The image layer kinds (conv2d, maxpool2d, avgpool2d, flatten, global_avgpool) against torch's
own modules: forward, every intermediate, loss and every gradient through torch_ref.check.check
(float64 <= 1e-12, float32 <= 1e-5), over each kind's stride / padding / dilation / groups
variants, max pooling's ties, configurations drawn by hypothesis, whole training runs with every
optimizer, the digits as images, and the spec's shape checks as the command line reports them.
"""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import CHECK_TOL, CNN_OPTIMIZER_RUNS as OPTIMIZER_RUNS, DTYPES, TRAJECTORY_TOL, assert_parity, \
    assert_check_refuses, assert_same_run, run_check
from nnparity.cli import main
from scratch.data import load_dataset
from scratch.errors import SpecError
from scratch.initializers import initial_parameters
from scratch.layer_kinds import KINDS
from scratch.network import LAYER_CLASSES, Network, build_loss
from scratch.spec import parse_spec
from scratch.training import train as scratch_train
from strict_xp import strict
from torch_ref.check import check, run_scratch, run_torch
from torch_ref.model import TORCH_LAYERS
from torch_ref.training import train as torch_train

# the image kinds (scratch/layer_kinds.py); normalization, dropout and residual blocks
# (scratch/norm_kinds.py) have their own tests (test_norm_layers.py)
IMAGE_KINDS = sorted(kind for kind, cls in KINDS.items() if kind != "dense" and cls.__module__ == "scratch.layer_kinds")
INPUT = [3, 7, 6]          # channels, height, width: not square, odd and even

# Each image kind in the settings it takes: the layer under test sits after a tanh convolution
# (so that a gradient reaches its input through another kind) and before a flatten and a dense
# output (so that every kind's output is compared and its gradient is not the loss's alone).
VARIANTS = {
    "conv2d": [
        {"out_channels": 4, "kernel": 3},
        {"out_channels": 5, "kernel": [3, 2], "stride": [2, 1], "padding": [1, 0], "activation": "relu"},
        {"out_channels": 4, "kernel": 2, "dilation": [2, 1], "padding": 1, "use_bias": False},
        {"out_channels": 6, "kernel": 3, "groups": 2, "padding": 1, "stride": 2},
        {"out_channels": 4, "kernel": 1, "groups": 4, "activation": "sigmoid"},   # depthwise 1x1
        {"out_channels": 2, "kernel": [4, 6], "init": "he_normal"},               # the whole padded width
    ],
    "maxpool2d": [
        {"kernel": 2},
        {"kernel": 3, "stride": 1, "padding": 1},                                 # overlapping, -inf padding
        {"kernel": [2, 3], "stride": [1, 2], "padding": [1, 0], "activation": "relu"},
    ],
    "avgpool2d": [
        {"kernel": 2},
        {"kernel": 3, "stride": 2, "padding": 1},                                 # padding counted
        {"kernel": [3, 2], "stride": 1, "padding": [1, 1], "activation": "tanh"},
    ],
    "flatten": [{}, {"activation": "relu"}],
    "global_avgpool": [{}, {"activation": "sigmoid"}],
}
CASES = [(kind, i) for kind in IMAGE_KINDS for i in range(len(VARIANTS[kind]))]


def image_spec(layer: dict, dtype: str = "float64", seed: int = 0, loss: str = "softmax_cce", **extra):
    layers = [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "activation": "tanh"}, layer]
    if layer.get("kind") not in ("flatten", "global_avgpool"):
        layers.append({"kind": "flatten"})
    layers.append({"units": 3})
    return parse_spec({"seed": seed, "dtype": dtype, "input_shape": extra.pop("input_shape", INPUT),
                       "layers": layers, "loss": {"name": loss}, **extra})


def variant(kind: str, i: int) -> dict:
    return {"kind": kind, **VARIANTS[kind][i]}


def test_image_layers_registries_name_the_same_kinds():
    """Every kind the spec takes has a scratch layer and a torch twin, each documented."""
    assert set(KINDS) == set(LAYER_CLASSES) == set(TORCH_LAYERS)
    assert set(VARIANTS) == set(IMAGE_KINDS)
    for cls in LAYER_CLASSES.values():
        assert "Backward" in cls.__doc__ and "Torch twin" in cls.__doc__, cls


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_image_layers_parity(kind, i, dtype):
    spec = image_spec(variant(kind, i), dtype=dtype, seed=i)
    report = run_check(spec, batch=4 if i % 2 else 1)
    grads = report["scratch"]["grads"]
    assert grads["input"].shape == (4 if i % 2 else 1, *INPUT)
    assert np.any(grads["layers.0.weight"] != 0), "no gradient reached the first layer"
    expected = {"layers.0.weight", "layers.0.bias", f"layers.{len(spec.layers) - 1}.weight",
                f"layers.{len(spec.layers) - 1}.bias", "input"}
    if kind == "conv2d":
        expected |= {"layers.1.weight"} | ({"layers.1.bias"} if spec.layers[1].use_bias else set())
    assert set(grads) == expected
    assert report["scratch"]["activations"][1].shape[1:] == spec.shapes[2]


@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_image_layers_parity_on_the_strict_device(kind, i):
    """The same pass on the CuPy stand-in that refuses host round-trips (parity_tests/strict_xp.py)."""
    spec = image_spec(variant(kind, i), seed=i)
    x = np.random.default_rng(i).normal(size=(3, *INPUT))
    y = np.array([0, 2, 1])
    ours, theirs = run_scratch(spec, x, y, xp=strict), run_torch(spec, x, y)
    report = check(spec, x=x, y=y)
    assert_parity(report)
    for name, grad in theirs["grads"].items():
        assert np.abs(ours["grads"][name] - grad).max() <= CHECK_TOL["float64"] * max(1.0, np.abs(grad).max())


def test_image_layers_maxpool_ties_go_to_the_first_maximum():
    """A constant image: every window ties everywhere. torch gives each window's gradient to its
    first position in row-major order; so does scratch, and overlapping windows add up."""
    spec = parse_spec({"input_shape": [2, 4, 4], "layers": [{"kind": "maxpool2d", "kernel": 2, "stride": 1},
                                                            {"kind": "flatten"}, {"units": 3}],
                       "loss": {"name": "softmax_cce"}})
    x, y = np.full((2, 2, 4, 4), 0.5), np.array([0, 2])
    report = run_check(spec, x=x, y=y)   # within the policy: the same positions got the same gradients
    grad = report["scratch"]["grads"]["input"]
    assert np.array_equal(grad != 0, report["torch"]["grads"]["input"] != 0)
    # windows start at rows and columns 0..2: each one's first position is its top-left corner
    assert np.all(grad[:, :, 3, :] == 0) and np.all(grad[:, :, :, 3] == 0)
    assert np.all(grad[:, :, :3, :3] != 0)


def test_image_layers_maxpool_padding_never_wins():
    """Padding is -inf to max pooling: on an all-negative image a zero-padded max would pick 0."""
    spec = parse_spec({"input_shape": [1, 3, 3], "layers": [{"kind": "maxpool2d", "kernel": 3, "stride": 1,
                                                             "padding": 1}, {"kind": "flatten"}, {"units": 2}],
                       "loss": {"name": "mse"}})
    x = -1.0 - np.arange(9.0).reshape(1, 1, 3, 3)   # -1 - (3·row + column)
    report = run_check(spec, x=x, y=[[0.5, -0.5]])
    # each output: the largest of the (clipped) 3x3 neighbourhood, -1 - its smallest 3·row + column
    assert np.array_equal(report["scratch"]["activations"][0], [[[[-1.0, -1.0, -2.0], [-1.0, -1.0, -2.0],
                                                                  [-4.0, -4.0, -5.0]]]])


def test_image_layers_avgpool_counts_the_padding():
    """count_include_pad: a corner window of a padded constant image averages in the zeros."""
    spec = parse_spec({"input_shape": [1, 2, 2], "layers": [{"kind": "avgpool2d", "kernel": 2, "stride": 1,
                                                             "padding": 1}, {"kind": "flatten"}, {"units": 2}],
                       "loss": {"name": "mse"}})
    report = run_check(spec, x=np.full((1, 1, 2, 2), 4.0), y=[[0.5, -0.5]])
    assert np.array_equal(report["scratch"]["activations"][0], [[[[1.0, 2.0, 1.0], [2.0, 4.0, 2.0],
                                                                  [1.0, 2.0, 1.0]]]])


@st.composite
def window_configs(draw):
    """A small conv2d or pooling layer on a small image: sizes, stride, padding, dilation, groups."""
    kind = draw(st.sampled_from(["conv2d", "maxpool2d", "avgpool2d"]))
    channels = draw(st.sampled_from([1, 2, 4]))
    shape = [channels, draw(st.integers(2, 7)), draw(st.integers(2, 7))]
    kernel = [draw(st.integers(1, 4)), draw(st.integers(1, 4))]
    layer = {"kind": kind, "kernel": kernel, "stride": [draw(st.integers(1, 3)), draw(st.integers(1, 3))],
             "padding": [draw(st.integers(0, k // 2)) for k in kernel]}
    if kind == "conv2d":
        groups = draw(st.sampled_from([g for g in (1, 2, 4) if channels % g == 0]))
        layer.update(out_channels=groups * draw(st.integers(1, 2)), groups=groups,
                     dilation=[draw(st.integers(1, 2)), draw(st.integers(1, 2))], use_bias=draw(st.booleans()))
    layer["activation"] = draw(st.sampled_from(["identity", "relu", "tanh"]))
    return shape, layer, draw(st.sampled_from(DTYPES)), draw(st.integers(1, 3)), draw(st.integers(0, 2**16))


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
@given(window_configs())
def test_image_layers_parity_hypothesis(config):
    shape, layer, dtype, batch, seed = config
    try:
        spec = parse_spec({"seed": seed, "dtype": dtype, "input_shape": shape,
                           "layers": [layer, {"kind": "flatten"}, {"units": 2}], "loss": {"name": "mse"}})
    except SpecError as err:   # a window larger than its padded input: refused, naming the kernel
        assert err.field == "layers[0].kernel", err
        assume(False)
    assert_parity(check(spec, batch=batch))


def test_image_layers_release_what_forward_kept():
    spec = image_spec(variant("maxpool2d", 1))
    net, loss = Network.from_spec(spec), build_loss(spec)
    x = np.random.default_rng(0).normal(size=(2, *INPUT))
    net.loss_and_gradients(x, np.array([0, 1]), loss)
    assert net.layers[0].columns is None and net.layers[1].argmax is None


# --------------------------------------------------------------------------------- training


def digits_cnn(optimizer: dict, dtype: str = "float64") -> dict:
    return {"seed": 1, "dtype": dtype, "input_shape": [1, 8, 8],
            "layers": [{"kind": "conv2d", "out_channels": 4, "kernel": 3, "padding": 1, "activation": "relu"},
                       {"kind": "maxpool2d", "kernel": 2},
                       {"kind": "conv2d", "out_channels": 6, "kernel": 2, "groups": 2, "activation": "tanh"},
                       {"kind": "avgpool2d", "kernel": 2, "stride": 1},
                       {"kind": "global_avgpool"}, {"units": 10}],
            "loss": {"name": "softmax_cce"}, "optimizer": optimizer,
            "data": {"name": "digits", "samples": 120, "test_fraction": 0.25, "scale": "standard"},
            "train": {"epochs": 3, "batch_size": 30, "shuffle": True}}


@pytest.mark.parametrize("name", sorted(OPTIMIZER_RUNS))
def test_image_layers_training_run_parity(name):
    """Both loops, step by step, on a CNN of every image kind: 9 shuffled steps of each optimizer."""
    spec = parse_spec(digits_cnn(OPTIMIZER_RUNS[name]))
    ours, theirs = scratch_train(spec), torch_train(spec)
    assert len(ours.history.step_loss) == 9
    assert_same_run(ours, theirs, TRAJECTORY_TOL, f"digits CNN with {name}")
    assert ours.params["layers.0.weight"].shape == (4, 1, 3, 3)
    assert ours.params["layers.2.weight"].shape == (6, 2, 2, 2)
    assert not np.array_equal(ours.params["layers.0.weight"], initial_parameters(spec)["layers.0.weight"])


# ---------------------------------------------------------------------------- data and init


def test_image_layers_digits_as_images():
    """input_shape [1, 8, 8] makes the digits images: the flat rows reshaped, standardized per pixel alike."""
    cnn = parse_spec(digits_cnn({"name": "adam"}))
    flat = parse_spec({**digits_cnn({"name": "adam"}), "input_shape": None,
                       "layers": [{"inputs": 64, "units": 10}]})
    images, rows = load_dataset(cnn), load_dataset(flat)
    assert images.x_train.shape == (90, 1, 8, 8) and images.x_test.shape == (30, 1, 8, 8)
    assert np.array_equal(images.x_train.reshape(90, 64), rows.x_train)
    assert np.array_equal(images.y_test, rows.y_test)


INITS = {"torch_default": ("uniform", nn.init.kaiming_uniform_, {"a": 5 ** 0.5}),
         "xavier_uniform": ("uniform", nn.init.xavier_uniform_, {}),
         "he_uniform": ("uniform", nn.init.kaiming_uniform_, {"nonlinearity": "relu"}),
         "xavier_normal": ("normal", nn.init.xavier_normal_, {}),
         "he_normal": ("normal", nn.init.kaiming_normal_, {"nonlinearity": "relu"})}


@pytest.mark.parametrize("init", sorted(INITS))
def test_image_layers_conv_initializers_use_torchs_fans(init):
    """A grouped conv weight (32, 4, 3, 5): torch's initializer, on a tensor of that shape, computes
    the fans itself; ours draws the same distribution (uniform: the same bound; normal: the same std)."""
    spec = parse_spec({"input_shape": [8, 6, 6], "layers": [
        {"kind": "conv2d", "out_channels": 32, "kernel": [3, 5], "groups": 2, "padding": 2, "init": init},
        {"kind": "global_avgpool"}, {"units": 2}]})
    ours = initial_parameters(spec)["layers.0.weight"]
    assert ours.shape == (32, 4, 3, 5)
    form, torch_init, kwargs = INITS[init]
    torch.manual_seed(0)
    theirs = torch_init(torch.empty(32, 4, 3, 5, dtype=torch.float64), **kwargs).numpy()
    measure = (lambda w: np.abs(w).max()) if form == "uniform" else np.std
    assert measure(ours) == pytest.approx(measure(theirs), rel=0.02 if form == "uniform" else 0.1)
    if init == "torch_default":   # nn.Conv2d's bias: U(±1/√fan_in), fan_in = 4·3·5
        bias = initial_parameters(spec)["layers.0.bias"]
        assert np.all(np.abs(bias) <= 1 / 60 ** 0.5) and np.abs(bias).max() > 0.5 / 60 ** 0.5


def test_image_layers_conv_default_is_torchs_module():
    """Without init, a conv2d starts as nn.Conv2d itself would: the bound of a fresh module's weight."""
    spec = parse_spec({"input_shape": [6, 5, 5], "layers": [{"kind": "conv2d", "out_channels": 64, "kernel": 3},
                                                            {"kind": "flatten"}, {"units": 2}]})
    ours = initial_parameters(spec)
    torch.manual_seed(0)
    module = nn.Conv2d(6, 64, 3, dtype=torch.float64)
    assert np.abs(ours["layers.0.weight"]).max() == pytest.approx(module.weight.abs().max().item(), rel=0.02)
    assert np.abs(ours["layers.0.bias"]).max() <= 1 / 54 ** 0.5


# ------------------------------------------------------------------------------- the spec


def test_image_layers_spec_round_trip():
    spec = image_spec(variant("conv2d", 1), dtype="float32")
    raw = spec.to_dict()
    assert raw["input_shape"] == INPUT and raw["layers"][1]["kind"] == "conv2d"
    assert "kind" not in raw["layers"][-1]   # dense layers are written as before
    assert parse_spec(json.loads(spec.to_json())) == spec
    import tomllib
    assert parse_spec(tomllib.loads(spec.to_toml())) == spec
    assert spec.shapes == [(3, 7, 6), (4, 7, 6), (5, 4, 5), (100,), (3,)]


GOOD_NET = [{"kind": "conv2d", "out_channels": 4, "kernel": 3}, {"kind": "flatten"}, {"units": 3}]


def bad(layer_index: int, **fields) -> dict:
    layers = [dict(layer) for layer in GOOD_NET]
    layers[layer_index].update(fields)
    return {"input_shape": [2, 5, 5], "layers": layers}


# (id, raw spec, the field named, words the message holds)
BAD_SPECS = [
    ("kernel-too-large", bad(0, kernel=7), "layers[0].kernel", ["7x7", "padded input 5x5", "[2, 5, 5]"]),
    ("dilated-kernel-too-large", bad(0, kernel=3, dilation=3), "layers[0].kernel", ["dilated to 7x7", "5x5"]),
    ("negative-padding", bad(0, padding=-1), "layers[0].padding", ["must be >= 0", "-1"]),
    ("stride-zero", bad(0, stride=[1, 0]), "layers[0].stride[1]", ["must be >= 1", "0"]),
    ("channels-mismatch", bad(0, in_channels=3), "layers[0].in_channels",
     ["3 does not match the 2 channels", "[2, 5, 5]"]),
    ("groups-not-dividing", bad(0, groups=2, out_channels=3), "layers[0].groups", ["must divide", "(3)"]),
    ("dense-after-conv", {"input_shape": [2, 5, 5], "layers": [GOOD_NET[0], {"units": 3}]}, "layers[1].kind",
     ["[4, 3, 3]", "add a flatten layer"]),
    ("pool-padding-over-half", {"input_shape": [2, 5, 5], "layers": [{"kind": "maxpool2d", "kernel": 2,
                                "padding": 2}, {"kind": "flatten"}, {"units": 3}]}, "layers[0].padding",
     ["half the kernel", "[2, 2]"]),
    ("avgpool-kernel-too-large", {"input_shape": [1, 3, 3], "layers": [{"kind": "avgpool2d", "kernel": [4, 1]},
                                  {"kind": "flatten"}, {"units": 3}]}, "layers[0].kernel", ["4x1", "3x3"]),
    ("conv-after-flatten", {"input_shape": [2, 5, 5], "layers": [{"kind": "flatten"}, GOOD_NET[0],
                            {"kind": "flatten"}, {"units": 3}]}, "layers[1].kind", ["[50]", "[channels, height, width]"]),
    ("no-input-shape", {"layers": GOOD_NET}, "input_shape", ["missing", "conv2d"]),
    ("input-shape-of-two", {"input_shape": [5, 5], "layers": GOOD_NET}, "layers[0].kind",
     ["[channels, height, width]", "[5, 5]"]),
    ("image-output", {"input_shape": [2, 5, 5], "layers": [GOOD_NET[0]]}, "layers[0].kind",
     ["[4, 3, 3]", "flatten"]),
    ("kernel-not-a-pair", bad(0, kernel=[3, 3, 3]), "layers[0].kernel", ["[height, width]"]),
    ("missing-out-channels", {"input_shape": [2, 5, 5], "layers": [{"kind": "conv2d", "kernel": 3},
                              *GOOD_NET[1:]]}, "layers[0].out_channels", ["missing"]),
    ("unknown-field", bad(0, units=3), "layers[0].units", ["unknown field", "out_channels"]),
    ("unknown-kind", bad(1, kind="conv3d"), "layers[1].kind", ["conv3d", "maxpool2d"]),
    ("dense-inputs-mismatch", bad(2, inputs=7), "layers[2].inputs", ["7 does not match", "36"]),
]


@pytest.mark.parametrize("raw,field,words", [case[1:] for case in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_image_layers_bad_spec_exits_2_naming_layer_and_field(raw, field, words, tmp_path, capsys):
    assert_check_refuses(raw, field, words, tmp_path, capsys)


def test_image_layers_inline_rows_are_images_flattened(capsys):
    """Inline data.x of an image spec: each row one image in C order, checked as (N, C, H, W)."""
    spec = parse_spec({"input_shape": [2, 2, 2], "layers": [{"kind": "avgpool2d", "kernel": 2}, {"kind": "flatten"},
                                                            {"units": 2}],
                       "data": {"x": [list(range(8)), list(range(8, 16))], "y": [[0.0, 1.0], [1.0, 0.0]]}})
    report = run_check(spec)
    # each channel's 2x2 mean: rows 0-3 and 4-7 of the flat row are channels 0 and 1
    assert np.array_equal(report["scratch"]["activations"][0].reshape(2, 2), [[1.5, 5.5], [9.5, 13.5]])
    assert report["scratch"]["grads"]["input"].shape == (2, 2, 2, 2)


@pytest.mark.parametrize("raw,field,words", [
    ({"input_shape": [1, 4, 16], "layers": [{"kind": "flatten"}, {"units": 10}], "loss": {"name": "softmax_cce"},
      "data": {"name": "digits"}}, "input_shape", ["[1, 8, 8]", "[1, 4, 16]"]),
    ({"input_shape": [3, 3000, 3000], "layers": [{"kind": "conv2d", "out_channels": 8, "kernel": 11},
                                                 {"kind": "global_avgpool"}, {"units": 2}],
      "data": {"name": "moons"}}, "layers[0].kind", ["memory"]),
], ids=["digits-image-shape", "memory"])
def test_image_layers_train_refuses_in_one_line(raw, field, words, tmp_path, capsys):
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(raw))
    assert main(["train", str(path), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{field}: " in err[0] and all(word in err[0] for word in words), err


@pytest.mark.slow
def test_image_layers_readme_cnn_beats_the_mlp():
    """`nnparity train specs/digits_cnn.toml` as the README shows it: a higher test accuracy than
    the digits MLP's (specs/digits.toml) on the same held-out images."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    accuracy = {}
    for name in ("digits.toml", "digits_cnn.toml"):
        proc = subprocess.run([sys.executable, "-m", "nnparity", "train", str(root / "specs" / name), "--json",
                               "--quiet"], capture_output=True, text=True, timeout=300, cwd=root)
        assert proc.returncode == 0, proc.stderr
        accuracy[name] = json.loads(proc.stdout)["test_accuracy"]
    assert accuracy["digits_cnn.toml"] > accuracy["digits.toml"], accuracy
