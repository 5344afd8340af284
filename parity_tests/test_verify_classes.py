"""verify on layer classes as tutorials write them: parameters and gradients in dicts or attributes,
constructors with required sizes, forward through __call__, a backward that applies its own
update. Correct classes pass (each also checked here against a few-line central difference),
planted slips fail naming the parameter, a parameter without a gradient never passes."""
from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "parity_tests")):
    if _p not in sys.path:
        sys.path.append(_p)

from examples.layer_classes import Dense, FullyConnected, Linear  # noqa: E402
from nnparity.cli import main  # noqa: E402
from test_verify_networks import assert_agree, central  # noqa: E402
from nnparity.verify.autograd import verify  # noqa: E402


def test_classes_examples_are_right_by_central_differences():
    np.random.seed(5)
    x = np.random.randn(6, 4)
    upstream = np.random.randn(6, 3)
    linear, fc, dense = Linear(4, 3), FullyConnected(3), Dense(4, 3)
    fc(x)      # its weights are made at the first call
    for layer, call, params in ((linear, linear.forward, linear.params), (fc, fc, {"W": fc.W, "b": fc.b}),
                                (dense, dense.forward, {"weights": dense.weights, "bias": dense.bias})):
        def loss():
            return float(np.sum(upstream * call(x)))
        expected = {name: central(loss, value) for name, value in params.items()}
        before = {name: value.copy() for name, value in params.items()}
        call(x)
        if layer is dense:
            dense.backward(upstream, 1.0)
            got = {name: before[name] - value for name, value in params.items()}
        else:
            layer.backward(upstream)
            got = linear.grads if layer is linear else {"W": fc.dW, "b": fc.db}
        for name in params:
            assert_agree(got[name], expected[name])


CORRECT = {
    "dict_parameters": ("examples.layer_classes:Linear", "parameters in self.params (W, b), called through forward"),
    "lazy_call": ("examples.layer_classes:FullyConnected", "parameters in attributes (W, b), called through __call__; "
                                                           "constructed as FullyConnected(n_out=3)"),
    "self_updating": ("examples.layer_classes:Dense", "backward(grad_out, learning_rate) updates the parameters itself"),
}


@pytest.mark.parametrize("target, says", CORRECT.values(), ids=list(CORRECT))
def test_classes_correct_version_passes(target, says):
    report = verify(target)
    assert report.ok, report.format()
    assert says in report.format()
    checked = {c.wrt for c in report.checks}
    assert len(checked) == 3 and "x" in checked     # the input and both parameters
    assert any(c.reference.startswith("your forward on torch") for c in report.checks)
    assert main(["verify", target]) == 0


P = "planted_classes:"
PLANTED = {
    "bias_averaged": (P + "LinearBiasMean", "db: averaged over the batch where the sum is needed (got = expected / 6"),
    "transposed_dW": (P + "LinearTransposed", "dW: transposed: got shape (3, 4), expected (4, 3)"),
    "update_sign": (P + "DenseSign", "dweights: wrong sign"),
}


@pytest.mark.parametrize("target, says", PLANTED.values(), ids=list(PLANTED))
def test_classes_planted_slip_is_named(target, says):
    report = verify(target)
    assert not report.ok
    assert report.diagnosis.startswith(says), report.diagnosis
    assert main(["verify", target]) == 1


def test_classes_parameter_without_gradient_never_passes(capsys):
    report = verify(P + "FullyConnectedNoBiasGradient")
    assert not report.ok and not report.failed_to_run
    assert report.diagnosis.startswith("no gradient found for parameter b")
    assert "parameters without a gradient: b" in report.format()
    assert [c.ok for c in report.checks if c.wrt in ("x", "W")] == [True] * len(
        [c for c in report.checks if c.wrt in ("x", "W")])
    assert main(["verify", P + "FullyConnectedNoBiasGradient"]) == 1


HOOKED = textwrap.dedent('''
    import numpy as np

    class Affine:
        def __init__(self, rows, cols):
            self.params = {"w": np.random.randn(rows, cols)}
            self.gradients = {}

        def forward(self, x):
            self.x = x
            return x @ self.params["w"]

        def backward(self, dout):
            self.gradients["w"] = self.x.T @ dout
            return dout @ self.params["w"].T
''')


def test_classes_unknown_constructor_argument_asks_for_the_hook(tmp_path, monkeypatch, capsys):
    (tmp_path / "hooked.py").write_text(HOOKED)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["verify", "hooked:Affine"]) == 2
    err = capsys.readouterr().err
    assert "its argument 'rows' has no default and no known meaning" in err
    assert "def Affine_example(rng):" in err


def test_classes_hook_builds_the_instance(tmp_path, monkeypatch):
    (tmp_path / "hooked2.py").write_text(HOOKED + "\n\ndef Affine_example(rng):\n    return {'rows': 3, 'cols': 2}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    report = verify("hooked2:Affine")
    assert report.ok, report.format()
    assert "built from Affine_example(rng) (arguments)" in report.format()
    assert {c.wrt for c in report.checks} == {"x", "w"}


METHOD_PAIRS = {
    "quadratic_cost": ("examples.nielsen_network:QuadraticCost", "cost class: delta(z, a, y) is dC/dz"),
    "cross_entropy_cost": ("examples.nielsen_network:CrossEntropyCost", "cost class: delta(z, a, y) is dC/dz"),
    "activation_fn_prime": ("examples.nielsen_network:Sigmoid", "methods Sigmoid.fn and Sigmoid.prime"),
}


def test_classes_cost_deltas_are_right_by_central_differences():
    from examples.nielsen_network import CrossEntropyCost, QuadraticCost, sigmoid
    rng = np.random.default_rng(6)
    z, y = rng.normal(size=(3, 1)), np.eye(3)[:, [2]]
    for cost in (QuadraticCost, CrossEntropyCost):
        assert_agree(cost.delta(z, sigmoid(z), y), central(lambda: cost.fn(sigmoid(z), y), z))


@pytest.mark.parametrize("target, says", METHOD_PAIRS.values(), ids=list(METHOD_PAIRS))
def test_classes_method_pair_passes(target, says):
    report = verify(target)
    assert report.ok, report.format()
    assert says in report.format()
    assert main(["verify", target]) == 0


def test_classes_method_pair_cost_delta_sign_is_named():
    report = verify("planted_networks:CrossEntropySign")
    assert not report.ok
    assert report.diagnosis.startswith("wrong sign"), report.diagnosis


def test_classes_method_pair_without_derivative_is_refused(tmp_path, monkeypatch, capsys):
    (tmp_path / "nodelta.py").write_text("class Cost:\n    @staticmethod\n    def fn(a, y):\n        return (a - y) ** 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["verify", "nodelta:Cost"]) == 2
    err = capsys.readouterr().err
    assert "needs its derivative as a method" in err and "def delta(z, a, y)" in err


def test_classes_loss_with_a_weight_placeholder_stays_a_loss(tmp_path, monkeypatch):
    (tmp_path / "weighted.py").write_text(textwrap.dedent('''
        import numpy as np

        class WeightedMSE:
            def __init__(self):
                self.weight = None      # per-element weights, none by default

            def forward(self, pred, target):
                self.diff = pred - target
                return float(np.mean(self.diff ** 2))

            def backward(self):
                return 2 * self.diff / self.diff.size
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    report = verify("weighted:WeightedMSE")
    assert report.kind == "loss" and report.ok, report.format()
