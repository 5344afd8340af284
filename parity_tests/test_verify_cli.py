"""`nnparity verify` on the command line: exit 0 pass, 1 fail, 2 bad input; --json; --spec; and a
user's module imported from the current directory."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for _p in (str(REPO), str(REPO / "parity_tests")):
    if _p not in sys.path:
        sys.path.append(_p)

from nnparity.cli import main  # noqa: E402

USER_OPS = textwrap.dedent('''
    """A user's own op, outside the repository."""
    import numpy as np


    class Cube:
        """a = z³.  Backward: da/dz = 3z².  Torch twin: z ** 3."""

        kind = "activation"

        def __init__(self, xp=np):
            self.xp = xp

        def forward(self, z):
            self.z = z
            return z * z * z

        def backward(self, grad_out):
            return grad_out * 3 * self.z * self.z

        @classmethod
        def torch_module(cls):
            import torch

            class Cube(torch.nn.Module):
                def forward(self, z):
                    return z ** 3

            return Cube()
''')


def run(capsys, *argv):
    code = main(["verify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_a_correct_op_exits_0(capsys):
    code, out, _ = run(capsys, "examples.custom_ops:Softplus")
    assert code == 0
    assert out.splitlines()[0] == "nnparity verify examples.custom_ops:Softplus  kind=activation  seed=0"
    assert out.splitlines()[-1] == "PASS: 4 of 4 checks agree"


def test_a_wrong_op_exits_1_with_the_diagnosis(capsys):
    code, out, _ = run(capsys, "planted_ops:HuberNoMean")
    assert code == 1
    assert out.splitlines()[-1] == ("diagnosis: missing the ÷(N·C) of a mean over all N·C = 30 elements "
                                    "(got = 30 × expected)")
    assert "worst: pred[" in out


def test_json_output(capsys):
    code, out, _ = run(capsys, "planted_ops:SoftplusSign", "--json", "--seed", "3")
    data = json.loads(out)
    assert code == 1 and data["ok"] is False and data["seed"] == 3
    assert data["diagnosis"] == "wrong sign: got = −1 × expected"
    assert {c["reference"].split(" (")[0] for c in data["checks"]} >= {"finite differences"}


def test_kind_can_be_given(capsys):
    code, out, _ = run(capsys, "examples.custom_ops:Softmax", "--kind", "vector")
    assert code == 0 and "kind=vector" in out.splitlines()[0]


@pytest.mark.parametrize("argv, message", [
    (["no_such_pkg.ops:Swish"], "cannot import module 'no_such_pkg.ops'"),
    (["examples.custom_ops:Nope"], "has no attribute 'Nope'"),
    (["planted_ops:NoBackward"], "has no backward method"),
    (["planted_ops:not_a_class"], "no derivative found for not_a_class in planted_ops: tried"),
    (["Swish"], "expected an import path 'module:Class'"),
    (["examples.custom_ops:Softmax", "--kind", "activation"], "use --kind vector"),
    ([], "give either an op as module:Class"),
    (["examples.custom_ops:Swish", "--spec", "specs/xor.toml"], "give either an op as module:Class"),
    (["--spec", "specs/xor.toml", "--kind", "loss"], "--kind applies to one op"),
    (["examples.custom_ops:Swish", "--batch", "3"], "--batch applies to --spec"),
    (["examples.custom_ops:Swish", "--seed", "-1"], "--seed: must be from 0 to"),
    (["--spec", "no/such/spec.toml"], "no such file"),
])
def test_bad_input_exits_2_with_one_clear_line(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("nnparity verify: ") and message in err and err.count("\n") == 1


def _spec(tmp_path, activations) -> Path:
    layers = []
    for i, act in enumerate(activations):
        layers.append("[[layers]]\n" + ("inputs = 3\n" if i == 0 else "") + f'units = 4\nactivation = "{act}"\n')
    path = tmp_path / "net.toml"
    path.write_text("seed = 2\n" + "\n".join(layers) + '\n[loss]\nname = "mse"\n')
    return path


def test_spec_report_names_the_first_wrong_layer(capsys, tmp_path):
    path = _spec(tmp_path, ["tanh", "planted_ops:TanhDouble", "tanh"])
    code, out, _ = run(capsys, "--spec", str(path))
    assert code == 1
    assert ("FAIL: layers.1 (layer 2 of 3): the backward of its activation 'planted_ops:TanhDouble' — "
            "dL/dz disagrees while dL/da from the layers above agrees") in out
    assert "layers.1.dL/dz" in out and "<- first disagreement" in out
    code, out, _ = run(capsys, "--spec", str(path), "--json", "--batch", "5")
    data = json.loads(out)
    assert code == 1 and data["first_wrong"]["layer"] == 1 and data["first_wrong"]["part"] == "activation"


def test_spec_report_passes_a_correct_network(capsys, tmp_path):
    code, out, _ = run(capsys, "--spec", str(_spec(tmp_path, ["tanh", "examples.custom_ops:Swish", "sigmoid"])))
    assert code == 0 and out.splitlines()[-1] == "PASS: every layer's gradient agrees with torch"


def test_user_module_imports_from_the_current_directory(tmp_path, capsys, monkeypatch):
    """`nnparity check` of a spec naming the user's op, run from the directory that holds it."""
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "ops.py").write_text(USER_OPS)
    path = _spec(tmp_path, ["mypkg.ops:Cube", "tanh"])
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    monkeypatch.delitem(sys.modules, "mypkg", raising=False)
    monkeypatch.delitem(sys.modules, "mypkg.ops", raising=False)
    assert main(["check", str(path)]) == 0
    assert "all tensors agree" in capsys.readouterr().out
    assert main(["verify", "mypkg.ops:Cube"]) == 0


def test_console_script_imports_the_users_module(tmp_path):
    (tmp_path / "mypkg").mkdir()
    (tmp_path / "mypkg" / "ops.py").write_text(USER_OPS)
    exe = Path(sys.executable).with_name("nnparity")
    proc = subprocess.run([str(exe), "verify", "mypkg.ops:Cube"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1] == "PASS: 4 of 4 checks agree"
