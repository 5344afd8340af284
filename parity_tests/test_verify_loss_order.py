"""verify on losses whose prediction argument is not named y_pred: a divergence's textbook letters
(kl(p, q) is KL(p‖q), q the prediction), the --wrt flag, an unclipped KL probed on probability rows,
and a loss class with loss(y, y_pred) and grad(y, y_pred) (numpy-ml's form). Each correct loss is
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

SOURCE = textwrap.dedent('''
    import numpy as np


    def kl_loss(p, q):
        p = np.clip(p, 1e-7, 1)
        q = np.clip(q, 1e-7, 1)
        return np.sum(p * np.log(p / q))


    def kl_loss_grad(p, q):
        p = np.clip(p, 1e-7, 1)
        q = np.clip(q, 1e-7, 1)
        return -p / q


    def kl_divergence(p, q):
        return np.sum(p * np.log(p / q))


    def kl_divergence_grad(p, q):
        return -p / q


    def sq(u, v):
        return 0.5 * np.sum((v - u) ** 2)


    def sq_grad(u, v):
        return v - u


    class SquaredError:
        @staticmethod
        def loss(y, y_pred):
            return 0.5 * np.linalg.norm(y_pred - y) ** 2

        @staticmethod
        def grad(y, y_pred):
            return y_pred - y
''')
# name -> (the correct text, the slipped text)
SLIPS = {"kl_loss": ("return -p / q\n\n\ndef kl_divergence(", "return p / q\n\n\ndef kl_divergence("),
         "kl_divergence": ("return -p / q\n\n\ndef sq(", "return -q / p\n\n\ndef sq("),
         "SquaredError": ("return y_pred - y", "return y - y_pred")}


def _rows(rng):
    w = rng.uniform(0.1, 1.0, (4, 3))
    return w / w.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("name", ["kl_loss", "kl_divergence"])
def test_loss_order_divergence_letters_make_q_the_prediction(tmp_path, monkeypatch, capsys, name):
    module = load_user_module(tmp_path, monkeypatch, "kl_good", SOURCE)
    rng = np.random.default_rng(0)
    p, q = _rows(rng), _rows(rng)
    f, g = getattr(module, name), getattr(module, name + "_grad")
    assert np.allclose(g(p, q), central_gradient(lambda t: f(p, t), q), rtol=1e-6, atol=1e-9)
    assert main(["verify", f"kl_good:{name}"]) == 0
    out = capsys.readouterr().out
    assert "the prediction q is differentiated (read from the names: p, q as in KL(p‖q)" in out
    assert "dL/dq" in out


def test_loss_order_unclipped_kl_is_probed_on_probability_rows(tmp_path, monkeypatch, capsys):
    load_user_module(tmp_path, monkeypatch, "kl_rows", SOURCE)
    assert main(["verify", "kl_rows:kl_divergence"]) == 0
    out = capsys.readouterr().out
    assert "both arguments probed as probability rows (positive, each row summing to 1)" in out


def test_loss_order_wrt_flag_chooses_the_prediction(tmp_path, monkeypatch, capsys):
    module = load_user_module(tmp_path, monkeypatch, "sq_order", SOURCE)
    rng = np.random.default_rng(1)
    u, v = rng.normal(size=(2, 4, 3))
    assert np.allclose(module.sq_grad(u, v), central_gradient(lambda t: module.sq(u, t), v), rtol=1e-6, atol=1e-9)
    # the names say nothing: the first argument is differentiated, where sq_grad is the wrong sign
    assert main(["verify", "sq_order:sq"]) == 1
    out = capsys.readouterr().out
    assert "the prediction u is differentiated (the first argument: the names do not say; --wrt v" in out
    assert main(["verify", "sq_order:sq", "--wrt", "v"]) == 0
    assert "the prediction v is differentiated (given by --wrt)" in capsys.readouterr().out


@pytest.mark.parametrize("wrt, target", [("r", "sq_bad:sq"), ("z", "sq_bad:SquaredError.loss")])
def test_loss_order_wrt_bad_name_is_refused(tmp_path, monkeypatch, capsys, wrt, target):
    load_user_module(tmp_path, monkeypatch, "sq_bad", SOURCE)
    assert main(["verify", target.split(".")[0], "--wrt", wrt]) == 2
    err = capsys.readouterr().err
    assert "--wrt" in err and ("one of u, v" in err or "one of y, y_pred" in err)


def test_loss_order_wrt_on_an_activation_is_refused(capsys):
    assert main(["verify", "examples.function_ops:tanh", "--wrt", "z"]) == 2
    assert "--wrt applies to a loss of two arguments" in capsys.readouterr().err


def test_loss_order_loss_class_with_grad_is_a_loss(tmp_path, monkeypatch, capsys):
    module = load_user_module(tmp_path, monkeypatch, "np_ml", SOURCE)
    rng = np.random.default_rng(2)
    y, y_pred = rng.normal(size=(2, 4, 3))
    loss = module.SquaredError.loss
    assert np.allclose(module.SquaredError.grad(y, y_pred), central_gradient(lambda t: loss(y, t), y_pred),
                       rtol=1e-6, atol=1e-9)
    assert main(["verify", "np_ml:SquaredError"]) == 0
    out = capsys.readouterr().out
    assert "kind=loss" in out and "methods SquaredError.loss and SquaredError.grad" in out


@pytest.mark.parametrize("name", list(SLIPS))
def test_loss_order_planted_slip_fails(tmp_path, monkeypatch, capsys, name):
    right, wrong = SLIPS[name]
    assert SOURCE.count(right) == 1
    load_user_module(tmp_path, monkeypatch, f"order_slip_{name}", SOURCE.replace(right, wrong))
    assert main(["verify", f"order_slip_{name}:{name}"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_loss_order_nan_everywhere_says_what_to_do(tmp_path, monkeypatch, capsys):
    source = "import numpy as np\n\n\ndef bad(p, q):\n    return np.sum(np.log(-np.abs(p)) * q)\n\n\n" \
             "def bad_grad(p, q):\n    return q\n"
    load_user_module(tmp_path, monkeypatch, "nan_loss", source)
    assert main(["verify", "nan_loss:bad"]) == 2
    err = capsys.readouterr().err
    assert "NaN or inf everywhere" in err and "np.clip" in err and "--wrt" in err
