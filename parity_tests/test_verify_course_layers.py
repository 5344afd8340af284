"""verify on course layer functions (X_forward -> (out, cache), X_backward(dout, cache)): every
layer kind's correct version passes against its torch twin and finite differences, a realistic
slip in each fails naming the wrong gradient, inputs from a hook are used exactly (ints, dicts,
shapes), and what cannot be read is refused with exit 2. Each correct example is also checked
here against plain central differences of its own forward, independently of verify."""
from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "parity_tests")):
    if _p not in sys.path:
        sys.path.append(_p)

from nnparity.cli import main  # noqa: E402
from nnparity.verify.autograd import verify  # noqa: E402
from nnparity.verify import child  # noqa: E402

CL, RL = "examples.course_layers:", "examples.course_rnn_layers:"
# kind -> (target, the torch twin the report must say ran)
CORRECT = {
    "affine": ("examples.layer_functions:affine_forward", "F.linear"),
    "batchnorm": (CL + "batchnorm_forward", "F.batch_norm"),
    "layernorm": (CL + "layernorm_forward", "F.layer_norm"),
    "dropout": (CL + "dropout_forward", "x · mask"),
    "conv": (CL + "conv_forward_naive", "F.conv2d"),
    "max_pool": (CL + "max_pool_forward_naive", "F.max_pool2d"),
    "lstm_step": (CL + "lstm_step_forward", "torch.lstm_cell"),
    "rnn_step": (RL + "rnn_step_forward", "torch.rnn_tanh_cell"),
    "rnn": (RL + "rnn_forward", "torch.rnn_tanh_cell"),
    "lstm": (RL + "lstm_forward", "torch.lstm_cell"),
    "word_embedding": (RL + "word_embedding_forward", "F.embedding"),
    "temporal_affine": (RL + "temporal_affine_forward", "F.linear"),
    "temporal_softmax_loss": (RL + "temporal_softmax_loss", "F.cross_entropy"),
}
FAST = ("batchnorm", "conv", "lstm_step")      # the rest run in the slow lane (each takes seconds)


def _lanes(table: dict) -> list:
    return [pytest.param(*value, id=key, marks=() if key in FAST else pytest.mark.slow)
            for key, value in table.items()]


@pytest.mark.parametrize("target, twin", _lanes(CORRECT))
def test_course_layer_correct_version_passes(target, twin, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    assert main(["verify", target]) == 0
    out = capsys.readouterr().out
    assert f"reference: autograd of {twin} (torch's own" in out, out
    assert out.splitlines()[-1].startswith("PASS")


P = "planted_functions:"
# kind -> (target, the culprit the diagnosis must name)
PLANTED = {
    "affine_3d_reshape": (P + "affine_flat_forward", "dx (1st returned by affine_flat_backward): the right numbers in "
                                                     "the wrong shape: got (3, 4) for an input of shape (3, 2, 2)"),
    "batchnorm": (P + "batchnorm_nodvar_forward", "dx (1st returned by batchnorm_nodvar_backward)"),
    "running_stats": (P + "batchnorm_momentum_forward", "bn_param['running_mean'] after one forward differs"),
    "layernorm": (P + "layernorm_batchaxis_forward", "dx (1st returned by layernorm_batchaxis_backward)"),
    "dropout": (P + "dropout_unscaled_forward", "dx (1st returned by dropout_unscaled_backward): off by a constant "
                                                "factor 0.6"),
    "conv": (P + "conv_nostride_forward_naive", "dx (1st returned by conv_nostride_backward_naive)"),
    "max_pool": (P + "max_pool_spread_forward_naive", "dx (1st returned by max_pool_spread_backward_naive)"),
    "lstm_step": (P + "lstm_step_nof_forward", "dprev_c (3rd returned by lstm_step_nof_backward)"),
    "rnn_step": (P + "rnn_step_nosquare_forward", "dx (1st returned by rnn_step_nosquare_backward)"),
    "rnn": (P + "rnn_nobptt_forward", "dx (1st returned by rnn_nobptt_backward)"),
    "word_embedding": (P + "word_embedding_overwrite_forward", "dW (1st returned by word_embedding_overwrite_backward)"),
    "temporal_affine": (P + "temporal_affine_stepb_forward", "db (3rd returned by temporal_affine_stepb_backward)"),
    "temporal_softmax_loss": (P + "temporal_softmax_loss_nomask", "dx (1st returned by temporal_softmax_loss_nomask)"),
}
FAST_PLANTED = ("affine_3d_reshape", "running_stats", "lstm_step", "word_embedding")


@pytest.mark.parametrize("target, culprit", [
    pytest.param(*v, id=k, marks=() if k in FAST_PLANTED else pytest.mark.slow) for k, v in PLANTED.items()])
def test_course_layer_planted_slip_fails_naming_the_gradient(target, culprit, capsys):
    assert main(["verify", target]) == 1
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith(f"diagnosis: {culprit}"), out


# ------------------------------------------------------ independent central differences


def _inputs(kind: str, rng) -> list:
    """Inputs written here, apart from verify's conventions."""
    normal = rng.normal
    table = {
        "affine": lambda: [normal(size=(3, 2, 3)), normal(size=(6, 2)), normal(size=2)],
        "batchnorm": lambda: [normal(size=(5, 3)), normal(size=3), normal(size=3), {"mode": "train"}],
        "layernorm": lambda: [normal(size=(5, 3)), normal(size=3), normal(size=3), {}],
        "dropout": lambda: [normal(size=(4, 5)), {"p": 0.5, "mode": "train", "seed": 7}],
        "conv": lambda: [normal(size=(1, 2, 4, 4)), normal(size=(3, 2, 3, 3)), normal(size=3),
                         {"stride": 1, "pad": 1}],
        "max_pool": lambda: [normal(size=(1, 2, 4, 4)), {"pool_height": 2, "pool_width": 2, "stride": 2}],
        "lstm_step": lambda: [normal(size=(2, 3)), normal(size=(2, 2)), normal(size=(2, 2)), normal(size=(3, 8)),
                              normal(size=(2, 8)), normal(size=8)],
        "rnn_step": lambda: [normal(size=(2, 3)), normal(size=(2, 2)), normal(size=(3, 2)), normal(size=(2, 2)),
                             normal(size=2)],
        "rnn": lambda: [normal(size=(2, 4, 3)), normal(size=(2, 2)), normal(size=(3, 2)), normal(size=(2, 2)),
                        normal(size=2)],
        "lstm": lambda: [normal(size=(2, 4, 3)), normal(size=(2, 2)), normal(size=(3, 8)), normal(size=(2, 8)),
                         normal(size=8)],
        "word_embedding": lambda: [np.array([[0, 2, 2], [1, 0, 3]]), normal(size=(4, 3))],
        "temporal_affine": lambda: [normal(size=(2, 3, 4)), normal(size=(4, 2)), normal(size=2)],
        "temporal_softmax_loss": lambda: [normal(size=(2, 3, 4)), np.array([[0, 3, 1], [2, 2, 0]]),
                                          np.array([[True, True, False], [True, False, True]])],
    }
    return table[kind]()


def _central_difference(f, x, h=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f()
        x[i] = old - h
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


@pytest.mark.parametrize("kind", list(CORRECT))
def test_course_layer_example_agrees_with_central_differences(kind):
    module_name, _, name = CORRECT[kind][0].partition(":")
    module = importlib.import_module(module_name)
    forward = getattr(module, name)
    inputs = _inputs(kind, np.random.default_rng(5))
    floats = [i for i, v in enumerate(inputs) if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    if kind == "temporal_softmax_loss":
        loss, dx = forward(*inputs)
        got, scalar = [dx], lambda: forward(*inputs)[0]
    else:
        backward = getattr(module, name.replace("_forward", "_backward"))
        *outs, cache = forward(*[v.copy() if isinstance(v, dict) else v for v in inputs])
        upstream = [np.random.default_rng(1).normal(size=o.shape) for o in outs]
        got = backward(*upstream, cache)
        got = list(got) if isinstance(got, tuple) else [got]

        def scalar():
            fresh = [dict(v) if isinstance(v, dict) else v for v in inputs]
            return sum(float(np.sum(u * o)) for u, o in zip(upstream, forward(*fresh)[:-1]))
    assert len(got) == len(floats)
    for i, g in zip(floats, got):
        expected = _central_difference(scalar, inputs[i])
        assert g.shape == inputs[i].shape
        np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ inputs as given

USER = textwrap.dedent('''
    import numpy as np
    from examples.course_layers import batchnorm_backward_alt, batchnorm_forward

    GIVEN = {}

    def scale_forward(x, k, idx, opts):
        assert x.shape == (2, 3, 4) and isinstance(k, int) and idx.dtype == np.int32, (x.shape, k, idx.dtype)
        opts["calls"] = opts.get("calls", 0) + 1     # a forward that writes into its param dict
        return k * x.sum(axis=-1)[:, idx], (x.shape, k, idx)

    def scale_backward(dout, cache):
        shape, k, idx = cache
        dx = np.zeros(shape)
        np.add.at(dx, (slice(None), idx), k * dout[..., None])
        return dx

    def scale_example(rng):
        GIVEN["x"] = rng.normal(size=(2, 3, 4))
        GIVEN["opts"] = {"mode": "sum"}
        return GIVEN["x"], 3, np.array([0, 2, 2], dtype=np.int32), GIVEN["opts"]

    def byname_forward(x, w):
        return x @ w, (x, w)

    def byname_backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout

    def byname_example(rng):
        return {"w": rng.normal(size=(5, 2)), "x": rng.normal(size=(7, 5))}

    def broken_forward(x, w):
        return x @ w, (x, w)

    def broken_backward(dout, cache):
        return cache

    def broken_example(rng):
        raise KeyError("no data here")

    def odd_forward(x, alpha):
        return x * alpha, alpha

    def odd_backward(dout, cache):
        return dout * cache

    def noisy_forward(x, dropout_param):
        mask = np.random.rand(*x.shape) < dropout_param["p"]
        return x * mask, mask

    def noisy_backward(dout, cache):
        return dout * cache

    def pair_forward(x):
        return x, 2 * x, None

    def pair_backward(dout, cache):
        return dout

    def affine_twice_forward(x, w, b):
        return 2 * (x @ w + b), (x, w)

    def affine_twice_backward(dout, cache):
        x, w = cache
        return 2 * dout @ w.T, 2 * x.T @ dout, 2 * dout.sum(axis=0)

    def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
        out, bn_cache = batchnorm_forward(x @ w + b, gamma, beta, bn_param)
        return np.maximum(out, 0), (x, w, bn_cache, out)

    def affine_bn_relu_backward(dout, cache):
        x, w, bn_cache, out = cache
        da, dgamma, dbeta = batchnorm_backward_alt(dout * (out > 0), bn_cache)
        return da @ w.T, x.T @ da, da.sum(axis=0), dgamma, dbeta

    def spatial_batchnorm_forward(x, gamma, beta, bn_param):
        n, c, h, w = x.shape
        out, cache = batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, c), gamma, beta, bn_param)
        return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)

    def spatial_batchnorm_backward(dout, cache):
        cache, (n, c, h, w) = cache
        dx, dgamma, dbeta = batchnorm_backward_alt(dout.transpose(0, 2, 3, 1).reshape(-1, c), cache)
        return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta
''')


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usercourse.py").write_text(USER)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("usercourse", None)
    return tmp_path


def test_course_hook_is_used_exactly(user_module, capsys, monkeypatch):
    """x keeps its rank, k stays an int, idx an int32 array, opts a dict; only x is differentiated,
    and what the user's hook made is left as it was (seen in this process: verify runs here)."""
    monkeypatch.setattr(child, "forking", lambda: False)
    assert main(["verify", "usercourse:scale_forward"]) == 0
    out = capsys.readouterr().out
    assert "  inputs: x (2, 3, 4), k 3, idx (3,) int32, opts {'mode': 'sum'}; from scale_example(rng), used as given" \
           in out
    assert "  differentiated: x (float arrays); scale_backward returns dx" in out
    given = importlib.import_module("usercourse").GIVEN
    assert given["opts"] == {"mode": "sum"}
    assert np.array_equal(given["x"], np.random.default_rng(0).normal(size=(2, 3, 4)))


def test_course_hook_may_return_inputs_by_name(user_module, capsys):
    assert main(["verify", "usercourse:byname_forward"]) == 0
    assert "inputs: x (7, 5), w (5, 2); from byname_example(rng)" in capsys.readouterr().out


def test_course_integer_indices_are_not_differentiated():
    report = verify(RL + "word_embedding_forward")
    assert report.ok
    assert "differentiated: W (float arrays); word_embedding_backward returns dW" in report.paths
    assert [c.wrt for c in report.checks if c.reference == "finite differences"] == ["W"]


@pytest.mark.parametrize("target, message", [
    ("usercourse:broken_forward", "nnparity verify: broken_example(rng) raised KeyError: 'no data here'; "
                                  "broken_example(rng) returns the forward's inputs (x, w) as a tuple in order"),
    ("usercourse:odd_forward", "nnparity verify: cannot infer odd_forward's input 'alpha' from its name"),
    ("usercourse:noisy_forward", "nnparity verify: noisy_forward is random: two calls on the same inputs gave "
                                 "different outputs"),
    ("usercourse:pair_forward", "nnparity verify: pair_forward returned a tuple of 3; expected (out, cache), one "
                                "output for each upstream gradient pair_backward takes before its cache\n"),
], ids=["hook_raises", "unknown_name", "random", "outputs_and_upstreams"])
def test_course_refusals_exit_2_naming_what_is_accepted(user_module, capsys, target, message):
    assert main(["verify", target]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith(message), err
    assert "Traceback" not in err


@pytest.mark.parametrize("target, example", [("usercourse:odd_forward", "def odd_example(rng):"),
                                             ("usercourse:noisy_forward", "np.random.seed(dropout_param['seed'])")],
                         ids=["unknown_name", "random"])
def test_course_refusal_shows_a_two_line_example(user_module, capsys, target, example):
    """The example's lines stay apart ("|") within the one line of a usage error."""
    assert main(["verify", target]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and example in lines[0] and lines[0].count(" | ") >= 2


def test_course_both_batchnorm_backwards_are_checked():
    report = verify(CL + "batchnorm_forward")
    assert report.ok
    names = [c.name for c in report.checks]
    assert "dx (1st returned) vs F.batch_norm autograd" in names
    assert "[batchnorm_backward_alt] dx (1st returned) vs F.batch_norm autograd" in names
    assert "bn_param running_var vs F.batch_norm" in names


@pytest.mark.parametrize("target, says", [
    ("usercourse:affine_twice_forward", "torch twin F.linear: not used, your forward computes something else"),
    ("usercourse:affine_bn_relu_forward", "torch twin F.linear: not applicable, it takes 3 inputs and "
                                          "affine_bn_relu_forward 6"),
    ("usercourse:spatial_batchnorm_forward", "reference: autograd of F.batch_norm (torch's own"),
], ids=["other_function", "sandwich", "spatial_batchnorm"])
def test_course_twin_used_only_where_it_applies_and_the_report_says_so(user_module, capsys, target, says):
    assert main(["verify", target]) == 0
    out = capsys.readouterr().out
    assert says in out and out.splitlines()[-1].startswith("PASS"), out
