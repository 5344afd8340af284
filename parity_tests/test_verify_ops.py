"""`nnparity verify` on single ops: correct hand derivations pass all three references, and each
planted bug (parity_tests/planted_ops.py) fails with the diagnosis of its shape."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "parity_tests")):
    if _p not in sys.path:
        sys.path.append(_p)

from scratch.activations import ACTIVATIONS  # noqa: E402
from scratch.policy import FD_TOL, TOLERANCE  # noqa: E402
from nnparity.verify.op_check import OpError  # noqa: E402
from nnparity.verify.autograd.references import REF_MODULE, REF_OWN, verify  # noqa: E402

CORRECT = ["Swish", "Softplus", "Softmax", "HuberLoss", "BCELoss", "Dense"]


def _reference(check) -> str:
    return check.reference.split(" (")[0]


@pytest.mark.parametrize("name", CORRECT)
def test_reference_ops_pass_all_three_references(name):
    report = verify(f"examples.custom_ops:{name}")
    assert report.ok, report.format()
    assert {_reference(c) for c in report.checks} == {"torch_module()", REF_MODULE, REF_OWN, "finite differences"}
    for c in report.checks:
        assert c.tol == (FD_TOL if c.reference == "finite differences" else TOLERANCE["float64"])
        assert c.error <= c.tol and c.worst is not None
    assert report.findings == []
    assert report.diagnosis is None


def test_a_layer_is_checked_for_its_input_and_every_parameter():
    report = verify("examples.custom_ops:Dense")
    fd = {c.wrt for c in report.checks if c.reference == "finite differences"}
    assert fd == {"x", "weight", "bias"}


# planted bug -> the diagnosis it must get
PLANTED = {
    "SwishHalf": "off by a constant factor ½: got = ½ × expected",
    "SwishDouble": "off by a constant factor 2: got = 2 × expected",
    "SoftplusSign": "wrong sign: got = −1 × expected",
    "SwishIgnoresGrad": "backward ignores grad_out",
    "ReLUKink": "wrong only at a kink (at z = 0: da/dz got nan, expected 0)",
    "TanhOverflow": "wrong only in saturation (at z = 700: da/dz got nan, expected 0)",
    "SoftmaxDiagonal": "backward uses only the Jacobian's diagonal",
    "CumSumTransposed": "the Jacobian is transposed: backward computes J·g where Jᵀ·g is needed",
    "DenseTransposed": "transposed: got shape (3, 4), expected (4, 3), and got.T matches",
    "DenseSquareTransposed": "transposed: got.T matches the expected gradient",
    "DenseBiasNotSummed": "missing the sum over the batch: got one row per sample, shape (6, 3)",
    "DenseBiasMean": "averaged over the batch where the sum is needed (got = expected / 6, N = 6)",
    "HuberNoMean": "missing the ÷(N·C) of a mean over all N·C = 30 elements (got = 30 × expected)",
    "SSEDividedByN": "divided by the batch size N = 6 where the loss does not divide (got = expected / 6)",
}


@pytest.mark.parametrize("name", sorted(PLANTED))
def test_planted_bug_fails_with_its_diagnosis(name):
    report = verify(f"planted_ops:{name}")
    assert not report.ok
    assert report.diagnosis.startswith(PLANTED[name]), report.format()
    module_checks = [c for c in report.checks if c.reference == REF_MODULE]
    assert module_checks and any(not c.ok for c in module_checks)
    assert "FAIL" in report.format() and f"diagnosis: {report.diagnosis}" in report.format()


@pytest.mark.parametrize("name", ["SwishHalf", "SoftplusSign", "SoftmaxDiagonal", "CumSumTransposed",
                                  "DenseBiasMean", "HuberNoMean"])
def test_finite_differences_alone_give_the_same_diagnosis(name):
    fd = [c for c in verify(f"planted_ops:{name}").checks if c.reference == "finite differences" and not c.ok]
    assert fd and fd[0].diagnosis.startswith(PLANTED[name])


def test_kinks_are_left_to_torch_and_finite_differences_say_so():
    report = verify("planted_ops:ReLUKink")
    fd = next(c for c in report.checks if c.reference == "finite differences")
    assert fd.ok, "finite differences must stay away from the kink at 0"
    assert any("kept away from kinks" in n for n in fd.notes)
    worst = next(c for c in report.checks if c.reference == REF_MODULE).worst
    assert worst.group == "kink" and worst.input == 0.0


def test_an_overflow_in_user_code_is_a_finding_not_a_crash():
    report = verify("planted_ops:TanhOverflow")
    assert any("overflow" in f for f in report.findings)
    assert any(c.worst is not None and c.worst.input == 700.0 for c in report.checks if not c.ok)


def test_a_torch_twin_of_another_function_fails_the_forward_check():
    report = verify("planted_ops:SwishWrongTwin")
    forward = report.checks[0]
    assert forward.name == "forward vs torch_module()" and not forward.ok
    assert report.diagnosis.startswith("your NumPy forward and the torch forward compute different functions")


def test_an_op_that_raises_is_reported():
    report = verify("planted_ops:SwishRaises")
    assert report.failed_to_run and not report.ok
    assert report.findings == ["the op raised on the random, kink, saturation, tiny probes: "
                               "ValueError: not derived yet"]
    assert report.diagnosis.startswith("the op raised ValueError: not derived yet")


def test_own_forward_on_torch_via_xp():
    report = verify("examples.custom_ops:Swish")
    assert "reference: autograd of your NumPy forward run on torch tensors (xp=torch)" in report.paths


def test_own_forward_on_torch_via_rebound_numpy_names():
    report = verify("planted_ops:TanhGlobals")
    assert report.ok, report.format()
    assert any("NumPy names in forward rebound to torch" in p for p in report.paths)
    assert any(c.reference.startswith(REF_OWN) for c in report.checks)


def test_own_forward_falls_back_cleanly_when_torch_lacks_an_operation():
    report = verify("planted_ops:SigmoidAstype")
    assert report.ok, report.format()
    assert any(p.startswith("your forward on torch tensors: not used") and "astype" in p for p in report.paths)
    assert {c.reference for c in report.checks} <= {"finite differences", "one-sided differences"}
    assert any("no torch reference ran" in p for p in report.paths)


def test_kink_points_are_left_out_of_autograd_of_your_own_forward():
    """torch.abs'(0) = 0 makes autograd of a sigmoid built on exp(−|z|) say 0 at z = 0: not a bug."""
    report = verify(ACTIVATIONS["sigmoid"])
    assert report.ok, report.format()
    own = next(c for c in report.checks if c.reference.startswith(REF_OWN))
    assert own.groups["kink"] is None and own.notes


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_scratch_activations_pass_and_never_warn(name):
    """scratch's own derivatives pass verify, and no probe (|z| up to 700) makes them warn."""
    report = verify(ACTIVATIONS[name])
    assert report.ok, report.format()
    assert report.findings == []


def test_reports_are_reproducible_per_seed():
    a, b, c = (verify("planted_ops:SwishDouble", seed=s) for s in (1, 1, 2))
    assert [x.worst for x in a.checks] == [x.worst for x in b.checks]
    assert [x.worst for x in a.checks] != [x.worst for x in c.checks]


def test_json_report_is_strict_json():
    data = verify("planted_ops:TanhOverflow").to_json()
    text = json.dumps(data, allow_nan=False)
    back = json.loads(text)
    assert back["ok"] is False and back["kind"] == "activation"
    assert back["diagnosis"].startswith("wrong only in saturation")
    worst = next(c["worst"] for c in back["checks"] if not c["ok"])
    assert worst["got"] is None and worst["input"] == 700.0


@pytest.mark.parametrize("target, message", [
    ("Swish", "expected an import path 'module:Class'"),
    ("no_such_pkg.ops:Swish", "cannot import module 'no_such_pkg.ops'"),
    ("examples.custom_ops:Nope", "has no attribute 'Nope'; classes with a backward there: BCELoss, Dense"),
    ("planted_ops:not_a_class", "no derivative found for not_a_class in planted_ops: tried"),
    ("planted_ops:NoBackward", "has no backward method"),
])
def test_bad_input_is_a_clear_op_error(target, message):
    with pytest.raises(OpError, match=None) as err:
        verify(target)
    assert message in str(err.value)


def test_a_row_wise_function_checked_as_elementwise_is_refused():
    with pytest.raises(OpError, match="use --kind vector"):
        verify("examples.custom_ops:Softmax", kind="activation")


def test_unknown_kind_and_layer_without_example():
    with pytest.raises(OpError, match="expected one of activation, vector, loss, layer"):
        verify("examples.custom_ops:Swish", kind="conv")

    class Layerish:
        kind = "layer"

        def forward(self, x):
            return x

        def backward(self, g):
            return g

    with pytest.raises(OpError, match="a layer needs a classmethod example"):
        verify(Layerish)


def test_numpy_error_mode_of_the_caller_does_not_change_the_verdict():
    with np.errstate(all="ignore"):
        quiet = verify("planted_ops:TanhOverflow")
    loud = verify("planted_ops:TanhOverflow")      # the suite raises on overflow
    assert quiet.diagnosis == loud.diagnosis and quiet.findings == loud.findings


def test_scratch_dense_and_a_user_subclass_of_it():
    """A scratch layer verifies without an example(): subclasses of Dense get seeded weights."""
    from scratch.layers import Dense

    assert verify("scratch.layers:Dense").ok

    class DenseNoSum(Dense):
        def backward(self, grad_out):
            out = super().backward(grad_out)
            self.grad_bias = grad_out
            return out

    report = verify(DenseNoSum)
    assert report.diagnosis.startswith("missing the sum over the batch")


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_any_seed_passes_a_correct_op_and_names_a_planted_factor(seed):
    assert verify("examples.custom_ops:Swish", seed=seed).ok
    assert verify("planted_ops:SwishHalf", seed=seed).diagnosis.startswith(PLANTED["SwishHalf"])
