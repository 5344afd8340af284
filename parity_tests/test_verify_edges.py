"""verify at the edges: a torch reference that is NaN where finite differences and the user agree
is unusable there, not a FAIL; where no torch twin compares the kinks, a NaN or a 1e6 at z = 0 is
caught by the one-sided differences; complex gradients never pass; every refused form names what
would be accepted, in one line, and nothing raises a traceback."""
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


    def stable_sigmoid(z):
        e = np.exp(-np.abs(z))               # never overflows
        return np.where(z >= 0, 1, e) / (1 + e)


    def stable_sigmoid_prime(z):
        s = stable_sigmoid(z)
        return s * (1 - s)


    def root_sigmoid(z):
        # exp overflows at z = -700 (a warning verify records): NumPy's σ there, 0, is right to
        # double precision, while on torch d sqrt(inf) makes autograd NaN
        return 1 / (1 + np.sqrt(np.exp(-2 * z)))


    def root_sigmoid_prime(z):
        s = root_sigmoid(z)
        return s * (1 - s)


    def ramp(z):
        return np.maximum(z, 0)


    def ramp_prime(z):
        return (z > 0).astype(float)


    def ramp_nan(z):
        return np.maximum(z, 0)


    def ramp_nan_prime(z):
        with np.errstate(invalid="ignore"):
            return np.where(z == 0, z / z, (z > 0).astype(float))


    def ramp_huge(z):
        return np.maximum(z, 0)


    def ramp_huge_prime(z):
        return np.where(z == 0, 1e6, (z > 0).astype(float))


    def square(z):
        return z * z


    def square_prime(z):
        return 2 * z + 0j


    def sq_loss(pred, target):
        return np.sum((pred - target) ** 2)


    def sq_loss_grad(pred, target):
        return 2 * (pred - target) + 1e-3j


    class Cube:
        """No xp argument; a torch twin of its own."""

        kind = "activation"

        def forward(self, z):
            self.z = z
            return z ** 3

        def backward(self, grad_out):
            return grad_out * 3 * self.z ** 2

        @classmethod
        def torch_module(cls):
            import torch

            return type("CubeTwin", (torch.nn.Module,), {"forward": lambda self, z: z ** 3})()


    class ComplexCube(Cube):
        def backward(self, grad_out):
            return super().backward(grad_out) + 0j


    class ExitingCube(Cube):
        def backward(self, grad_out):
            raise SystemExit(0)


    def leave(z):
        return z * z


    def leave_prime(z):
        raise SystemExit(0)


    def rs(z):
        return "abc"


    def rs_prime(z):
        return z


    def rd(z):
        return z * z


    def rd_prime(z):
        return {"d": 2 * z}


    def rn(z):
        return z * z


    def rn_prime(z):
        return None


    def rg(z):
        return z * z


    def rg_prime(z):
        return (2 * v for v in z)


    def lonely(z):
        return z


    def three(a, b, c):
        return a
''')


@pytest.fixture
def edges(tmp_path, monkeypatch):
    (tmp_path / "edge_fns.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("edge_fns", None)
    return importlib.import_module("edge_fns")


def central(f, z, h=1e-6):
    return (f(z + h) - f(z - h)) / (2 * h)


def run(capsys, *argv):
    code = main(["verify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("name", ["stable_sigmoid", "root_sigmoid"])
def test_edges_sigmoid_at_700_passes(edges, capsys, name):
    z = np.array([-3.0, -0.5, 0.7, 2.0])
    assert np.allclose(getattr(edges, name + "_prime")(z), central(getattr(edges, name), z), rtol=1e-7)
    code, out, _ = run(capsys, f"edge_fns:{name}")
    assert code == 0, out
    if name == "root_sigmoid":
        assert "the torch reference is NaN or inf at" in out


def test_edges_a_correct_kink_without_twin_passes_the_one_sided_bound(edges, capsys):
    z = np.array([-2.0, -0.3, 0.4, 1.5])
    assert np.allclose(edges.ramp_prime(z), central(edges.ramp, z))
    code, out, _ = run(capsys, "edge_fns:ramp")
    assert code == 0, out
    line = next(x for x in out.splitlines() if "vs one-sided differences" in x)
    assert line.split()[-1] == "pass" and int(line.split()[-4]) >= 10


@pytest.mark.parametrize("name, got", [("ramp_nan", "got nan"), ("ramp_huge", "got 1e+06")])
def test_edges_kink_only_slip_without_twin_fails(edges, capsys, name, got):
    code, out, _ = run(capsys, f"edge_fns:{name}")
    assert code == 1
    assert f"at a kink, z = 0: da/dz {got}, outside the one-sided limits [0, 1]" in out.splitlines()[-1]


def test_edges_report_says_no_torch_reference_ran(edges, capsys):
    code, out, _ = run(capsys, "edge_fns:ramp")
    assert "no torch reference ran" in out
    assert "torch checks them" not in out


@pytest.mark.parametrize("target", ["edge_fns:square", "edge_fns:sq_loss", "edge_fns:ComplexCube"])
def test_edges_complex_gradient_never_passes(edges, capsys, target):
    """Complex values are a form error in every form (function pair, loss, class): exit 2."""
    got, out, err = run(capsys, target)
    assert got == 2 and "complex" in err


@pytest.mark.parametrize("target, code", [("edge_fns:leave", 2), ("edge_fns:ExitingCube", 2)])
def test_edges_sys_exit_in_user_code_never_decides_the_exit_status(edges, capsys, target, code):
    got, out, err = run(capsys, target)
    assert got == code
    assert "called sys.exit(0)" in out + err


# ------------------------------------------------------------------------------ messages


@pytest.mark.parametrize("argv, words", [
    (["net.toml"], ["is a spec file", "--spec net.toml"]),
    (["other.json"], ["is a spec file", "--spec other.json"]),
    (["edge_fns:lonely"], ["no derivative found", "lonely_prime", "deriv=True", "e.g."]),
    (["edge_fns:three"], ["not a form verify reads", "loss(pred, target)", "X_forward", "e.g."]),
    (["edge_fns:rs"], ["returned str, not an array"]),
    (["edge_fns:rd"], ["rd_prime called with z: returned dict"]),
    (["edge_fns:rn"], ["rn_prime called with z: returned None"]),
    (["edge_fns:rg"], ["rg_prime called with z: returned generator"]),
], ids=["toml_path", "json_path", "no_partner", "not_a_form", "str", "dict", "none", "generator"])
def test_edges_refused_forms_say_what_is_accepted(edges, capsys, argv, words):
    Path("net.toml").write_text("seed = 1\n")
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    for word in words:
        assert word in err, err


def _spec(activation: str) -> str:
    return (f'seed = 2\n[[layers]]\ninputs = 3\nunits = 4\nactivation = "{activation}"\n'
            f'[[layers]]\nunits = 2\nactivation = "tanh"\n[loss]\nname = "mse"\n')


def test_edges_spec_with_a_function_activation_is_refused_in_one_line(edges, capsys):
    Path("fn.toml").write_text(_spec("edge_fns:stable_sigmoid"))
    code, out, err = run(capsys, "--spec", "fn.toml")
    assert code == 2 and err.count("\n") == 1
    assert "is a function; a spec's activation is a class with forward(z) and backward(grad_out)" in err
    assert "nnparity verify edge_fns:stable_sigmoid" in err


def test_edges_spec_with_a_class_that_takes_no_xp_runs(edges, capsys):
    Path("cube.toml").write_text(_spec("edge_fns:Cube"))
    code, out, err = run(capsys, "--spec", "cube.toml")
    assert code == 0 and err == "", err
    assert out.splitlines()[-1] == "PASS: every layer's gradient agrees with torch"


SUBGRADIENT = textwrap.dedent('''
    import numpy as np


    def relu(z):
        return np.maximum(z, 0)


    def relu_prime(z):
        with np.errstate(invalid="ignore"):
            return np.where(z > 0, 1.0, np.where(z < 0, 0.0, AT_ZERO))


    def relu_forward(x):
        return np.maximum(x, 0), x


    def relu_backward(dout, cache):
        return dout * relu_prime(cache)


    def leaky_relu(z, alpha=0.01):
        return np.where(z > 0, z, alpha * z)


    def leaky_relu_prime(z, alpha=0.01):
        return np.where(z > 0, 1.0, np.where(z < 0, alpha, AT_ZERO))
''')


@pytest.mark.parametrize("at_zero", ["1.0", "0.5", "0.0", "np.nan", "2.0", "-0.5"])
@pytest.mark.parametrize("target", ["relu", "relu_forward", "leaky_relu"])
def test_edges_kink_value_within_the_one_sided_slopes_is_a_subgradient(tmp_path, monkeypatch, capsys, at_zero,
                                                                        target):
    """At a kink, any value between the one-sided slopes is a subgradient (a convention: torch picks
    0 for relu, alpha for leaky_relu); a value outside them, or NaN, fails against the torch twin."""
    module = f"subgradient_{target}_{at_zero.replace('.', '_')}"
    (tmp_path / f"{module}.py").write_text(SUBGRADIENT.replace("AT_ZERO", at_zero))
    monkeypatch.syspath_prepend(str(tmp_path))
    fns = importlib.import_module(module)
    z = np.array([-2.0, -0.3, 0.4, 1.5])
    slope = 0.01 if target == "leaky_relu" else 0.0
    assert np.allclose(fns.leaky_relu_prime(z) if slope else fns.relu_prime(z),
                       central(fns.leaky_relu if slope else fns.relu, z))
    at_kink = float(fns.leaky_relu_prime(np.zeros(1))[0] if slope else fns.relu_prime(np.zeros(1))[0])
    code = 0 if slope <= at_kink <= 1.0 else 1       # inside [left slope, right slope]: a subgradient
    code_got, out, _ = run(capsys, f"{module}:{target}")
    assert code_got == code, out
    assert "autograd of torch.nn.ReLU" in out or "autograd of torch.nn.LeakyReLU" in out
    subgradient_note = "lies between the one-sided slopes: another subgradient (a convention), not compared"
    assert (subgradient_note in out) == (code == 0 and at_kink != slope)
    if code:
        assert "wrong only at a kink" in out.splitlines()[-1]
