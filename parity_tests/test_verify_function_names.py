"""verify on function pairs as courses name them: partners found by any of the usual names
(sigmoid_der, deriv_tanh, softplusPrime, eluGradient, derivative_swish, ...) and flag-style
derivatives f(z, deriv=True) in either convention. Each correct pair exits 0 and is first checked
here against a central difference of its own; each planted slip exits 1."""
from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from nnparity.cli import main  # noqa: E402

# name -> (the pair's source, the slip: (correct text, slipped text), the derivative at z as the user calls it)
PAIRS = {
    "sigmoid_der": ('''
        def sigmoid(x):
            return 1 / (1 + np.exp(-x))

        def sigmoid_der(x):
            return sigmoid(x) * (1 - sigmoid(x))
        ''', ("(1 - sigmoid(x))", "(1 + sigmoid(x))"), lambda m, z: m.sigmoid_der(z)),
    "deriv_tanh": ('''
        def tanh(x):
            return np.tanh(x)

        def deriv_tanh(x):
            return 1 - np.tanh(x) ** 2
        ''', ("1 - np.tanh(x) ** 2", "1 - np.tanh(x) ** 3"), lambda m, z: m.deriv_tanh(z)),
    "derivative_swish": ('''
        def swish(z):
            return z / (1 + np.exp(-z))

        def derivative_swish(z):
            s = 1 / (1 + np.exp(-z))
            return s + z * s * (1 - s)
        ''', ("s + z * s", "s - z * s"), lambda m, z: m.derivative_swish(z)),
    "softplusPrime": ('''
        def softplus(z):
            return np.logaddexp(0.0, z)

        def softplusPrime(z):
            return 1 / (1 + np.exp(-z))
        ''', ("np.exp(-z))", "np.exp(z))"), lambda m, z: m.softplusPrime(z)),
    "softsign_Prime": ('''
        def softsign(z):
            return z / (1 + np.abs(z))

        def softsign_Prime(z):
            return 1 / (1 + np.abs(z)) ** 2
        ''', ("** 2", "** 3"), lambda m, z: m.softsign_Prime(z)),
    "eluGradient": ('''
        def elu(z, alpha=1.0):
            return np.where(z > 0, z, alpha * (np.exp(np.minimum(z, 0)) - 1))

        def eluGradient(z, alpha=1.0):
            return np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0)))
        ''', ("alpha * np.exp(np.minimum(z, 0)))", "np.exp(np.minimum(z, 0)))"), lambda m, z: m.eluGradient(z)),
    "gaussDerivative": ('''
        def gauss(z):
            return np.exp(-z * z)

        def gaussDerivative(z):
            return -2 * z * np.exp(-z * z)
        ''', ("-2 * z", "2 * z"), lambda m, z: m.gaussDerivative(z)),
    "cube_d": ('''
        def cube(z):
            return z ** 3 / 3

        def cube_d(z):
            return z ** 2
        ''', ("return z ** 2", "return z ** 2 / 3"), lambda m, z: m.cube_d(z)),
    "grad_bent": ('''
        def bent(z):
            return (np.sqrt(z * z + 1) - 1) / 2 + z

        def grad_bent(z):
            return z / (2 * np.sqrt(z * z + 1)) + 1
        ''', ("+ 1\n", "+ 0.5\n"), lambda m, z: m.grad_bent(z)),
    "flag_deriv_a": ('''
        def nonlin(x, deriv=False):
            if deriv:
                return x * (1 - x)
            return 1 / (1 + np.exp(-x))
        ''', ("x * (1 - x)", "x * (1 - x) * 2"), lambda m, z: m.nonlin(m.nonlin(z), deriv=True)),
    "flag_derivative_z": ('''
        def act(x, derivative=False):
            if derivative:
                return 1 - np.tanh(x) ** 2
            return np.tanh(x)
        ''', ("1 - np.tanh(x) ** 2", "np.tanh(x) ** 2 - 1"), lambda m, z: m.act(z, derivative=True)),
    "flag_grad": ('''
        def arctan(x, grad=False):
            return 1 / (1 + x * x) if grad else np.arctan(x)
        ''', ("1 / (1 + x * x)", "1 / (1 + x)"), lambda m, z: m.arctan(z, grad=True)),
    "flag_backward": ('''
        def silu(x, backward=False):
            s = 1 / (1 + np.exp(-x))
            if backward:
                return s * (1 + x * (1 - s))
            return x * s
        ''', ("s * (1 + x * (1 - s))", "s * (1 + x * (1 + s))"), lambda m, z: m.silu(z, backward=True)),
}
TARGET = {"sigmoid_der": "sigmoid", "deriv_tanh": "tanh", "derivative_swish": "swish", "softplusPrime": "softplus",
          "softsign_Prime": "softsign", "eluGradient": "elu", "gaussDerivative": "gauss", "cube_d": "cube",
          "grad_bent": "bent", "flag_deriv_a": "nonlin", "flag_derivative_z": "act", "flag_grad": "arctan",
          "flag_backward": "silu"}


def central(f, z, h=1e-5):
    return (f(z + h) - f(z - h)) / (2 * h)


def _module(tmp_path, monkeypatch, name: str, source: str):
    (tmp_path / f"{name}.py").write_text("import numpy as np\n" + textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


@pytest.mark.parametrize("case", list(PAIRS))
def test_function_names_correct_pair_passes(tmp_path, monkeypatch, capsys, case):
    source, _, derivative = PAIRS[case]
    module = _module(tmp_path, monkeypatch, f"good_{case}", source)
    z = np.linspace(-3, 3, 13) + 0.05          # away from any kink
    forward = getattr(module, TARGET[case])
    assert np.allclose(derivative(module, z), central(forward, z), rtol=1e-6, atol=1e-8)
    assert main(["verify", f"good_{case}:{TARGET[case]}"]) == 0
    out = capsys.readouterr().out
    assert "PASS" in out.splitlines()[-1]
    how = "its own flag" if case.startswith("flag") else f"found by name: {case}"
    assert how in out


@pytest.mark.parametrize("case", list(PAIRS))
def test_function_names_planted_slip_fails(tmp_path, monkeypatch, capsys, case):
    source, (right, wrong), _ = PAIRS[case]
    assert right in textwrap.dedent(source)
    _module(tmp_path, monkeypatch, f"slip_{case}", textwrap.dedent(source).replace(right, wrong, 1))
    assert main(["verify", f"slip_{case}:{TARGET[case]}"]) == 1
    assert capsys.readouterr().out.splitlines()[-2].startswith("FAIL")


CULPRITS = {
    "a_convention_sign": ('''
        def nonlin(x, deriv=False):
            if deriv:
                return x * (x - 1)
            return 1 / (1 + np.exp(-x))
        ''', "nonlin", "wrong sign: got = −1 × expected"),
    "a_convention_minus_one": ('''
        def nonlin(x, deriv=False):
            if deriv:
                return x * (1 - x) - 1
            return 1 / (1 + np.exp(-x))
        ''', "nonlin", "off by a constant: da/dz got = expected − 1"),
    "relu_backward_ignores_dout": ('''
        def relu_forward(x):
            return np.maximum(0, x), x

        def relu_backward(dout, cache):
            return (cache > 0).astype(float)
        ''', "relu_forward", "backward ignores dout"),
}


@pytest.mark.parametrize("case", list(CULPRITS))
def test_function_names_culprit_is_named(tmp_path, monkeypatch, capsys, case):
    source, target, text = CULPRITS[case]
    _module(tmp_path, monkeypatch, f"culprit_{case}", source)
    assert main(["verify", f"culprit_{case}:{target}"]) == 1
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("diagnosis: ") and text in last, last


IN_PLACE = textwrap.dedent('''
    import numpy as np


    def relu(x):
        x[x < 0] = 0
        return x


    def relu_prime(x):
        x[x > 0] = 1
        x[x <= 0] = 0
        return x


    def mse(pred, target):
        pred -= target
        return np.mean(pred ** 2)


    def mse_grad(pred, target):
        pred -= target
        return 2 * pred / pred.size
''')


@pytest.mark.parametrize("name", ["relu", "mse"])
def test_function_names_functions_writing_into_their_arguments_pass(tmp_path, monkeypatch, capsys, name):
    """x[x < 0] = 0 on the argument, as tutorials write it: verify hands each call its own copy."""
    module = _module(tmp_path, monkeypatch, "in_place", IN_PLACE)
    z = np.linspace(-3, 3, 12).reshape(3, 4) + 0.05
    if name == "relu":
        assert np.allclose(module.relu_prime(z.copy()), central(lambda t: module.relu(t.copy()), z))
    else:
        target, expected = np.ones_like(z), np.zeros_like(z)
        for i in np.ndindex(z.shape):
            up, down = z.copy(), z.copy()
            up[i] += 1e-6
            down[i] -= 1e-6
            expected[i] = (module.mse(up, target) - module.mse(down, target)) / 2e-6
        assert np.allclose(module.mse_grad(z.copy(), target), expected)
    assert main(["verify", f"in_place:{name}"]) == 0, capsys.readouterr().out


SCALAR = textwrap.dedent('''
    import math


    def logistic(x):
        return 1 / (1 + math.exp(-x))


    def logistic_prime(x):
        return logistic(x) * (1 - logistic(x))
''')


@pytest.mark.parametrize("slip, code", [(None, 0), (("(1 - logistic(x))", "(1 + logistic(x))"), 1)],
                         ids=["correct", "slipped"])
def test_function_names_pair_of_one_number_runs_element_by_element(tmp_path, monkeypatch, capsys, slip, code):
    source = SCALAR if slip is None else SCALAR.replace(*slip)
    module = _module(tmp_path, monkeypatch, f"scalar_{code}", source)
    if slip is None:
        for z in (-2.5, 0.3, 1.7):
            assert abs(module.logistic_prime(z) - central(module.logistic, z)) < 1e-8
    assert main(["verify", f"scalar_{code}:logistic"]) == code
    assert "run element by element" in capsys.readouterr().out


JACOBIAN = textwrap.dedent('''
    import numpy as np


    def softmax(x):
        e = np.exp(x - np.max(x))
        return e / np.sum(e)


    def softmax_jacobian(x):
        s = softmax(x).reshape(-1, 1)
        return np.diagflat(s) - s @ s.T
''')


@pytest.mark.parametrize("slip, code", [(None, 0), (("- s @ s.T", "- s * s"), 1)], ids=["correct", "slipped"])
def test_function_names_jacobian_partner_is_found_by_name(tmp_path, monkeypatch, capsys, slip, code):
    """f_jacobian(x) -> the (n, n) Jacobian of one row is f's derivative, as f_prime is."""
    module = _module(tmp_path, monkeypatch, f"jacobian_{code}", JACOBIAN if slip is None else JACOBIAN.replace(*slip))
    if slip is None:
        z = np.array([0.3, -1.2, 2.0, 0.7])
        columns = [central(lambda t, j=j: module.softmax(z + t * np.eye(4)[j]), 0.0) for j in range(4)]
        assert np.allclose(module.softmax_jacobian(z), np.stack(columns, axis=1), atol=1e-9)
    assert main(["verify", f"jacobian_{code}:softmax"]) == code
    out = capsys.readouterr().out
    assert "found by name: softmax_jacobian" in out and "the full Jacobian of one row" in out
