"""verify on loss functions as people write them: the argument order read from the names
(mse(y_true, y_pred)), one-hot or index targets as the gradient assumes, probabilities probed
inside the loss's own clipping. Each correct loss is first checked here against a central
difference of its own; each planted slip exits 1."""
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

SOURCE = textwrap.dedent('''
    import numpy as np


    def mse_tp(y_true, y_pred):
        return np.mean((y_true - y_pred) ** 2)


    def mse_tp_prime(y_true, y_pred):
        return 2 * (y_pred - y_true) / y_true.size


    def mse_pt(y_pred, y_true):
        return np.mean((y_true - y_pred) ** 2)


    def mse_pt_prime(y_pred, y_true):
        return 2 * (y_pred - y_true) / y_true.size


    def half_sse(y, yhat):
        return 0.5 * np.sum((yhat - y) ** 2)


    def half_sse_prime(y, yhat):
        return yhat - y


    def bce(y_true, y_pred):
        p = np.clip(y_pred, 1e-7, 1 - 1e-7)
        return -np.mean(y_true * np.log(p) + (1 - y_true) * np.log(1 - p))


    def bce_prime(y_true, y_pred):
        p = np.clip(y_pred, 1e-7, 1 - 1e-7)
        return (p - y_true) / (p * (1 - p)) / y_true.size


    def bce_wide(y_true, y_pred, eps=1e-3):
        p = np.minimum(np.maximum(y_pred, eps), 1 - eps)
        return -np.sum(y_true * np.log(p) + (1 - y_true) * np.log1p(-p)) / y_true.size


    def bce_wide_prime(y_true, y_pred, eps=1e-3):
        p = np.minimum(np.maximum(y_pred, eps), 1 - eps)
        return -(y_true / p - (1 - y_true) / (1 - p)) / y_true.size


    def softmax(x):
        e = np.exp(x - np.max(x, axis=1, keepdims=True))
        return e / np.sum(e, axis=1, keepdims=True)


    def ce_onehot(logits, y_onehot):
        return -np.sum(y_onehot * np.log(softmax(logits))) / logits.shape[0]


    def ce_onehot_grad(logits, y_onehot):
        return (softmax(logits) - y_onehot) / logits.shape[0]


    def ce_index(labels, logits):
        n = logits.shape[0]
        return -np.mean(np.log(softmax(logits)[np.arange(n), labels]))


    def ce_index_grad(labels, logits):
        n = logits.shape[0]
        grad = softmax(logits)
        grad[np.arange(n), labels] -= 1
        return grad / n
''')

# name -> (the correct text, the slipped text)
SLIPS = {
    "mse_tp": ("2 * (y_pred - y_true) / y_true.size\n\n\ndef mse_pt(", "2 * (y_true - y_pred) / y_true.size\n\n\ndef mse_pt("),
    "mse_pt": ("2 * (y_pred - y_true) / y_true.size\n\n\ndef half", "(y_pred - y_true) / y_true.size\n\n\ndef half"),
    "half_sse": ("return yhat - y", "return y - yhat"),
    "bce": ("(p * (1 - p)) / y_true.size\n\n\ndef bce_wide", "(p * (1 + p)) / y_true.size\n\n\ndef bce_wide"),
    "bce_wide": ("(1 - y_true) / (1 - p)) / y_true.size", "(1 - y_true) / (1 + p)) / y_true.size"),
    "ce_onehot": ("(softmax(logits) - y_onehot) / logits.shape[0]", "(softmax(logits) - y_onehot)"),
    "ce_index": ("return grad / n", "return grad"),
}
# the diagnosis a slip gets, where it has a name
SLIP_DIAGNOSIS = {"mse_tp": "wrong sign", "half_sse": "wrong sign", "mse_pt": "off by a constant factor ½",
                  "ce_onehot": "missing the ÷N of the mean", "ce_index": "missing the ÷N of the mean"}
# what the report says about the reading
SAYS = {"mse_tp": "takes the target first", "mse_pt": "targets: values of pred's shape",
        "half_sse": "takes the target first", "bce": "the loss is flat outside (0, 1)",
        "bce_wide": "probed at least 0.01 from 0 and 1", "ce_onehot": "targets: one-hot rows",
        "ce_index": "targets: class indices (N,)"}


def _load(tmp_path, monkeypatch, name, source):
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def central_gradient(loss, pred, h=1e-6):
    grad = np.zeros_like(pred)
    for i in np.ndindex(pred.shape):
        up, down = pred.copy(), pred.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (loss(up) - loss(down)) / (2 * h)
    return grad


def _independent_case(module, name):
    """(loss of pred alone, its gradient function of pred, a probe) in the user's own argument order."""
    rng = np.random.default_rng(5)
    f, g = getattr(module, name), getattr(module, name + ("_grad" if name.startswith("ce") else "_prime"))
    if name.startswith("bce"):
        pred, target = rng.uniform(0.1, 0.9, (4, 3)), rng.uniform(0, 1, (4, 3))
    elif name == "ce_onehot":
        pred, target = rng.normal(0, 2, (4, 3)), np.eye(3)[[0, 2, 1, 2]]
    elif name == "ce_index":
        pred, target = rng.normal(0, 2, (4, 3)), np.array([0, 2, 1, 2])
    else:
        pred, target = rng.normal(0, 2, (4, 3)), rng.normal(0, 1, (4, 3))
    if name == "mse_pt" or name == "ce_onehot":
        return (lambda p: f(p, target)), (lambda p: g(p, target)), pred
    return (lambda p: f(target, p)), (lambda p: g(target, p)), pred


@pytest.mark.parametrize("name", list(SLIPS))
def test_loss_conventions_correct_loss_passes(tmp_path, monkeypatch, capsys, name):
    module = _load(tmp_path, monkeypatch, "good_losses", SOURCE)
    loss, grad, pred = _independent_case(module, name)
    assert np.allclose(grad(pred.copy()), central_gradient(loss, pred), rtol=1e-6, atol=1e-9)
    assert main(["verify", f"good_losses:{name}"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[-1].startswith("PASS") and SAYS[name] in out, out


@pytest.mark.parametrize("name", list(SLIPS))
def test_loss_conventions_planted_slip_fails(tmp_path, monkeypatch, capsys, name):
    right, wrong = SLIPS[name]
    assert SOURCE.count(right) == 1
    _load(tmp_path, monkeypatch, f"slip_losses_{name}", SOURCE.replace(right, wrong))
    assert main(["verify", f"slip_losses_{name}:{name}"]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert SLIP_DIAGNOSIS.get(name, "") in out.splitlines()[-1], out


def test_loss_conventions_mse_target_first_is_not_a_wrong_sign(tmp_path, monkeypatch, capsys):
    _load(tmp_path, monkeypatch, "good_losses", SOURCE)
    assert main(["verify", "good_losses:mse_tp"]) == 0
    out = capsys.readouterr().out
    assert "wrong sign" not in out
    assert "dL/dy_pred" in out      # the prediction, its second argument, is differentiated


FLAGGED = textwrap.dedent('''
    import numpy as np


    def mse(y, yhat, derivative=False):
        if derivative:
            return 2 * (yhat - y) / y.size
        return np.mean((yhat - y) ** 2)
''')


@pytest.mark.parametrize("slip, code", [(None, 0), (("2 * (yhat - y)", "2 * (y - yhat)"), 1)],
                         ids=["correct", "slipped"])
def test_loss_conventions_flag_derivative(tmp_path, monkeypatch, capsys, slip, code):
    module = _load(tmp_path, monkeypatch, f"flagged_{code}", FLAGGED if slip is None else FLAGGED.replace(*slip))
    target, pred = np.random.default_rng(2).normal(size=(2, 4, 3))
    if slip is None:
        assert np.allclose(module.mse(target, pred, derivative=True),
                           central_gradient(lambda p: module.mse(target, p), pred), rtol=1e-6, atol=1e-9)
    assert main(["verify", f"flagged_{code}:mse"]) == code
    out = capsys.readouterr().out
    assert "its own flag: mse(..., derivative=True)" in out and "takes the target first" in out


INDEX_CLASS = textwrap.dedent('''
    import numpy as np


    class SoftmaxCE:
        def forward(self, logits, labels):
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            self.probs, self.labels = e / e.sum(axis=1, keepdims=True), labels
            return -np.mean(np.log(self.probs[np.arange(len(labels)), labels]))

        def backward(self):
            grad = self.probs.copy()
            grad[np.arange(len(self.labels)), self.labels] -= 1
            return grad / len(self.labels)
''')


@pytest.mark.parametrize("slip, code", [(None, 0), (("return grad / len(self.labels)", "return grad"), 1)],
                         ids=["correct", "slipped"])
def test_loss_conventions_class_taking_class_indices(tmp_path, monkeypatch, capsys, slip, code):
    """A loss class that indexes with its targets raises on float targets: it gets integer indices."""
    module = _load(tmp_path, monkeypatch, f"index_class_{code}",
                   INDEX_CLASS if slip is None else INDEX_CLASS.replace(*slip))
    pred, labels = np.random.default_rng(3).normal(size=(4, 3)), np.array([2, 0, 1, 2])
    loss = module.SoftmaxCE()
    loss.forward(pred, labels)
    agrees = np.allclose(loss.backward(), central_gradient(lambda p: module.SoftmaxCE().forward(p, labels), pred),
                         rtol=1e-6, atol=1e-9)
    assert agrees == (slip is None)
    assert main(["verify", f"index_class_{code}:SoftmaxCE"]) == code
    out = capsys.readouterr().out
    assert "targets: class indices (N,), as integers — with float targets of pred's shape" in out
    assert "raised IndexError" in out


NOT_DIFFERENTIABLE = textwrap.dedent('''
    import numpy as np


    def rmse(y_true, y_pred):
        return np.sqrt(np.mean((y_pred - y_true) ** 2))


    def rmse_prime(y_true, y_pred):
        return (y_pred - y_true) / (y_true.size * rmse(y_true, y_pred))


    def mse(y_true, y_pred):
        return np.mean((y_pred - y_true) ** 2)


    def mse_prime(y_true, y_pred):
        diff = y_pred - y_true
        return 2 * diff / y_true.size * (diff / diff)
''')


@pytest.mark.parametrize("name, slip, code", [
    ("rmse", None, 0),
    ("rmse", ("(y_true.size * rmse", "(rmse"), 1),
    ("mse", None, 1),     # NaN where pred = target, and mse has a derivative (0) there
], ids=["rmse", "rmse_sum_for_mean", "mse_nan_at_pred_equals_target"])
def test_loss_conventions_nan_where_the_loss_has_no_derivative(tmp_path, monkeypatch, capsys, name, slip, code):
    """At pred = target rmse = ‖pred − target‖/√n has no derivative (a cone: the one-sided slopes
    differ) and both the hand-written gradient and autograd give NaN: those points are not compared
    and the verdict rests on the others. A NaN where the loss is differentiable still fails."""
    module = f"undefined_{name}_{code}"
    _load(tmp_path, monkeypatch, module, NOT_DIFFERENTIABLE if slip is None else NOT_DIFFERENTIABLE.replace(*slip))
    fns = importlib.import_module(module)
    target = np.random.default_rng(7).normal(size=(4, 3))
    pred = target + np.random.default_rng(8).normal(size=(4, 3))
    with np.errstate(invalid="ignore"):
        left = (fns.rmse(target, target) - fns.rmse(target, target - 1e-6 * np.eye(4, 3))) / 1e-6
        right = (fns.rmse(target, target + 1e-6 * np.eye(4, 3)) - fns.rmse(target, target)) / 1e-6
        grad = getattr(fns, f"{name}_prime")(target, pred)
    assert left < 0 < right        # rmse's one-sided slopes at pred = target differ
    assert np.allclose(grad, central_gradient(lambda p: getattr(fns, name)(target, p), pred),
                       rtol=1e-6, atol=1e-9) == (slip is None)
    assert main(["verify", f"{module}:{name}"]) == code
    out = capsys.readouterr().out
    said = "points where the function has no derivative (the one-sided slopes differ) and both your gradient"
    assert (said in out) == (name == "rmse"), out
