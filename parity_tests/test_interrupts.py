"""Ctrl-C and SIGTERM, sent as real signals to real `nnparity` processes: one line on stderr, exit
130 (SIGINT) or 143 (SIGTERM), no traceback, compare's child ended and its temporary folder removed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "specs" / "digits.toml")
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def start(tmp_path, *argv) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # compare's temporary folder lands where we look
    return subprocess.Popen([sys.executable, "-m", "nnparity", *argv], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(condition, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "timed out waiting for the process to get going"
        time.sleep(0.1)


def stop(proc: subprocess.Popen, sig) -> tuple[int, str, str]:
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


def assert_one_line(err: str, command: str, sig) -> None:
    assert "Traceback" not in err, err
    # Lightning's own SIGTERM handler logs "[rank: 0] Received SIGTERM: 15" before it calls ours
    others = [line for line in err.splitlines() if line.strip() and not line.startswith("[rank: 0] Received SIGTERM")]
    lines = [line for line in others if line.startswith("nnparity")]
    assert lines == others, err  # nothing but our line
    assert len(lines) == 1 and lines[0].startswith(f"nnparity {command}: interrupted by {sig.name}"), err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("backend", ["scratch", "torch", "lightning"])
def test_interrupt_train(backend, sig, tmp_path):
    proc = start(tmp_path, "train", DIGITS, "--backend", backend, "--epochs", "100000", "--quiet")
    time.sleep(8 if backend == "lightning" else 4)  # well into training (or its imports: the same line)
    code, out, err = stop(proc, sig)
    assert code == CODES[sig] and out == ""
    assert_one_line(err, "train", sig)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupt_compare_ends_child(sig, tmp_path):
    """The signal goes to the parent alone (as `kill PID` sends it): the child must end too."""
    proc = start(tmp_path, "compare", "--epochs", "100000", "--plot", "none", "--quiet")
    parent = psutil.Process(proc.pid)
    wait_for(lambda: parent.children())
    child = parent.children()[0]
    time.sleep(1)
    code, out, err = stop(proc, sig)
    assert code == CODES[sig] and out == ""
    assert_one_line(err, "compare", sig)
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, timeout=10)
    assert not list(tmp_path.glob("nnparity-compare-*")), "temporary folder left behind"


@pytest.mark.parametrize("argv", [("check", "--batch", "3"), ("verify", "examples.custom_ops:Swish")],
                         ids=["check", "verify"])
def test_interrupt_short_commands(argv, tmp_path):
    """Interrupted early (in the imports): still one line and 130."""
    proc = start(tmp_path, *argv)
    time.sleep(0.5)
    code, out, err = stop(proc, signal.SIGINT)
    if code == 0:  # it finished before the signal came: nothing to test on this machine
        pytest.skip("the command finished before the signal")
    assert code == 130 and out == ""
    assert_one_line(err, argv[0], signal.SIGINT)
