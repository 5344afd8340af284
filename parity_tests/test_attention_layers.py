"""The attention kinds (attention, transformer) against torch's own modules (nn.MultiheadAttention,
nn.TransformerEncoderLayer): forward, every intermediate, loss and every gradient through
torch_ref.check.check (float64 <= 1e-12, float32 <= 1e-5), causal and not, one head and several;
the attention probabilities against the weights torch returns; nn.TransformerEncoderLayer against
the pre-norm block composed from nn.LayerNorm, nn.MultiheadAttention, nn.Linear and nn.GELU; whole
training runs with every optimizer; bit-identical resume; and the spec's refusals as the command
line reports them.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

from conftest import CHECK_TOL, CNN_OPTIMIZER_RUNS, DTYPES, TRAJECTORY_TOL, assert_parity, \
    assert_check_refuses, assert_same_run, resumed_run, run_nnparity, strict_and_torch, torch_checkpoint_roundtrip
from scratch.initializers import initial_parameters
from scratch.layer_kinds import KINDS
from scratch.network import Network, build_loss
from scratch.optimizers import OPTIMIZERS
from scratch.policy import rel_error
from scratch.spec import parse_spec
from scratch.training import train as scratch_train
from torch_ref.check import check
from torch_ref.model import build
from torch_ref.training import train as torch_train

ATTENTION_KINDS = sorted(kind for kind, cls in KINDS.items() if cls.__module__ == "scratch.attention_kinds")
SEQUENCE = [5, 6]          # time steps, features

# Each kind in the settings it takes, one head and several, causal and not: the layer under test
# sits after a tanh attention layer (so that a gradient reaches its input through another layer) and
# before a flatten and a dense output.
VARIANTS = {
    "attention": [{"heads": 1}, {"heads": 1, "causal": True}, {"heads": 3, "activation": "gelu"},
                  {"heads": 6, "causal": True}],
    "transformer": [{"heads": 1}, {"heads": 2, "causal": True}, {"heads": 3, "mlp_units": 7, "eps": 1e-3},
                    {"heads": 6, "causal": True, "mlp_units": 4, "activation": "gelu"}],
}
CASES = [(kind, i) for kind in ATTENTION_KINDS for i in range(len(VARIANTS[kind]))]


def sequence_spec(layer: dict, dtype: str = "float64", seed: int = 0):
    layers = [{"kind": "attention", "heads": 2, "activation": "tanh"}, layer, {"kind": "flatten"}, {"units": 3}]
    return parse_spec({"seed": seed, "dtype": dtype, "input_shape": SEQUENCE, "layers": layers,
                       "loss": {"name": "softmax_cce"}})


def variant(kind: str, i: int) -> dict:
    return {"kind": kind, **VARIANTS[kind][i]}


def test_attention_layers_registries_name_the_same_kinds():
    """Each attention kind has variants here (test_image_layers checks every kind's scratch layer,
    torch twin and docstring)."""
    assert set(ATTENTION_KINDS) == set(VARIANTS) == {"attention", "transformer"}


# ------------------------------------------------------------------------------------ parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_attention_layers_parity(kind, i, dtype):
    """Output, each layer's output, loss and every parameter's and the input's gradient."""
    spec = sequence_spec(variant(kind, i), dtype=dtype, seed=i)
    report = check(spec, batch=4)
    assert_parity(report)
    grads = report["scratch"]["grads"]
    assert grads["input"].shape == (4, *SEQUENCE)
    expected = {f"layers.1.{name}" for name in spec.layers[1].parameter_shapes(tuple(SEQUENCE))}
    assert expected <= set(grads) and set(grads) == set(report["torch"]["grads"])
    for name in ("layers.0.in_proj_weight", "layers.0.out_proj.weight", *expected):
        assert np.any(grads[name] != 0), f"no gradient reached {name}"
    assert report["scratch"]["activations"][1].shape == (4, *SEQUENCE)


@pytest.mark.parametrize("kind,i", CASES, ids=[f"{k}-{i}" for k, i in CASES])
def test_attention_layers_parity_on_the_strict_device(kind, i):
    """The same pass on the CuPy stand-in that refuses host round-trips (parity_tests/strict_xp.py)."""
    ours, theirs = strict_and_torch(sequence_spec(variant(kind, i), seed=i), i)
    assert rel_error(ours["output"], theirs["output"]) <= CHECK_TOL["float64"]
    for name, grad in theirs["grads"].items():
        assert rel_error(ours["grads"][name], grad) <= CHECK_TOL["float64"], name


@st.composite
def attention_configs(draw):
    """A small attention or transformer layer on a small sequence: T from 1, heads up to the width.
    A transformer's width is from 2: its layernorm over one feature outputs exactly 0, so the
    weight's gradient is exactly 0, where torch's backward, recomputing x̂, gets rounding noise (~4e-15)."""
    kind = draw(st.sampled_from(ATTENTION_KINDS))
    width = draw(st.sampled_from([1, 2, 4, 6] if kind == "attention" else [2, 4, 6]))
    layer = {"kind": kind, "causal": draw(st.booleans()),
             "heads": draw(st.sampled_from([h for h in range(1, width + 1) if width % h == 0])),
             "activation": draw(st.sampled_from(["identity", "gelu", "tanh"]))}
    if layer["kind"] == "transformer":
        layer["mlp_units"] = draw(st.integers(1, 9))
    shape = [draw(st.integers(1, 6)), width]
    return shape, layer, draw(st.integers(1, 3)), draw(st.integers(0, 2**16))


# float64 only: drawn widths as small as 2 make sums of cancelling terms (the key path's share of the
# gradient of a layernorm bias before the attention sums to exactly 0), where float32 rounding takes
# both sides about 2e-5 from the float64 value (seed 7, [5, 2], one causal head: scratch 1.8e-5, torch
# 3.0e-5); the fixed cases above hold float32 to 1e-5.
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(attention_configs())
def test_attention_layers_parity_hypothesis(config):
    shape, layer, batch, seed = config
    spec = parse_spec({"seed": seed, "input_shape": shape,
                       "layers": [layer, {"kind": "flatten"}, {"units": 2}], "loss": {"name": "mse"}})
    assert_parity(check(spec, batch=batch))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("heads,causal", [(1, False), (3, True), (2, False)])
def test_attention_layers_probabilities_are_torchs_weights(heads, causal, dtype):
    """The softmax probabilities scratch keeps for backward are the per-head weights torch's own
    module returns (need_weights=True, average_attn_weights=False); with the causal mask every
    weight above the diagonal is exactly 0 on both sides."""
    spec = parse_spec({"dtype": dtype, "input_shape": SEQUENCE, "layers": [
        {"kind": "attention", "heads": heads, "causal": causal}, {"kind": "flatten"}, {"units": 2}]})
    x = np.random.default_rng(heads).normal(size=(3, *SEQUENCE)).astype(dtype)
    net, model = Network.from_spec(spec), build(spec)
    net.forward(x)
    attention = model.linears[0]
    xt = torch.tensor(x)
    mask = nn.Transformer.generate_square_subsequent_mask(SEQUENCE[0], dtype=xt.dtype) if causal else None
    out, weights = nn.MultiheadAttention.forward(attention, xt, xt, xt, need_weights=True, attn_mask=mask,
                                                 average_attn_weights=False)
    weights = weights.detach().numpy()
    assert net.layers[0].p.shape == weights.shape == (3, heads, SEQUENCE[0], SEQUENCE[0])
    assert rel_error(net.layers[0].p, weights) <= CHECK_TOL[dtype]
    assert rel_error(net.layers[0].forward(x), out.detach().numpy()) <= CHECK_TOL[dtype]
    above = np.triu(np.ones((SEQUENCE[0],) * 2, dtype=bool), 1)
    if causal:
        assert np.all(net.layers[0].p[..., above] == 0) and np.all(weights[..., above] == 0)
    else:
        assert np.all(net.layers[0].p > 0)


@pytest.mark.parametrize("causal", [False, True])
def test_attention_layers_transformer_is_the_pre_norm_composition(causal):
    """torch's nn.TransformerEncoderLayer(norm_first=True, activation=nn.GELU(), dropout=0), the twin,
    computes x + A(LN1(x)), then h + W2 GELU(W1 LN2(h)): the same block composed by hand from
    torch's nn.LayerNorm, nn.MultiheadAttention, nn.Linear and nn.GELU sharing its modules gives
    its output and every gradient."""
    spec = parse_spec({"input_shape": SEQUENCE, "layers": [
        {"kind": "transformer", "heads": 2, "causal": causal, "mlp_units": 9}, {"kind": "flatten"}, {"units": 2}]})
    block = build(spec).linears[0]
    x = torch.tensor(np.random.default_rng(0).normal(size=(4, *SEQUENCE)), requires_grad=True)
    mask = nn.Transformer.generate_square_subsequent_mask(SEQUENCE[0], dtype=x.dtype) if causal else None

    def composed(x):
        normed = block.norm1(x)
        h = x + block.self_attn(normed, normed, normed, attn_mask=mask, need_weights=False)[0]
        return h + block.linear2(nn.GELU()(block.linear1(block.norm2(h))))

    grad_out = torch.tensor(np.random.default_rng(1).normal(size=(4, *SEQUENCE)))
    results = []
    for forward in (block, composed):
        block.zero_grad()
        x.grad = None
        out = forward(x)
        out.backward(grad_out)
        results.append([out.detach().clone(), x.grad.clone()] + [p.grad.clone() for p in block.parameters()])
    assert len(results[0]) == 14
    for ours, theirs in zip(*results):
        assert rel_error(ours.numpy(), theirs.numpy()) <= CHECK_TOL["float64"]


def test_attention_layers_release_what_forward_kept():
    spec = sequence_spec(variant("transformer", 1))
    net, loss = Network.from_spec(spec), build_loss(spec)
    net.loss_and_gradients(np.random.default_rng(0).normal(size=(2, *SEQUENCE)), np.array([0, 1]), loss)
    block = net.layers[1]
    assert net.layers[0].p is None and block.self_attn.p is None and block.linear1.x is None
    assert block.norm1.xhat is None and block.gelu.z is None
    # every gradient was written into the one packed buffer the optimizer updates in one pass
    assert net.gradients() is net._packed_grads and net.parameters() is net._packed_params


def test_attention_layers_initial_values_are_torchs_distributions():
    """torch's own initializations: in_proj xavier_uniform over (D in, 3D out), out_proj and the
    MLP's nn.Linear U(±1/√fan_in) (the MLP's biases too), attention biases 0, layernorms 1 and 0."""
    width = 64
    spec = parse_spec({"input_shape": [3, width], "layers": [
        {"kind": "attention", "heads": 4}, {"kind": "transformer", "heads": 4}, {"kind": "flatten"}, {"units": 2}]})
    params = initial_parameters(spec)
    bounds = {"layers.0.in_proj_weight": (6 / (4 * width)) ** 0.5, "layers.0.out_proj.weight": width ** -0.5,
              "layers.1.linear1.weight": width ** -0.5, "layers.1.linear1.bias": width ** -0.5,
              "layers.1.linear2.weight": (4 * width) ** -0.5}
    for name, bound in bounds.items():
        value = params[name]
        assert np.abs(value).max() <= bound and np.abs(value).max() > 0.9 * bound, name
    assert params["layers.1.linear1.weight"].shape == (width, 4 * width)
    for name in ("layers.0.in_proj_bias", "layers.0.out_proj.bias", "layers.1.norm1.bias"):
        assert np.all(params[name] == 0), name
    assert np.all(params["layers.1.norm2.weight"] == 1)
    torch.manual_seed(0)
    fresh = nn.TransformerEncoderLayer(width, 4, 4 * width, dropout=0.0, batch_first=True, norm_first=True)
    ours = {name.split(".", 2)[2]: value for name, value in params.items() if name.startswith("layers.1.")}
    assert list(ours) == [name for name, _ in fresh.named_parameters()]


def test_attention_layers_weights_change_layout_in_torch_only():
    """Scratch keeps each projection as (inputs, units); torch's module holds it transposed."""
    spec = sequence_spec(variant("transformer", 2))
    model, params = build(spec), initial_parameters(spec)
    assert np.array_equal(model.linears[0].in_proj_weight.detach().numpy(), params["layers.0.in_proj_weight"].T)
    assert np.array_equal(model.linears[1].linear1.weight.detach().numpy(), params["layers.1.linear1.weight"].T)
    assert np.array_equal(model.linears[1].norm1.weight.detach().numpy(), params["layers.1.norm1.weight"])
    assert params["layers.0.in_proj_weight"].shape == (6, 18)


# --------------------------------------------------------------------------------- training


def digits_transformer(optimizer: dict, dtype: str = "float64", epochs: int = 3) -> dict:
    """The digits as sequences: 8 rows of 8 pixels each."""
    return {"seed": 3, "dtype": dtype, "input_shape": [8, 8],
            "layers": [{"kind": "attention", "heads": 2, "causal": True},
                       {"kind": "transformer", "heads": 4, "mlp_units": 16},
                       {"kind": "transformer", "heads": 1, "causal": True, "activation": "gelu"},
                       {"kind": "flatten"}, {"units": 10}],
            "loss": {"name": "softmax_cce"}, "optimizer": optimizer,
            "data": {"name": "digits", "samples": 120, "test_fraction": 0.25, "scale": "standard"},
            "train": {"epochs": epochs, "batch_size": 30, "shuffle": True}}


# The key bias (in_proj_bias[D:2D]) has gradient exactly 0: it adds q_t·b_k to every score of row t,
# which the softmax takes away. Both sides compute it as rounding noise (~1e-17), and Adam steps by
# m/(√v + eps), so at eps = 1e-8 that noise moves the key bias by up to lr·1e-9 per step, differently
# on each side; at eps = 1e-6 it stays below the trajectory tolerance. The CNN runs otherwise.
OPTIMIZER_RUNS = {**CNN_OPTIMIZER_RUNS, **{name: dict(CNN_OPTIMIZER_RUNS[name], eps=1e-6) for name in ("adam", "adamw")}}


def test_attention_layers_key_bias_gradient_vanishes():
    """What the runs above rest on: the key bias's gradient is 0 to rounding, on both sides."""
    report = check(sequence_spec(variant("transformer", 1)), batch=4)
    for side in ("scratch", "torch"):
        for name, width in (("layers.0.in_proj_bias", 6), ("layers.1.self_attn.in_proj_bias", 6)):
            grad = report[side]["grads"][name]
            assert np.abs(grad[width:2 * width]).max() <= 1e-14 * np.abs(grad).max(), (side, name)
            assert np.abs(grad[:width]).max() > 1e-3 * np.abs(grad).max(), (side, name)


def test_attention_layers_every_optimizer_has_a_run():
    assert set(OPTIMIZER_RUNS) == set(OPTIMIZERS)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_RUNS))
def test_attention_layers_training_run_parity(name):
    """Both loops, step by step, on attention and transformer blocks over the digits' rows: 9
    shuffled steps of each optimizer, then the eval-mode test figures."""
    spec = parse_spec(digits_transformer(OPTIMIZER_RUNS[name]))
    ours, theirs = scratch_train(spec, progress=False), torch_train(spec, progress=False)
    assert len(ours.history.step_loss) == 9
    assert_same_run(ours, theirs, TRAJECTORY_TOL, f"digits transformer with {name}")
    assert ours.test_loss == pytest.approx(theirs.test_loss, rel=TRAJECTORY_TOL, abs=0)
    assert ours.test_accuracy == theirs.test_accuracy
    if name != "armijo":   # a line search may reject every step
        assert not np.array_equal(ours.params["layers.1.self_attn.in_proj_weight"],
                                  initial_parameters(spec)["layers.1.self_attn.in_proj_weight"])


@pytest.mark.parametrize("backend", ["scratch", "torch"])
def test_attention_layers_resume_bit_identical(backend, tmp_path):
    """Two epochs at once, or one, a checkpoint, and one more: the same losses and parameters, bit for bit."""
    trainer = scratch_train if backend == "scratch" else torch_train
    whole, saved, resumed = resumed_run(trainer, parse_spec(digits_transformer(OPTIMIZER_RUNS["adam"], epochs=2)),
                                        tmp_path)
    assert saved.params["layers.2.linear1.weight"].shape == (8, 32)
    assert resumed.history.step_loss == whole.history.step_loss
    assert resumed.params.keys() == whole.params.keys()
    for name, value in whole.params.items():
        assert np.array_equal(resumed.params[name], value), name


def test_attention_layers_checkpoint_roundtrip_through_torch(tmp_path):
    """scratch's checkpoint -> a torch .pt (torch's names and layouts) -> back: bit for bit."""
    spec = parse_spec(digits_transformer(OPTIMIZER_RUNS["adam"], epochs=1))
    original, model_state = torch_checkpoint_roundtrip(spec, tmp_path)
    assert torch.equal(model_state["linears.1.self_attn.in_proj_weight"],
                       torch.from_numpy(original.params["layers.1.self_attn.in_proj_weight"].T))
    build(spec).load_state_dict(model_state)   # torch's own modules take it as it is


# ------------------------------------------------------------------------------- the spec


def spec_with(layer: dict, input_shape=SEQUENCE) -> dict:
    return {"input_shape": input_shape, "layers": [layer, {"kind": "flatten"}, {"units": 3}]}


# (id, raw spec, the field named, words the message holds)
BAD_SPECS = [
    ("attention-heads-not-dividing", spec_with({"kind": "attention", "heads": 4}), "layers[0].heads",
     ["4 does not divide the width 6", "1, 2, 3, 6"]),
    ("transformer-heads-not-dividing", spec_with({"kind": "transformer", "heads": 5}), "layers[0].heads",
     ["5 does not divide the width 6"]),
    ("heads-zero", spec_with({"kind": "attention", "heads": 0}), "layers[0].heads", ["must be >= 1"]),
    ("heads-not-an-integer", spec_with({"kind": "transformer", "heads": 1.5}), "layers[0].heads",
     ["expected an integer"]),
    ("causal-not-a-bool", spec_with({"kind": "attention", "causal": "yes"}), "layers[0].causal",
     ["expected true or false"]),
    ("mlp-units-zero", spec_with({"kind": "transformer", "mlp_units": 0}), "layers[0].mlp_units", ["must be >= 1"]),
    ("eps-zero", spec_with({"kind": "transformer", "eps": 0}), "layers[0].eps", ["must be > 0"]),
    ("attention-on-features", spec_with({"kind": "attention"}, [6]), "layers[0].kind",
     ["[time, features]", "[6]"]),
    ("transformer-on-images", spec_with({"kind": "transformer"}, [1, 5, 6]), "layers[0].kind",
     ["[time, features]", "[1, 5, 6]"]),
    ("attention-unknown-field", spec_with({"kind": "attention", "dropout": 0.1}), "layers[0].dropout",
     ["unknown field", "heads"]),
    ("nested-in-residual", spec_with({"kind": "residual", "body": [{"kind": "attention", "heads": 5}]}),
     "layers[0].body[0].heads", ["does not divide"]),
    ("sequence-output", {"input_shape": SEQUENCE, "layers": [{"kind": "attention"}]}, "layers[0].kind",
     ["[5, 6]"]),
    ("input-shape-of-four", spec_with({"kind": "attention"}, [1, 2, 3, 4]), "input_shape",
     ["[time, features]", "[1, 2, 3, 4]"]),
]


@pytest.mark.parametrize("raw,field,words", [case[1:] for case in BAD_SPECS], ids=[c[0] for c in BAD_SPECS])
def test_attention_layers_bad_spec_exits_2_naming_layer_and_field(raw, field, words, tmp_path, capsys):
    assert_check_refuses(raw, field, words, tmp_path, capsys)


def test_attention_layers_spec_round_trip():
    spec = parse_spec(digits_transformer(OPTIMIZER_RUNS["sgd"], dtype="float32"))
    raw = spec.to_dict()
    assert raw["layers"][1] == {"kind": "transformer", "heads": 4, "causal": False, "mlp_units": 16, "eps": 1e-5,
                                "activation": "identity", "activation_params": {}}
    assert parse_spec(json.loads(spec.to_json())) == spec
    import tomllib
    assert parse_spec(tomllib.loads(spec.to_toml())) == spec
    assert spec.shapes[1] == spec.shapes[3] == (8, 8) and spec.shapes[-1] == (10,)


@pytest.mark.slow
def test_attention_layers_readme_tiny_gpt_commands_as_written(tmp_path):
    """The README's commands on specs/tiny_gpt.toml: check in float64 and float32, compare for one
    epoch (three backends agreeing per step within the trajectory tolerance)."""
    spec = Path(__file__).resolve().parents[1] / "specs" / "tiny_gpt.toml"
    for dtype in DTYPES:
        proc = run_nnparity("check", spec, "--dtype", dtype, cwd=tmp_path)
        assert proc.returncode == 0 and proc.stdout.rstrip().endswith("all tensors agree"), proc.stdout + proc.stderr
    proc = run_nnparity("compare", spec, "--epochs", "1", "--repeat", "1", "--plot", "none", cwd=tmp_path)
    assert proc.returncode == 0 and "parity: the three per-step loss trajectories agree" in proc.stdout, proc.stderr
    assert "31 steps (1 epochs x 31 batches of 32)" in proc.stdout
