"""verify on whole networks as people write them: loss(X, y) over self.params, Network.backprop over
weight and bias lists, a char-RNN lossFun over module globals. Each correct example passes (and is
itself checked here against a few-line central difference), each planted slip fails naming the
parameter and the slip, and a parameter without a gradient never passes."""
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

from examples import char_rnn  # noqa: E402
from examples.nielsen_network import Network, Network2  # noqa: E402
from examples.two_layer_net import TwoLayerNet  # noqa: E402
from nnparity.cli import main  # noqa: E402
from nnparity.verify.op_check import verify_fd  # noqa: E402
from nnparity.verify.autograd import verify  # noqa: E402

INDEPENDENT_TOL = 1e-6      # a plain central difference with h = 1e-6 agrees to about 1e-9 here


def central(f, arr, h=1e-6):
    """(f(arr + h e_i) − f(arr − h e_i)) / 2h for every i, arr perturbed in place and restored."""
    grad = np.zeros_like(arr)
    for i in np.ndindex(arr.shape):
        old = arr[i]
        arr[i] = old + h
        up = f()
        arr[i] = old - h
        down = f()
        arr[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def assert_agree(got, expected):
    got, expected = np.asarray(got, dtype=float), np.asarray(expected, dtype=float)
    assert got.shape == expected.shape
    assert np.linalg.norm(got - expected) <= INDEPENDENT_TOL * np.linalg.norm(expected)


def test_networks_two_layer_example_is_right_by_central_differences():
    np.random.seed(3)
    net = TwoLayerNet(input_dim=4, hidden_dim=5, num_classes=3, weight_scale=0.5, reg=0.1)
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    _, grads = net.loss(X, y)
    for name, param in net.params.items():
        assert_agree(grads[name], central(lambda: net.loss(X, y)[0], param))


@pytest.mark.parametrize("cls", [Network, Network2])
def test_networks_nielsen_example_is_right_by_central_differences(cls):
    np.random.seed(4)
    net = cls([4, 5, 3])
    x, y = np.random.randn(4, 1), np.eye(3)[:, [1]]
    cost = getattr(net, "cost", None)

    def loss():
        a = net.feedforward(x)
        return cost.fn(a, y) if cost is not None else 0.5 * float(np.sum((a - y) ** 2))

    nabla_b, nabla_w = net.backprop(x, y)
    for i in range(2):
        assert_agree(nabla_w[i], central(loss, net.weights[i]))
        assert_agree(nabla_b[i], central(loss, net.biases[i]))


def test_networks_char_rnn_example_is_right_by_central_differences():
    inputs, targets, hprev = [0, 3, 1, 4], [3, 1, 4, 2], np.full((char_rnn.hidden_size, 1), 0.1)
    out = char_rnn.lossFun(inputs, targets, hprev)
    for grad, name in zip(out[1:6], ("Wxh", "Whh", "Why", "bh", "by")):
        assert_agree(grad, central(lambda: char_rnn.lossFun(inputs, targets, hprev)[0], getattr(char_rnn, name)))


CORRECT = {
    "two_layer_net": ("examples.two_layer_net:TwoLayerNet", "grads['W1'] vs your loss on torch"),
    "nielsen_quadratic": ("examples.nielsen_network:Network", "cost: ½‖a − y‖²"),
    "nielsen_cost_class": ("examples.nielsen_network:Network2", "cost: CrossEntropyCost.fn(a, y)"),
    "char_rnn": ("examples.char_rnn:lossFun", "dWxh -> Wxh (global)"),
}


def test_networks_course_variants_are_right_by_central_differences():
    from course_networks import FullyConnectedNet, TwoLayerNetReg
    np.random.seed(7)
    rng = np.random.default_rng(7)
    X, y = rng.normal(size=(6, 4)), rng.integers(0, 3, size=6)
    nets = [(TwoLayerNetReg(4, 5, 3, std=0.5), {"reg": 0.1}),
            (FullyConnectedNet([5, 4], input_dim=4, num_classes=3, reg=0.1, weight_scale=0.5, dtype=np.float64), {})]
    for net, kw in nets:
        for param in net.params.values():
            param += rng.normal(0.0, 0.1, size=param.shape)     # no unit exactly on relu's kink
        _, grads = net.loss(X, y, **kw)
        for name, param in net.params.items():
            assert_agree(grads[name], central(lambda: net.loss(X, y, **kw)[0], param))


COURSE = {
    "reg_argument_in_place_probs": ("course_networks:TwoLayerNetReg", "loss called with reg=0.1"),
    "deep_float32_zero_biases": ("course_networks:FullyConnectedNet",
                                 "b1, b2, b3: all zeros as constructed, set to seeded normal values"),
}


@pytest.mark.parametrize("target, says", COURSE.values(), ids=list(COURSE))
def test_networks_course_variant_passes(target, says):
    report = verify(target)
    assert report.ok, report.format()
    assert says in report.format()
    assert "hidden_dims=[5, 4]" in report.format() or "TwoLayerNetReg(input_size=4" in report.format()


@pytest.mark.parametrize("target, says", CORRECT.values(), ids=list(CORRECT))
def test_networks_correct_version_passes(target, says, capsys):
    report = verify(target)
    assert report.ok, report.format()
    text = report.format()
    assert says in text
    assert "reference: autograd of your loss code run on torch tensors" in text
    references = {c.reference for c in report.checks}
    assert references == {"your loss on torch", "finite differences"}
    assert main(["verify", target]) == 0


def test_networks_nielsen_reports_its_convention_and_sizes():
    text = verify("examples.nielsen_network:Network").format()
    assert "convention: column vectors (w @ a + b, w of shape (n_out, n_in)); one example x (4, 1)" in text
    assert "constructed as Network(sizes=[4, 5, 3]) (no example(rng) hook" in text


def test_networks_row_vector_convention_is_detected(tmp_path, monkeypatch):
    (tmp_path / "rownet.py").write_text(textwrap.dedent('''
        import numpy as np

        class RowNet:
            def __init__(self, sizes):
                self.weights = [np.random.randn(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
                self.biases = [np.random.randn(1, b) for b in sizes[1:]]

            def feedforward(self, a):
                for w, b in zip(self.weights, self.biases):
                    a = np.tanh(a @ w + b)
                return a

            def backprop(self, x, y):
                acts = [x]
                for w, b in zip(self.weights, self.biases):
                    acts.append(np.tanh(acts[-1] @ w + b))
                delta = (acts[-1] - y) * (1 - acts[-1] ** 2)
                nabla_b, nabla_w = [None] * len(self.weights), [None] * len(self.weights)
                for l in reversed(range(len(self.weights))):
                    nabla_b[l] = delta
                    nabla_w[l] = acts[l].T @ delta
                    delta = (delta @ self.weights[l].T) * (1 - acts[l] ** 2)
                return nabla_b, nabla_w
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    report = verify("rownet:RowNet")
    assert report.ok, report.format()
    assert "convention: row vectors (a @ w + b, w of shape (n_in, n_out)); one example x (1, 4)" in report.format()


P = "planted_networks:"
PLANTED = {
    "transposed_dW": (P + "TwoLayerTransposed", "grads['W2']: transposed: got shape (3, 5), expected (5, 3)"),
    "missing_mean": (P + "TwoLayerNoMean", "grads['b2']: missing the ÷N of the mean over the batch "
                                           "(got = 5 × expected, N = 5)"),
    "bias_averaged": (P + "TwoLayerBiasMean", "grads['b2']: divided by the batch size N = 5 once too often"),
    "cost_derivative_sign": (P + "NetworkSign", "nabla_w[1]: wrong sign: got = −1 × expected"),
    "cost_delta_sign": (P + "Network2DeltaSign", "nabla_w[1]: wrong sign: got = −1 × expected"),
    "wrong_layer_activation": (P + "NetworkWrongLayer", "nabla_w[0]: shape mismatch: got (5, 5), expected (5, 4)"),
    "bptt_without_dhnext": (P + "lossFunNoCarry", "dbh: the formula differs"),
    "bptt_wrong_step": (P + "lossFunWrongStep", "dWhh: the formula differs"),
}


@pytest.mark.parametrize("target, says", PLANTED.values(), ids=list(PLANTED))
def test_networks_planted_slip_is_named(target, says, capsys):
    report = verify(target)
    assert not report.ok
    assert report.diagnosis.startswith(says), report.diagnosis
    assert main(["verify", target]) == 1
    assert capsys.readouterr().out.rstrip().splitlines()[-1].startswith("diagnosis: " + says)


def test_networks_parameters_above_the_slip_agree():
    report = verify(P + "lossFunWrongStep")
    verdicts = {c.wrt: c.ok for c in report.checks if c.reference == "finite differences"}
    assert verdicts == {"by": True, "bh": True, "Why": True, "Whh": False, "Wxh": True}


def test_networks_missing_gradient_never_passes(capsys):
    report = verify(P + "TwoLayerNoBiasGradient")
    assert not report.ok
    assert report.diagnosis.startswith("grads['b1']: no gradient given for parameter b1")
    assert "warning: parameters without a gradient: b1" in report.format()
    assert main(["verify", P + "TwoLayerNoBiasGradient"]) == 1


def test_networks_no_torch_reference_is_said_and_finite_differences_decide():
    report = verify(P + "TwoLayerInPlace")
    text = report.format()
    assert "no torch reference ran: your loss on torch tensors failed (autograd failed: your loss modifies in place" in text
    assert {c.reference for c in report.checks} == {"finite differences"}
    assert report.ok, text


def test_networks_torch_free_half_checks_them_too():
    assert verify_fd("examples.two_layer_net:TwoLayerNet").ok
    fd = verify_fd(P + "TwoLayerNoMean")
    assert fd.diagnosis.startswith("grads['b2']: missing the ÷N")


def test_networks_globals_are_restored_after_checks_and_failures(tmp_path, monkeypatch, capsys):
    saved = {n: getattr(char_rnn, n).copy() for n in ("Wxh", "Whh", "Why", "bh", "by")}
    verify(P + "lossFunNoCarry")
    for name, value in saved.items():
        assert np.array_equal(getattr(char_rnn, name), value)
    (tmp_path / "fragile.py").write_text(textwrap.dedent('''
        import numpy as np
        vocab_size, hidden_size = 3, 2
        W = np.arange(6.0).reshape(2, 3) / 10
        calls = [0]

        def lossFun(inputs, targets, hprev):
            calls[0] += 1
            if calls[0] > 8:
                raise FloatingPointError("diverged")
            loss, dW = float(np.sum(W ** 2)), 2 * W
            return loss, dW
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    import fragile
    before = fragile.W.copy()
    assert main(["verify", "fragile:lossFun"]) == 2
    assert "while its parameters were perturbed by about 1e-6, the loss raised FloatingPointError" in capsys.readouterr().err
    assert np.array_equal(fragile.W, before)


def test_networks_argument_shadowing_a_global_is_no_network(tmp_path, monkeypatch):
    (tmp_path / "shadow.py").write_text(textwrap.dedent('''
        import numpy as np
        x = np.ones((2, 3))     # a global of the same name as the argument

        def square_loss(x, y):
            loss = float(np.sum((x - y) ** 2))
            dx = 2 * (x - y)
            return loss, dx
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    report = verify("shadow:square_loss")
    assert report.kind == "loss" and report.ok, report.format()


BIG = textwrap.dedent('''
    import numpy as np

    class Big:
        def __init__(self):
            self.params = {"W": np.random.randn(100, 50) * 0.1}

        def loss(self, X, y=None):
            scores = np.tanh(X @ self.params["W"])
            if y is None:
                return scores
            dscores = 2 * scores * (1 - scores ** 2) / len(X)
            return np.sum(scores ** 2) / len(X), {"W": X.T @ dscores}
''')


@pytest.mark.parametrize("slip", [None, ("(1 - scores ** 2)", "(1 - scores)")], ids=["correct", "tanh_slip"])
def test_networks_too_large_for_every_element_samples_finite_differences(tmp_path, monkeypatch, capsys, slip):
    """5000 parameter elements, more than finite differences take: they difference 24 at random (and
    say so); autograd, where it runs, compares every element. The sample alone catches a slip."""
    module = "big_ok" if slip is None else "big_slip"
    (tmp_path / f"{module}.py").write_text(BIG if slip is None else BIG.replace(*slip))
    monkeypatch.syspath_prepend(str(tmp_path))
    fd_only = verify_fd(f"{module}:Big")
    assert fd_only.ok == (slip is None), fd_only.format()
    assert "finite differences at 24 of 5000 elements, drawn at random" in fd_only.format()
    (check,) = fd_only.checks
    assert check.compared >= 10
    assert main(["verify", f"{module}:Big"]) == (0 if slip is None else 1)
    out = capsys.readouterr().out
    assert "24 elements of each parameter, drawn at random" in out
    assert any(line.split()[-1] in ("pass", "FAIL") and line.split()[-4] == "5000" for line in out.splitlines()
               if "vs your loss on torch" in line), out
