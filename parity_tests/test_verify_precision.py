"""verify on user code that computes in float32: finite differences at float32's precision (steps
around eps^(1/3), the tolerance of scratch.policy.fd_tolerance), said in the report; a real slip
still fails. Each correct example is first checked here against a central difference of its own."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from nnparity.cli import main  # noqa: E402
from parity_tests.verify_user_code import load_user_module  # noqa: E402
from scratch.policy import fd_tolerance  # noqa: E402

SOURCE = textwrap.dedent('''
    import numpy as np


    def sigmoid32(z):
        z = np.asarray(z, dtype=np.float32)
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)


    def sigmoid32_prime(z):
        s = sigmoid32(z)
        return (s * (np.float32(1) - s)).astype(np.float32)


    class Dense32:
        def __init__(self, n_in, n_out):
            self.W = (np.random.randn(n_in, n_out) * 0.5).astype(np.float32)
            self.b = (np.random.randn(n_out) * 0.5).astype(np.float32)

        def forward(self, x):
            self.x = x.astype(np.float32)
            return self.x @ self.W + self.b

        def backward(self, grad_out):
            g = grad_out.astype(np.float32)
            self.dW = self.x.T @ g
            self.db = g.sum(axis=0)
            return g @ self.W.T
''')
SLIPS = {"sigmoid32": ("(s * (np.float32(1) - s))", "(s * (np.float32(1) - s) * 2)"),
         "Dense32": ("self.db = g.sum(axis=0)", "self.db = g.mean(axis=0)")}


def central(f, x, h):
    """float64 central differences of a float32 f, the step taken as f sees it (float32 points)."""
    up, down = (x + h).astype(np.float32), (x - h).astype(np.float32)
    return (f(up).astype(np.float64) - f(down).astype(np.float64)) / (up.astype(np.float64) - down)


def test_precision_float32_tolerance_is_above_float32_fd_error():
    eps = float(np.finfo(np.float32).eps)
    assert eps ** (2 / 3) < fd_tolerance("float32") < 1e-2
    assert fd_tolerance("float64") < fd_tolerance("float32")


def test_precision_float32_sigmoid_passes_at_float32_precision(tmp_path, monkeypatch, capsys):
    module = load_user_module(tmp_path, monkeypatch, "f32_good", SOURCE)
    z = np.random.default_rng(0).normal(0, 2, 50)
    h = float(np.finfo(np.float32).eps) ** (1 / 3)
    ref = central(module.sigmoid32, z, h)
    assert np.max(np.abs(module.sigmoid32_prime(z) - ref)) < 1e-4
    assert main(["verify", "f32_good:sigmoid32"]) == 0
    out = capsys.readouterr().out
    assert "your forward computes in float32: finite differences at float32 precision" in out
    assert f"tol {fd_tolerance('float32'):.0e}" in out


def test_precision_float32_layer_passes(tmp_path, monkeypatch, capsys):
    module = load_user_module(tmp_path, monkeypatch, "f32_layer", SOURCE)
    np.random.seed(0)
    layer = module.Dense32(3, 2)
    x = np.random.default_rng(1).normal(size=(4, 3))
    g = np.random.default_rng(2).normal(size=(4, 2))
    layer.forward(x)
    dx = layer.backward(g)
    h = float(np.finfo(np.float32).eps) ** (1 / 3)
    ref = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        e = np.zeros_like(x)
        e[i] = 1.0
        ref[i] = np.sum(g * central(lambda t: layer.forward(x + t[0] * e), np.zeros(1), h)[None])
    assert np.allclose(dx, ref, rtol=1e-3, atol=1e-3)
    assert main(["verify", "f32_layer:Dense32"]) == 0
    assert "your forward computes in float32" in capsys.readouterr().out


@pytest.mark.parametrize("name", list(SLIPS))
def test_precision_float32_slip_fails(tmp_path, monkeypatch, capsys, name):
    right, wrong = SLIPS[name]
    assert SOURCE.count(right) == 1
    load_user_module(tmp_path, monkeypatch, f"f32_slip_{name}", SOURCE.replace(right, wrong))
    assert main(["verify", f"f32_slip_{name}:{name}"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "your forward computes in float32" in out


def test_precision_float16_forward_is_refused(tmp_path, monkeypatch, capsys):
    source = SOURCE.replace("np.float32", "np.float16")
    load_user_module(tmp_path, monkeypatch, "f16_code", source)
    assert main(["verify", "f16_code:sigmoid32"]) == 2
    err = capsys.readouterr().err
    assert "float16" in err and "float32 or float64" in err
