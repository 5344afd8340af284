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

from nnparity import interrupts

ROOT = Path(__file__).resolve().parents[1]
DIGITS = str(ROOT / "specs" / "digits.toml")
CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}


def start(tmp_path, *argv) -> subprocess.Popen:
    # compare's temporary folder lands where we look; verify's examples import from the checkout
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(ROOT)}
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


# One case per backend, each signal on every backend kind (Lightning has a SIGTERM handler of its own).
TRAIN_CASES = [("scratch", signal.SIGTERM), ("torch", signal.SIGINT), ("lightning", signal.SIGTERM),
               ("lightning", signal.SIGINT)]
# The library whose mapping shows the command's handlers are in place: the CLI catches signals
# before it imports NumPy, and the torch backends have their own library loaded once training is near.
TRAINING_LIBRARY = {"scratch": "_multiarray_umath", "torch": "libtorch_cpu", "lightning": "libtorch_cpu"}


@pytest.mark.parametrize("backend,sig", [pytest.param(b, s, marks=[pytest.mark.slow] if b != "scratch" else [])
                                         for b, s in TRAIN_CASES],
                         ids=[f"{b}-{s.name}" for b, s in TRAIN_CASES])
def test_interrupt_train(backend, sig, tmp_path):
    proc = start(tmp_path, "train", DIGITS, "--backend", backend, "--epochs", "100000", "--quiet")
    wait_for(lambda: loaded(proc, TRAINING_LIBRARY[backend]))
    time.sleep(0.5)  # into training, or still in its imports: the same line either way
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
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE)
    assert not list(tmp_path.glob("nnparity-compare-*")), "temporary folder left behind"


def loaded(proc: subprocess.Popen, library: str) -> bool:
    """Whether the process, or the child it runs the command in (nnparity.forked), has mapped a
    shared library whose file name holds ``library``."""
    try:
        parent = psutil.Process(proc.pid)
        return any(library in Path(m.path).name for p in (parent, *parent.children()) for m in p.memory_maps())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return proc.poll() is not None  # it ended: stop waiting, the test sees how


@pytest.mark.parametrize("library", ["_multiarray_umath", "libtorch_cpu"], ids=["in-numpy-import", "in-torch-import"])
@pytest.mark.parametrize("argv", [("check", "--batch", "3"), ("verify", "examples.custom_ops:Swish")],
                         ids=["check", "verify"])
def test_interrupt_short_commands(argv, library, tmp_path):
    """Interrupted in the middle of importing NumPy or torch (its C++ half just loaded): the signal
    is held until that import has finished, then the command stops with one line and 130. Never a
    traceback, an abort, or the command carrying on to its end."""
    proc = start(tmp_path, *argv)
    wait_for(lambda: loaded(proc, library))
    code, out, err = stop(proc, signal.SIGINT)
    assert code == 130 and out == "", (code, out, err)
    assert_one_line(err, argv[0], signal.SIGINT)


def test_interrupt_after_command_ignored(tmp_path):
    """A signal that comes once the command has ended, while the interpreter shuts down, changes
    nothing: the command's own exit code, no traceback."""
    script = ("import os, signal, sys, time\n"
              "from nnparity.cli import console_main\n"
              "code = console_main(['check', '--batch', '3'])\n"
              "os.kill(os.getpid(), signal.SIGINT)\n"
              "os.kill(os.getpid(), signal.SIGTERM)\n"
              "time.sleep(0.2)\n"
              "sys.exit(code)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "all tensors agree" in done.stdout


def test_interrupt_in_import_held_until_imported(tmp_path, monkeypatch):
    """A signal that comes while a module is being imported stops the command as soon as that
    import has finished: the module is imported whole, Interrupted comes out of the import."""
    (tmp_path / "signalled_module.py").write_text(
        "import os, signal\n"
        "os.kill(os.getpid(), signal.SIGINT)  # its handler runs here, in the middle of the import\n"
        "import colorsys  # a nested import ends first: not yet the time\n"
        "total = sum(range(100_000))\n"
        "imported_whole = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "signalled_module", raising=False)
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN where the suite runs in a background job
    with pytest.raises(interrupts.Interrupted) as stopped:
        with interrupts.caught():
            import signalled_module  # noqa: F401
    assert sys.modules.pop("signalled_module").imported_whole
    assert interrupts.exit_code(stopped.value) == 130 and stopped.value.path is None
    assert sys.getprofile() is None  # the watch on the import is gone
    assert signal.getsignal(signal.SIGINT) == before  # put back as it was


def test_interrupt_handlers_load_before_numpy():
    """The command line sets its handlers (nnparity.interrupts on scratch.signals) before NumPy
    loads: a signal during NumPy's import is then held, not a traceback."""
    script = "import sys\nimport nnparity.interrupts\nassert 'numpy' not in sys.modules, sorted(sys.modules)\n"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def child_of(proc: subprocess.Popen) -> psutil.Process:
    """The child a command runs in (nnparity.forked), once it is there."""
    parent = psutil.Process(proc.pid)
    wait_for(lambda: parent.children())
    return parent.children()[0]


def test_interrupt_parent_killed_ends_child(tmp_path):
    """SIGKILL to the command (it cannot pass that on): the kernel ends the child running it, no
    orphan trains on."""
    proc = start(tmp_path, "train", DIGITS, "--epochs", "100000", "--quiet")
    child = child_of(proc)
    wait_for(lambda: loaded(proc, "_multiarray_umath"))
    proc.kill()
    proc.communicate(timeout=60)
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, timeout=30)


IGNORING_OP = '''
import signal, time
import numpy as np
signal.signal(signal.SIGTERM, signal.SIG_IGN)

class Op:
    def __init__(self, xp=np):
        self.xp = xp

    def forward(self, z):
        time.sleep(0.2)
        return z * 1.0

    def backward(self, grad_out):
        return grad_out * 1.0
'''


def test_interrupt_second_signal_ends_child_that_ignores(tmp_path):
    """User code that ignores SIGTERM: the first is passed on and ignored, the second ends the
    child; one line, 143."""
    (tmp_path / "ignoring_op.py").write_text(IGNORING_OP)
    (tmp_path / "spec.toml").write_text(
        '[[layers]]\ninputs = 2\nunits = 1\nactivation = "ignoring_op:Op"\n[loss]\nname = "half_sse"\n'
        '[data]\nname = "xor"\n[train]\nepochs = 100000\nbatch_size = 2\n')
    proc = start(tmp_path, "train", "spec.toml", "--quiet")
    child = child_of(proc)
    wait_for(lambda: _ignores_sigterm(child) or proc.poll() is not None)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    assert proc.poll() is None and child.is_running()   # ignored: the run goes on
    code, out, err = stop(proc, signal.SIGTERM)
    assert code == 143 and out == ""
    assert_one_line(err, "train", signal.SIGTERM)
    wait_for(lambda: not child.is_running() or child.status() == psutil.STATUS_ZOMBIE, timeout=30)


def _ignores_sigterm(process: psutil.Process) -> bool:
    """Whether the process ignores SIGTERM (SigIgn in /proc/PID/status)."""
    try:
        with open(f"/proc/{process.pid}/status") as f:
            ignored = next(int(line.split()[1], 16) for line in f if line.startswith("SigIgn:"))
    except (OSError, StopIteration):
        return False
    return bool(ignored & (1 << (signal.SIGTERM - 1)))
