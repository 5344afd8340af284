"""verify on gradients written as functions: function pairs (z or a convention, Jacobians, VJPs),
loss functions, forward/backward with a cache; correct ones pass, planted slips fail with a
diagnosis naming the slip, bad input is one line with exit 2, and a check that compared nothing
is never a pass."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "parity_tests")):
    if _p not in sys.path:
        sys.path.append(_p)

from nnparity.cli import main  # noqa: E402
from nnparity.verify.autograd.testing import assert_backward_correct  # noqa: E402
from nnparity.verify.autograd import verify  # noqa: E402

CORRECT = {
    "sigmoid_z": ("examples.function_ops:sigmoid", "expressed in z: call it with z"),
    "tanh_a": ("examples.function_ops:tanh", "expressed in a: call it with the activation"),
    "relu": ("examples.function_ops:relu", "torch.nn.ReLU"),
    "leaky_relu_params": ("examples.function_ops:leaky_relu", "alpha=0.03 (a second value)"),
    "softmax_jacobian": ("examples.function_ops:softmax", "derivative form: the full Jacobian of one row"),
    "mse_pair": ("examples.function_ops:mse", "form: loss function mse and its gradient mse_grad"),
    "affine_cache": ("examples.layer_functions:affine_forward", "affine_backward returns dx, dw, db"),
    "relu_cache": ("examples.layer_functions:relu_forward", "torch.nn.ReLU"),
    "softmax_loss_pair": ("examples.layer_functions:softmax_loss", "targets: class indices (N,)"),
}


@pytest.mark.parametrize("target, says", CORRECT.values(), ids=list(CORRECT))
def test_forms_correct_version_passes(target, says):
    report = verify(target)
    assert report.ok, report.format()
    assert says in report.format()
    assert all(c.compared and c.compared >= 10 for c in report.checks)


P = "planted_functions:"
PLANTED = {
    "factor_half": (P + "sigmoid_half", None, "off by a constant factor ½"),
    "factor_two": (P + "sigmoid_double", None, "off by a constant factor 2"),
    "sign": (P + "tanh_sign", None, "wrong sign"),
    "kink": (P + "relu", P + "relu_prime_kink", "wrong only at a kink (at z = 0"),
    "z_for_a": (P + "sigmoid_confused", None, "z-for-a confusion: sigmoid_confused_prime(z) is the derivative "
                                              "expressed in a"),
    "batch_wide_softmax": (P + "softmax_batch", None, "normalises over the whole batch, not each row"),
    "jacobian_diagonal": (P + "softmax_diag", None, "only the Jacobian's diagonal"),
    "loss_half": (P + "mse_half", None, "off by a constant factor ½"),
    "mean_for_sum_bias": (P + "affine_meanb_forward", None,
                          "db (3rd returned by affine_meanb_backward): averaged over the batch where the sum"),
    "transposed_weight": (P + "affine_wt_forward", None, "dw (2nd returned by affine_wt_backward): transposed"),
    "cache_relu_kink": (P + "relu_forward", P + "relu_backward_kink", "dx (1st returned by relu_backward_kink): "
                                                                      "wrong only at a kink"),
    "softmax_loss_no_mean": (P + "softmax_loss_sum", None, "missing the ÷N of the mean over the batch"),
}


@pytest.mark.parametrize("target, grad, diagnosis", PLANTED.values(), ids=list(PLANTED))
def test_forms_planted_slip_fails_with_its_diagnosis(target, grad, diagnosis):
    report = verify(target, grad=grad)
    assert not report.ok
    assert diagnosis in report.diagnosis, report.format()


@pytest.mark.parametrize("convention, ok", [("a", True), ("z", False)], ids=["declared_right", "declared_wrong"])
def test_forms_convention_declared(convention, ok):
    """tanh_derivative(a) is right called with the activation and wrong called with z."""
    report = verify("examples.function_ops:tanh", convention=convention)
    assert report.ok is ok
    if not ok:
        assert report.diagnosis.startswith("z-for-a confusion")


@pytest.mark.parametrize("form", ["function", "pair", "class"])
def test_assert_backward_correct_passes_silently(form):
    from examples.layer_functions import affine_backward, affine_forward
    from examples.function_ops import sigmoid, sigmoid_prime
    from examples.custom_ops import Swish

    target = {"function": (sigmoid, sigmoid_prime), "pair": ((affine_forward, affine_backward), None),
              "class": (Swish, None)}[form]
    assert assert_backward_correct(*target) is None


@pytest.mark.parametrize("target, grad, text", [PLANTED["factor_half"], PLANTED["mean_for_sum_bias"]],
                         ids=["function", "cache"])
def test_assert_backward_correct_raises_the_diagnosis(target, grad, text):
    with pytest.raises(AssertionError) as info:
        assert_backward_correct(target, grad)
    assert text in str(info.value) and "\n" not in str(info.value)


# ------------------------------------------------------------------------------- the CLI

BAD = textwrap.dedent('''
    import numpy as np
    import time

    def sq(z):
        return z * z

    def lonely(z):
        return z

    def sq_prime(z, w, v):
        return 2 * z

    def shaped(z):
        return z * z

    def shaped_prime(z):
        return np.ones(3)

    def nan(z):
        return np.full(np.shape(z), np.nan)

    def nan_prime(z):
        return z

    def boom(z):
        raise ValueError("no")

    def boom_prime(z):
        return z

    def slow(z):
        while True:
            time.sleep(0.01)

    def slow_prime(z):
        return z

    def twice(z):
        return 2 * z

    def twice_prime(z):
        return 2 + 0 * z
''')


@pytest.fixture
def user_dir(tmp_path, monkeypatch):
    (tmp_path / "badfns.py").write_text(BAD)
    (tmp_path / "broken.py").write_text("import numpy as np\n1 / 0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("badfns", "broken"):
        sys.modules.pop(name, None)
    return tmp_path


@pytest.mark.parametrize("argv, message", [
    (["broken:f"], "importing 'broken' raised ZeroDivisionError"),
    (["badfns:lonely"], "no derivative found for lonely in badfns: tried lonely_derivative, lonely_prime, "
                        "lonely_grad, dlonely, d_lonely, lonely_backward"),
    (["badfns:sq"], "sq_prime(z, w, v): a derivative takes z"),
    (["badfns:shaped"], "shaped_prime called with z: returned shape (3,) for an input of shape (6, 5)"),
    (["badfns:nan"], "returned NaN or inf everywhere"),
    (["badfns:boom"], "boom raised ValueError: no"),
    (["badfns:slow", "--time-limit", "0.3"], "ran for more than 0.3 s on one probe"),
    (["badfns:twice", "--kind", "layer"], "--kind applies to classes"),
], ids=["import_fails", "no_partner", "signature", "output_shape", "nan", "raises", "runs_forever", "kind"])
def test_forms_bad_input_exits_2_with_one_line(user_dir, capsys, argv, message):
    code = main(["verify", *argv])
    out, err = capsys.readouterr()
    assert code == 2 and out == "", out
    assert err.startswith("nnparity verify: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, code", [(["examples.function_ops:sigmoid"], 0),
                                         (["planted_functions:affine_wt_forward"], 1)], ids=["pass", "fail"])
def test_forms_cli_json(capsys, monkeypatch, argv, code):
    monkeypatch.chdir(REPO)
    assert main(["verify", *argv, "--json"]) == code
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is (code == 0)
    assert all(isinstance(c["compared"], int) for c in data["checks"])
    assert any(p.startswith("form: ") for p in data["paths"])


def test_forms_cli_grad_flag_names_the_partner(user_dir, capsys):
    assert main(["verify", "badfns:twice", "--grad", "badfns:twice_prime"]) == 0
    assert "(given: badfns:twice_prime)" in capsys.readouterr().out


HOSTILE = textwrap.dedent('''
    import numpy as np

    class NaNEverywhere:
        kind = "activation"

        def forward(self, z):
            return np.full(z.shape, np.nan)

        def backward(self, grad_out):
            return 0 * grad_out

    class InfEverywhere(NaNEverywhere):
        def forward(self, z):
            return np.full(z.shape, np.inf)

    class Forever(NaNEverywhere):
        def forward(self, z):
            while True:
                pass
''')


@pytest.mark.parametrize("op", ["NaNEverywhere", "InfEverywhere"])
def test_never_a_false_pass_on_non_finite_forward(tmp_path, monkeypatch, capsys, op):
    (tmp_path / "hostile.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("hostile", None)
    assert main(["verify", f"hostile:{op}"]) == 1
    out = capsys.readouterr().out
    assert "not checked" in out and "PASS" not in out
    assert "diagnosis: not checked: finite numbers compared on 0 of 62 elements" in out


def test_a_class_op_that_runs_forever_is_stopped(tmp_path, monkeypatch, capsys):
    (tmp_path / "hostile.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("hostile", None)
    assert main(["verify", "hostile:Forever", "--time-limit", "0.3"]) == 2
    err = capsys.readouterr().err
    assert "ran for more than 0.3 s on one probe" in err and err.count("\n") == 1
