"""verify on layer classes as tutorials write them: parameters and gradients in dicts or attributes,
constructors with required sizes, forward through __call__, a backward that applies its own
update. Correct classes pass (each also checked here against a few-line central difference),
planted slips fail naming the parameter, a parameter without a gradient never passes."""
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


SIZED = textwrap.dedent('''
    import numpy as np

    class LazyDense:
        def __init__(self, n_out):
            self.n_out = n_out
            self.params, self.grads = {}, {}

        def forward(self, x):
            p = self.params
            if not p:     # the weights are made at the first call
                p.update(W=np.random.randn(x.shape[1], self.n_out), b=np.zeros(self.n_out))
            self.inp = x
            return np.dot(x, p["W"]) + p["b"]

        def backward(self, dout):
            self.grads.update(W=np.dot(self.inp.T, dout), b=np.sum(dout, axis=0))
            return np.dot(dout, self.params["W"].T)

    class BatchNorm:
        def __init__(self, num_features, eps=1e-5):
            self.eps = eps
            self.params = {"gamma": np.linspace(0.5, 1.5, num_features), "beta": np.zeros(num_features)}
            self.grads = {}

        def forward(self, x):
            self.xhat = (x - x.mean(axis=0)) / np.sqrt(x.var(axis=0) + self.eps)
            self.inv_std = 1 / np.sqrt(x.var(axis=0) + self.eps)
            return self.params["gamma"] * self.xhat + self.params["beta"]

        def backward(self, dout):
            n = dout.shape[0]
            self.grads["gamma"] = np.sum(dout * self.xhat, axis=0)
            self.grads["beta"] = np.sum(dout, axis=0)
            dxhat = dout * self.params["gamma"]
            return self.inv_std / n * (n * dxhat - dxhat.sum(axis=0) - self.xhat * np.sum(dxhat * self.xhat, axis=0))
''')
SIZED_SLIPS = {"LazyDense": ("W=np.dot(self.inp.T, dout)", "W=np.dot(dout.T, self.inp)"),
               "BatchNorm": ("return self.inv_std / n * (", "return self.inv_std * dxhat + 0 * (")}


@pytest.mark.parametrize("name, built", [("LazyDense", "LazyDense(n_out=3)"),
                                         ("BatchNorm", "BatchNorm(num_features=4)")])
def test_classes_required_size_argument_is_read_from_its_name(tmp_path, monkeypatch, name, built):
    """A constructor's required size (n_out, num_features) gets a small value by its name; an empty
    self.params the first call fills is read as the layer's parameters."""
    good, slip = f"sized_{name}", f"sized_{name}_slip"      # one module per case: imports are cached
    (tmp_path / f"{good}.py").write_text(SIZED)
    (tmp_path / f"{slip}.py").write_text(SIZED.replace(*SIZED_SLIPS[name]))
    monkeypatch.syspath_prepend(str(tmp_path))
    sized = importlib.import_module(good)
    np.random.seed(2)
    layer, x = getattr(sized, name)(3 if name == "LazyDense" else 4), np.random.randn(6, 4)
    upstream = np.random.randn(*layer.forward(x).shape)
    layer.backward(upstream)
    for pname, value in layer.params.items():
        assert_agree(layer.grads[pname], central(lambda: float(np.sum(upstream * layer.forward(x))), value))
    report = verify(f"{good}:{name}")
    assert report.ok, report.format()
    assert f"constructed as {built}" in report.format() and "parameters in self.params" in report.format()
    assert {c.wrt for c in report.checks} == {"x", *layer.params}
    assert main(["verify", f"{slip}:{name}"]) == 1


ROW_WISE = textwrap.dedent('''
    import numpy as np

    class Softmax:
        def forward(self, logits):
            shifted = np.exp(logits - np.max(logits, axis=-1)[:, None])
            self.s = shifted / np.sum(shifted, axis=-1)[:, None]
            return self.s

        def backward(self, g):
            return self.s * g - self.s * np.einsum("nc,nc->n", g, self.s)[:, None]
''')


@pytest.mark.parametrize("slip, code", [(None, 0), (('np.einsum("nc,nc->n", g, self.s)[:, None]', "g * self.s"), 1)],
                         ids=["correct", "diagonal_only"])
def test_classes_row_wise_class_is_checked_as_a_vector_op(tmp_path, monkeypatch, slip, code):
    """A class whose output column 0 reads the other columns is checked row by row, and says so."""
    module = f"row_wise_{code}"
    (tmp_path / f"{module}.py").write_text(ROW_WISE if slip is None else ROW_WISE.replace(*slip))
    monkeypatch.syspath_prepend(str(tmp_path))
    layer = importlib.import_module(module).Softmax()
    x, upstream = np.random.default_rng(3).normal(size=(4, 5)), np.random.default_rng(4).normal(size=(4, 5))
    layer.forward(x)
    got = layer.backward(upstream)
    expected = central(lambda: float(np.sum(upstream * layer.forward(x))), x)
    assert np.allclose(got, expected, atol=1e-8) == (slip is None)
    report = verify(f"{module}:Softmax")
    assert report.kind == "vector" and report.ok == (slip is None), report.format()
    assert "mode: row-wise, checked as a vector op" in report.format()
    assert main(["verify", f"{module}:Softmax"]) == code
