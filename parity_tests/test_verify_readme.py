"""The README tutorial "Check your derivative in five minutes" runs as written and prints what the
README shows. Text and verdicts must match; error figures (the error column, tiny reference values)
are held to the tolerances, not to their last digits, which move with the machine's libm and
kernels (shown_output)."""
from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from conftest import FD_TOL  # noqa: E402
from shown_output import assert_output_matches  # noqa: E402
from nnparity.cli import main  # noqa: E402

SECTION = "## Check your derivative in five minutes"


def tutorial_sessions() -> list[tuple[str, list[str]]]:
    """(command, shown output lines) for each ```text block of the tutorial."""
    text = (REPO / "README.md").read_text()
    assert SECTION in text, "the README lost its tutorial"
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0]
    sessions = []
    for block in re.findall(r"```text\n(.*?)```", section, flags=re.S):
        lines = block.rstrip("\n").splitlines()
        assert lines[0].startswith("$ "), lines[0]
        sessions.append((lines[0][2:], lines[1:]))
    return sessions


def assert_shown(out: list[str], shown: list[str]) -> None:
    # the loosest tolerance a tutorial table prints (finite differences); each row's verdict is text
    assert_output_matches(out, shown, FD_TOL)


SESSIONS = tutorial_sessions()


def test_the_tutorial_shows_its_sessions():
    assert [cmd for cmd, _ in SESSIONS] == [
        ".venv/bin/nnparity verify examples.tutorial_ops:Tanh",
        ".venv/bin/nnparity verify examples.tutorial_ops:SigmoidSlip",
        ".venv/bin/nnparity verify examples.tutorial_ops:MSESlip",
        ".venv/bin/nnparity verify examples.function_ops:tanh",
        ".venv/bin/nnparity verify examples.tutorial_ops:sigmoid",
        ".venv/bin/nnparity verify examples.layer_functions:affine_forward",
        ".venv/bin/nnparity verify examples.tutorial_ops:affine_forward",
        ".venv/bin/nnparity verify examples.course_layers:batchnorm_forward",
        ".venv/bin/nnparity verify examples.course_layers:conv_forward_naive",
        ".venv/bin/nnparity verify examples.course_layers:lstm_step_forward",
        ".venv/bin/nnparity verify examples.two_layer_net:TwoLayerNet",
        ".venv/bin/nnparity verify parity_tests.planted_networks:TwoLayerBiasMean",
    ]


@pytest.mark.parametrize("command, shown", SESSIONS, ids=["tanh", "sigmoid_slip", "mse_slip", "function_pair",
                                                          "z_for_a", "cache_pair", "cache_mean_for_sum",
                                                          "course_batchnorm", "course_conv", "course_lstm_step",
                                                          "two_layer_net", "two_layer_net_bias_averaged"])
def test_tutorial_command_prints_what_the_readme_shows(command, shown, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/nnparity"
    code = main(argv[1:])
    out = capsys.readouterr().out.rstrip("\n").splitlines()
    assert_shown(out, shown)
    assert code == (0 if shown[-1].startswith("PASS") else 1)


def test_each_session_ends_with_its_verdict_and_diagnosis():
    (_, tanh), (_, sigmoid), (_, mse), (_, pair), (_, confused), (_, cache), (_, mean_b), *_ = SESSIONS
    assert pair[-1] == "PASS: 4 of 4 checks agree" and cache[-1] == "PASS: 10 of 10 checks agree"
    assert "  convention: derivative of a = f(z), expressed in a: call it with the activation" in pair
    assert confused[-1].startswith("diagnosis: z-for-a confusion: sigmoid_prime(z)")
    assert mean_b[-1] == ("diagnosis: db (3rd returned by affine_backward): averaged over the batch where the sum "
                          "is needed (got = expected / 6, N = 6)")
    assert tanh[-1] == "PASS: 4 of 4 checks agree"
    assert sigmoid[-1].startswith("diagnosis: the formula differs, not by a constant factor")
    # the example is where got and expected differ most: σ(1 + σ) = 2 at z = 100, where σ(1 − σ) rounds to 0
    assert sigmoid[-1].endswith("e.g. at z = 100: da/dz got 2, expected 0")
    assert mse[-1].startswith("diagnosis: off by a constant factor ½: got = ½ × expected — the gradient of ½·L")
    assert "probes: random 24, kink 24 (x = 0), saturation 24 (|x| = 20, 100, 700), tiny 24 (|x| ~ 1e-8), " \
           "3-D 12 (x (3, 2, 2))" in cache


def test_the_course_sessions_name_their_torch_twins():
    (_, batchnorm), (_, conv), (_, lstm) = SESSIONS[7:10]
    assert "  reference: autograd of F.batch_norm (torch's own, matched by the function's name)" in batchnorm
    assert any(line.startswith("  [batchnorm_backward_alt] bn_param running_var vs F.batch_norm") for line in batchnorm)
    assert "  reference: autograd of F.conv2d (torch's own, matched by the function's name)" in conv
    assert "  torch twin torch.lstm_cell: the course's gate columns (i, f, o, g) reordered to torch's (i, f, g, o)" \
           in lstm
    assert all(lines[-1].startswith("PASS") for lines in (batchnorm, conv, lstm))


def test_first_tutorial_command_runs_as_written_from_the_repo_root():
    command, shown = SESSIONS[0]
    exe = REPO / ".venv" / "bin" / "nnparity"
    argv = shlex.split(command)
    if not exe.exists():     # a checkout tested from another environment: the same console script
        argv[0] = str(Path(sys.executable).with_name("nnparity"))
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_shown(proc.stdout.rstrip("\n").splitlines(), shown)


def test_whole_network_sessions_pass_and_name_the_averaged_bias():
    (_, net), (_, slip) = SESSIONS[10:12]
    assert net[-1] == "PASS: 8 of 8 checks agree"
    assert "  reference: autograd of your loss code run on torch tensors (NumPy names rebound to torch._numpy)" in net
    assert slip[-1].startswith("diagnosis: grads['b2']: divided by the batch size N = 5 once too often")
