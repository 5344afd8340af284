"""A spec's user op ('module:Class') under check, train and compare: user code that ends the
process (sys.exit, os._exit) or raises is one line of bad input, exit 2, never the tool's verdict;
what it prints goes to stderr, never into the command's output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from test_hostile import assert_one_line, run_cli

ROOT = Path(__file__).resolve().parents[1]

# {call} is put where the user's code runs ({where}); elsewhere the op is the identity
OPS = textwrap.dedent('''
    import os, sys
    import numpy as np
    {at_import}

    class Op:
        kind = "activation"

        def __init__(self, xp=np):
            self.xp = xp
            {at_init}

        def forward(self, z):
            {at_forward}
            return z * 1.0

        def backward(self, grad_out):
            {at_backward}
            return grad_out * 1.0

        @classmethod
        def torch_module(cls):
            import torch
            {at_torch_module}
            return torch.nn.Identity()
''')
WHERES = ("import", "init", "forward", "backward", "torch_module")
SPEC = ('[[layers]]\ninputs = 2\nunits = 1\nactivation = "{op}"\n[loss]\nname = "half_sse"\n'
        '[data]\nx = [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]\ny = [[1.0], [1.0], [0.0], [0.0]]\n'
        '[train]\nepochs = 1\nbatch_size = 2\n')


def write_op(directory: Path, where: str, call: str) -> str:
    """A user module in ``directory`` running ``call`` at ``where``; returns 'module:Op'."""
    name = f"user_op_{uuid.uuid4().hex[:12]}"
    slots = {f"at_{w}": (call if w == where else "pass") for w in WHERES}
    (directory / f"{name}.py").write_text(OPS.format(**slots))
    return f"{name}:Op"


@pytest.fixture
def spec_with_op(tmp_path, monkeypatch):
    """spec_with_op(where, call) -> the path of a spec whose one layer is such a user op."""
    monkeypatch.syspath_prepend(str(tmp_path))
    made = []

    def make(where: str, call: str) -> str:
        op = write_op(tmp_path, where, call)
        made.append(op.split(":")[0])
        path = tmp_path / f"{op.split(':')[0]}.toml"
        path.write_text(SPEC.format(op=op))
        return str(path)

    yield make
    for module in made:
        sys.modules.pop(module, None)


WHERE_SHOWN = {"import": "the import of user_op_", "init": "Op.__init__", "forward": "Op.forward",
               "backward": "Op.backward", "torch_module": "Op.torch_module"}


@pytest.mark.parametrize("where", WHERES)
@pytest.mark.parametrize("code", [0, 1])
def test_user_code_sys_exit_check(where, code, spec_with_op, capsys):
    status, out, err = run_cli(capsys, "check", spec_with_op(where, f"sys.exit({code})"), "--json")
    assert status == 2 and out == ""
    assert_one_line(err, "check", f"user code called sys.exit({code}) in ")
    assert WHERE_SHOWN[where] in err


@pytest.mark.parametrize("backend,where", [("scratch", "import"), ("scratch", "init"), ("scratch", "forward"),
                                           ("scratch", "backward"), ("torch", "torch_module")])
def test_user_code_sys_exit_train(backend, where, spec_with_op, capsys):
    status, out, err = run_cli(capsys, "train", spec_with_op(where, "sys.exit(0)"), "--backend", backend,
                               "--json", "--quiet")
    assert status == 2 and out == ""
    assert_one_line(err, "train", f"user code called sys.exit(0) in ")
    assert WHERE_SHOWN[where] in err


@pytest.mark.parametrize("command,where", [("check", "init"), ("check", "torch_module"),
                                           ("train", "init"), ("train", "forward")])
def test_user_code_raises_one_line(command, where, spec_with_op, capsys):
    status, out, err = run_cli(capsys, command, spec_with_op(where, "raise RuntimeError('boom')"), "--json")
    assert status == 2 and out == ""
    assert_one_line(err, command, f"user code raised RuntimeError in ")
    assert WHERE_SHOWN[where] in err and "boom" in err


AUTOGRAD_OP = textwrap.dedent('''
    import sys
    from os import _exit    # taken while the import runs as user code
    import numpy as np
    import torch

    class Leave(torch.autograd.Function):
        @staticmethod
        def forward(ctx, z):
            return z * 1.0

        @staticmethod
        def backward(ctx, grad_out):
            {call}

    class Module(torch.nn.Module):
        def forward(self, z):
            return Leave.apply(z)

    class Op:
        def __init__(self, xp=np):
            pass

        def forward(self, z):
            return z * 1.0

        def backward(self, grad_out):
            return grad_out * 1.0

        @classmethod
        def torch_module(cls):
            return Module()
''')


def test_user_code_sys_exit_in_torch_autograd_not_a_verdict(tmp_path, monkeypatch, capsys):
    """A SystemExit from user code no guard wraps (a torch.autograd.Function's backward, run by
    autograd) still ends the command as user code, exit 2."""
    monkeypatch.syspath_prepend(str(tmp_path))
    name = f"user_op_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(AUTOGRAD_OP.format(call="sys.exit(0)"))
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(op=f"{name}:Op"))
    try:
        status, out, err = run_cli(capsys, "check", str(path), "--json")
    finally:
        sys.modules.pop(name, None)
    assert status == 2 and out == ""
    assert_one_line(err, "check", f"user code called sys.exit(0) in {name}.Leave.backward")


def _nnparity(*argv, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "nnparity", *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# os._exit would end the test process itself if it were not caught: these run in a child.

def test_user_code_os_exit_train_scratch(tmp_path):
    op = write_op(tmp_path, "forward", "os._exit(0)")
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    done = _nnparity("train", "spec.toml", "--json", "--quiet", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert_one_line(done.stderr, "train", "user code called os._exit(0) in ")
    assert "Op.forward" in done.stderr


@pytest.mark.slow
def test_user_code_os_exit_taken_at_import_check(tmp_path):
    """``from os import _exit`` at import, called later where no guard runs (autograd)."""
    (tmp_path / "user_op.py").write_text(AUTOGRAD_OP.format(call="_exit(0)"))
    (tmp_path / "spec.toml").write_text(SPEC.format(op="user_op:Op"))
    done = _nnparity("check", "spec.toml", "--json", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert_one_line(done.stderr, "check", "user code called os._exit(0) in user_op.Leave.backward")


@pytest.mark.slow
@pytest.mark.parametrize("where", ["init", "torch_module"])
def test_user_code_os_exit_check(where, tmp_path):
    op = write_op(tmp_path, where, "os._exit(0)")
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    done = _nnparity("check", "spec.toml", "--json", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert_one_line(done.stderr, "check", "user code called os._exit(0) in ")


@pytest.mark.parametrize("call,fragment", [
    ("sys.exit(1)", "user code called sys.exit(1) in "),    # caught in the child: bad input, not a FAIL
    ("os._exit(1)", "user code called os._exit(1) in "),
    ("import posix; posix._exit(0)", "the scratch run ended without a result (exit 0)"),  # past every guard
])
def test_user_code_exit_compare_not_a_verdict(call, fragment, tmp_path):
    op = write_op(tmp_path, "forward", call)
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    done = _nnparity("compare", "spec.toml", "--json", "--quiet", "--plot", "none", "--repeat", "1", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert_one_line(done.stderr, "compare", fragment)


# ------------------------------------------------------------------------- output kept clean

@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("where", ["import", "init", "forward", "backward", "torch_module"])
def test_user_code_print_stays_off_stdout(command, where, spec_with_op, capsys):
    argv = [command, spec_with_op(where, "print('from the user')"), "--json"]
    if command == "train" and where == "torch_module":
        argv += ["--backend", "torch"]
    status, out, err = run_cli(capsys, *argv)
    assert status in (0, 1) and "Traceback" not in err
    assert json.loads(out) and "from the user" not in out
    assert "from the user" in err


def test_user_code_import_this_stays_off_stdout(tmp_path, monkeypatch, capsys):
    """'this:X' imports the Zen of Python, which prints as it imports."""
    monkeypatch.delitem(sys.modules, "this", raising=False)
    path = tmp_path / "spec.toml"
    path.write_text(SPEC.format(op="this:X"))
    status, out, err = run_cli(capsys, "check", str(path), "--json")
    assert status == 2 and out == ""
    assert "Beautiful is better than ugly." in err
    assert err.splitlines()[-1].startswith("nnparity check: layers[0].activation: cannot import 'this:X'")


# ------------------------------------------------------------- past every guard: posix._exit, a signal

# What no guard inside a process can catch. check, train, compare and convert run in a child
# process; the command reports a child that ended without a result as user code's doing, exit 2.
UNGUARDED = {"posix-exit-0": ("import posix; posix._exit(0)", "exit status 0"),
             "posix-exit-1": ("import posix; posix._exit(1)", "exit status 1"),
             "self-kill": ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "signal SIGKILL")}
UNGUARDED_CASES = [("check", "import", "posix-exit-0"), ("check", "forward", "posix-exit-0"),
                   ("check", "torch_module", "posix-exit-1"), ("check", "backward", "self-kill"),
                   ("train", "forward", "posix-exit-0"), ("train", "init", "posix-exit-1"),
                   ("compare", "import", "posix-exit-0")]


@pytest.mark.parametrize("command,where,how", [
    pytest.param(*case, marks=[pytest.mark.slow] if case[0] == "compare" else []) for case in UNGUARDED_CASES],
    ids=["-".join(case) for case in UNGUARDED_CASES])
def test_user_code_unguarded_exit_reported(command, where, how, tmp_path):
    call, ended = UNGUARDED[how]
    op = write_op(tmp_path, where, call)
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    argv = [command, "spec.toml", "--json"] + (["--quiet"] if command != "check" else [])
    done = _nnparity(*argv, *(["--plot", "none"] if command == "compare" else []), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    assert_one_line(done.stderr, command, f" with {ended}")
    assert WHERE_SHOWN[where] in done.stderr


def test_user_code_unguarded_exit_convert(tmp_path):
    """convert builds the checkpoint's spec, user op included: its import ends the process."""
    op = write_op(tmp_path, "import", "import os, posix\nif os.environ.get('LEAVE'): posix._exit(0)")
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    trained = _nnparity("train", "spec.toml", "--quiet", "--checkpoint", "run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    env = {**os.environ, "PYTHONPATH": str(ROOT), "LEAVE": "1"}
    done = subprocess.run([sys.executable, "-m", "nnparity", "convert", "run/checkpoint.npz", "run.pt"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and not (tmp_path / "run.pt").exists(), done.stderr
    assert_one_line(done.stderr, "convert", "ended the run with exit status 0 in the import of user_op_")


# ------------------------------------------------------ BaseExceptions, threads, self-signals, fd 1

@pytest.mark.parametrize("command,where,call,shown", [
    ("check", "init", "raise GeneratorExit()", "GeneratorExit (a BaseException) in "),
    ("check", "torch_module", "raise BaseException('halt')", "BaseException (a BaseException) in "),
    ("train", "forward", "raise KeyboardInterrupt()", "KeyboardInterrupt (a BaseException) in "),
])
def test_user_code_base_exception_one_line(command, where, call, shown, spec_with_op, capsys):
    status, out, err = run_cli(capsys, command, spec_with_op(where, call), "--json")
    assert status == 2 and out == ""
    assert_one_line(err, command, f"user code raised {shown}")
    assert WHERE_SHOWN[where] in err


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")   # pytest's hook shows the
@pytest.mark.parametrize("command,where", [("check", "init"), ("train", "forward")])  # thread's SystemExit
def test_user_code_os_exit_in_thread_one_line(command, where, spec_with_op, capsys):
    """os._exit called from a thread the user code starts (and joins): not ignored, not a traceback."""
    call = "import threading; t = threading.Thread(target=lambda: os._exit(0)); t.start(); t.join()"
    status, out, err = run_cli(capsys, command, spec_with_op(where, call), "--json")
    assert status == 2 and out == ""
    assert_one_line(err, command, "user code called os._exit(0) in a thread it started in ")
    assert WHERE_SHOWN[where] in err


@pytest.mark.parametrize("command", ["check", pytest.param("train", marks=pytest.mark.slow)])
def test_user_code_fd1_write_stays_off_stdout(command, tmp_path):
    """A write to descriptor 1 itself (os.write, as a C library's printf does) never reaches --json."""
    op = write_op(tmp_path, "forward", "os.write(1, b'{\"fake\": 1}\\n')")
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    done = _nnparity(command, "spec.toml", "--json", *(["--quiet"] if command == "train" else []), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "fake" not in json.loads(done.stdout) and '{"fake": 1}' in done.stderr


@pytest.mark.parametrize("where,signal_name", [("forward", "SIGTERM"),
                                               pytest.param("backward", "SIGINT", marks=pytest.mark.slow)])
def test_user_code_self_signal_not_a_verdict(where, signal_name, tmp_path):
    """A stop signal user code sends its own process is not an interruption by the user (130/143)."""
    op = write_op(tmp_path, where, f"import signal; os.kill(os.getpid(), signal.{signal_name})")
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    done = _nnparity("check", "spec.toml", "--json", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stderr)
    lines = done.stderr.splitlines()
    assert len(lines) <= 2 and "Traceback" not in done.stderr
    assert lines[-1].startswith("nnparity check: the signal came from user code in ") and WHERE_SHOWN[where] in lines[-1]


@pytest.mark.slow
def test_user_code_del_exit_is_one_line(tmp_path):
    """sys.exit in a __del__ (Python ignores it there): one line instead of a traceback, the result kept."""
    op = write_op(tmp_path, "init", "type(self).__del__ = lambda self: sys.exit(0)")
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    done = _nnparity("check", "spec.toml", "--json", cwd=tmp_path)
    assert done.returncode == 0 and json.loads(done.stdout)["ok"] is True
    assert_one_line(done.stderr, "check", "user code called sys.exit(0) in ")
    assert "Op.__init__.<locals>.<lambda>, which Python ignores" in done.stderr


@pytest.mark.slow
def test_user_code_replacing_numpy_check(tmp_path):
    """A user op that replaces NumPy's functions in the command's process: one line, exit 2, never a verdict."""
    op = write_op(tmp_path, "forward", "np.linalg.norm = np.max = lambda *args, **kwargs: 0.0")
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    done = _nnparity("check", "spec.toml", "--json", cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stdout, done.stderr)
    assert_one_line(done.stderr, "check", "user code replaced numpy.")
    assert "Op.forward" in done.stderr


# ------------------------------------------------------ what a spec's user op returns

@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("where,returned,fragment", [
    ("forward", "z + 1j", "Op.forward returned complex128 values; expected real floats"),
    ("backward", "grad_out + 1e6j", "Op.backward returned complex128 values; expected real floats"),
    ("forward", "None", "Op.forward returned NoneType; expected an array shaped as its argument"),
    ("backward", "'abc'", "Op.backward returned str; expected an array shaped as its argument"),
    ("forward", "z[:1]", "Op.forward returned shape (1, 1); expected its argument's"),
    ("backward", "np.ma.masked_array(grad_out, mask=np.ones(grad_out.shape, bool))", "a masked array with"),
    ("forward", "z.tolist()", "Op.forward returned list"),
])
def test_user_code_returns_not_an_array_one_line(command, where, returned, fragment, spec_with_op, capsys):
    """An activation's forward or backward must return real floats shaped as its argument: anything
    else is bad input, one line naming the call, never a traceback from deeper in the network nor a
    verdict on an imaginary part dropped."""
    status, out, err = run_cli(capsys, command, spec_with_op(where, f"return {returned}"), "--json")
    assert status == 2 and out == ""
    assert_one_line(err, command, fragment)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_user_code_matrix_return_is_its_numbers(spec_with_op, capsys):
    status, out, err = run_cli(capsys, "check", spec_with_op("forward", "return np.asmatrix(z * 1.0)"), "--json")
    assert status == 0 and json.loads(out)["ok"] is True, err


@pytest.mark.parametrize("command", ["check", "train"])
@pytest.mark.parametrize("returned,fragment", [
    ("z[:1]", "torch_module().forward returned a torch.float64 tensor of shape (1, 1); expected real floats"),
    ("z.to(torch.complex128)", "torch_module().forward returned a torch.complex128 tensor"),
    ("None", "torch_module().forward returned NoneType"),
])
def test_user_code_torch_twin_returns_not_like_its_input(command, returned, fragment, spec_with_op, capsys):
    """The torch twin's forward too: another shape (which torch's loss would broadcast, training on
    the wrong loss), complex values or None are one line, exit 2."""
    call = f"return type('M', (torch.nn.Module,), {{'forward': lambda self, z: {returned}}})()"
    argv = [command, spec_with_op("torch_module", call), "--json"] + (["--backend", "torch"] if command == "train" else [])
    status, out, err = run_cli(capsys, *argv)
    assert status == 2 and out == ""
    assert_one_line(err, command, fragment)


@pytest.mark.parametrize("command", ["check", "train"])
def test_user_code_signals_nnparity_reported(command, tmp_path):
    """User code that sends SIGTERM to its parent (the nnparity process watching the run): the run
    is ended and the signal reported as the user code's, exit 2, not an interruption (143)."""
    op = write_op(tmp_path, "forward", "import signal, time; os.kill(os.getppid(), signal.SIGTERM); time.sleep(30)")
    (tmp_path / "spec.toml").write_text(SPEC.format(op=op))
    done = _nnparity(command, "spec.toml", "--json", *(["--quiet"] if command == "train" else []), cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == "", (done.returncode, done.stderr)
    assert_one_line(done.stderr, command, "sent SIGTERM to nnparity's own process")
    assert "Op.forward" in done.stderr
