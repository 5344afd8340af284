"""verify on forms named by their calling convention: an op class called as op(x) (``__call__``, no
forward), a backprop network whose forward is named predict (and one with none,
refused with what to add), and a course recurrent step named ``rnn_cell``. Each correct example is
first checked here against a central difference of its own; each planted slip exits 1."""
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
from parity_tests.verify_user_code import central_gradient, load_user_module  # noqa: E402

OPS = textwrap.dedent('''
    import numpy as np


    class Tanh:
        def __call__(self, x):
            self.y = np.tanh(x)
            return self.y

        def backward(self, grad):
            return grad * (1 - self.y ** 2)


    class L2:
        def __call__(self, pred, target):
            self.diff = pred - target
            return 0.5 * np.sum(self.diff ** 2)

        def backward(self):
            return self.diff


    def rnn_cell_forward(x, prev_h, Wx, Wh, b):
        h = np.tanh(x @ Wx + prev_h @ Wh + b)
        return h, (x, prev_h, Wx, Wh, h)


    def rnn_cell_backward(dnext_h, cache):
        x, prev_h, Wx, Wh, h = cache
        dz = (1 - h * h) * dnext_h
        return dz @ Wx.T, dz @ Wh.T, x.T @ dz, prev_h.T @ dz, dz.sum(axis=0)
''')

# network.py's Network with its forward named predict
NETWORK = (REPO / "examples" / "nielsen_network.py").read_text().replace("def feedforward(self, a):",
                                                                         "def predict(self, a):")
SLIPS = {"Tanh": ("grad * (1 - self.y ** 2)", "grad * (1 - self.y)"),
         "L2": ("return self.diff\n", "return -self.diff\n"),
         "Network": ("delta = self.output_delta(zs[-1], activations[-1], y)", "delta = activations[-1] - y"),
         "rnn_cell_forward": ("prev_h.T @ dz, dz.sum", "h.T @ dz, dz.sum")}
SAYS = {"Tanh": "form: Tanh has no forward: called through __call__, its forward",
        "L2": "form: L2 has no forward: called through __call__, its forward",
        "Network": "forward: predict(x), as network.py's feedforward(x)",
        "rnn_cell_forward": "x (3, 4)"}


def _source(name):
    return NETWORK if name == "Network" else OPS


def _independent(module, name):
    """(hand-written gradient, central difference) of one input or parameter, in the user's own form."""
    rng = np.random.default_rng(3)
    if name == "Tanh":
        x, g = rng.normal(size=(2, 4, 3))
        op = module.Tanh()
        op(x)
        return op.backward(g), central_gradient(lambda t: np.sum(g * module.Tanh()(t)), x)
    if name == "L2":
        p, t = rng.normal(size=(2, 4, 3))
        op = module.L2()
        op(p, t)
        return op.backward(), central_gradient(lambda q: module.L2()(q, t), p)
    if name == "Network":
        net = module.Network([3, 4, 2])
        x, y = rng.normal(size=(3, 1)), np.array([[0.0], [1.0]])
        nabla_w = net.backprop(x, y)[1]

        def cost(w0):
            net.weights[0] = w0
            return 0.5 * np.sum((net.predict(x) - y) ** 2)
        return nabla_w[0], central_gradient(cost, net.weights[0].copy())
    x, h, wx, wh, b = rng.normal(size=(3, 4)), rng.normal(size=(3, 5)), rng.normal(size=(4, 5)), \
        rng.normal(size=(5, 5)), rng.normal(size=5)
    dnext = rng.normal(size=(3, 5))
    _, cache = module.rnn_cell_forward(x, h, wx, wh, b)
    got = module.rnn_cell_backward(dnext, cache)[3]
    return got, central_gradient(lambda v: np.sum(dnext * module.rnn_cell_forward(x, h, wx, v, b)[0]), wh)


@pytest.mark.parametrize("name", list(SLIPS))
def test_call_forms_correct_code_passes(tmp_path, monkeypatch, capsys, name):
    module = load_user_module(tmp_path, monkeypatch, "call_good", _source(name))
    got, expected = _independent(module, name)
    assert np.allclose(got, expected, rtol=1e-6, atol=1e-8)
    assert main(["verify", f"call_good:{name}"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("PASS") and SAYS[name] in out, out


@pytest.mark.parametrize("name", list(SLIPS))
def test_call_forms_planted_slip_fails(tmp_path, monkeypatch, capsys, name):
    right, wrong = SLIPS[name]
    assert _source(name).count(right) == 1
    load_user_module(tmp_path, monkeypatch, f"call_slip_{name}", _source(name).replace(right, wrong))
    assert main(["verify", f"call_slip_{name}:{name}"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_call_forms_network_without_a_forward_is_refused_with_what_to_add(tmp_path, monkeypatch, capsys):
    load_user_module(tmp_path, monkeypatch, "call_noff", NETWORK.replace("def predict(self, a):", "def _ff(self, a):"))
    assert main(["verify", "call_noff:Network"]) == 2
    err = capsys.readouterr().err
    assert "feedforward(x) (network.py's own method), or one named forward, predict or __call__" in err
    assert "def feedforward(self, a):" in err
