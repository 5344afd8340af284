"""`nnparity verify` against hostile user code: a forward that writes into its input, an op that
returns a buffer it reuses, code that ends the process, hangs past the time limit (ignoring or
resetting the alarm, swallowing the timeout), raises a BaseException, or returns what is not an
array. Each is a verdict only where the maths was compared; everything else is one line, exit 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.append(str(REPO))

from nnparity.cli import main  # noqa: E402

HOSTILE = textwrap.dedent('''
    import os
    import signal
    import sys
    import time

    import numpy as np


    class InplaceTanh:
        """a = tanh(z), written into z itself; backward (1 - a²)·grad_out."""

        def forward(self, z):
            self.a = np.tanh(z, out=z)
            return self.a

        def backward(self, grad_out):
            return grad_out * (1 - self.a ** 2)


    class InplaceTanhSlip(InplaceTanh):
        def backward(self, grad_out):
            return grad_out


    def squash(z):
        return np.tanh(z, out=z)


    def squash_prime(z):
        return 1 - np.tanh(z) ** 2


    def squash_slip(z):
        return np.tanh(z, out=z)


    def squash_slip_prime(z):
        return np.ones_like(z)


    _BUFFERS = {}


    def _buffer(name, shape):
        return _BUFFERS.setdefault((name, shape), np.empty(shape))


    class BufferedRelu:
        """relu into one buffer per shape, reused by every call (as an allocation-free op would)."""

        def forward(self, z):
            self.mask = z > 0
            return np.maximum(z, 0, out=_buffer("out", z.shape))

        def backward(self, grad_out):
            return np.multiply(grad_out, self.mask, out=_buffer("grad", grad_out.shape))

        @classmethod
        def torch_module(cls):
            import torch
            return torch.nn.ReLU()


    def bufsq(z):
        return np.multiply(z, z, out=_buffer("sq", z.shape))


    def bufsq_prime(z):
        return np.multiply(2.0, z, out=_buffer("dsq", z.shape))


    class Cube:
        def forward(self, z):
            self.z = z.copy()
            return z ** 3

        def backward(self, grad_out):
            return grad_out * 3 * self.z ** 2


    class ExitInBackward(Cube):
        def backward(self, grad_out):
            sys.exit(0)


    class HardExitInBackward(Cube):
        def backward(self, grad_out):
            os._exit(0)


    class ExitInForward(Cube):
        def forward(self, z):
            sys.exit(1)


    class ExitInInit(Cube):
        def __init__(self):
            sys.exit(0)


    class HardExitInInit(Cube):
        def __init__(self):
            os._exit(0)


    def cube(z):
        return z ** 3


    def cube_prime(z):
        os._exit(0)


    class HangInInit(Cube):
        def __init__(self):
            while True:
                pass


    class HangInTorchModule(Cube):
        @classmethod
        def torch_module(cls):
            while True:
                pass


    class HangInExample:
        inputs = 3

        @classmethod
        def example(cls, rng):
            while True:
                pass

        def forward(self, x):
            return x

        def backward(self, grad_out):
            return grad_out


    class SwallowsTimeout(Cube):
        def backward(self, grad_out):
            while True:
                try:
                    time.sleep(10)
                except Exception:
                    pass


    class IgnoresAlarm(Cube):
        def backward(self, grad_out):
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            while True:
                pass


    class ResetsTimer(Cube):
        def backward(self, grad_out):
            while True:
                signal.setitimer(signal.ITIMER_REAL, 0)


    class Halt(BaseException):
        pass


    class RaisesBase(Cube):
        def backward(self, grad_out):
            raise Halt("stop")


    class RaisesGeneratorExit(Cube):
        def backward(self, grad_out):
            raise GeneratorExit()


    class KindRaises(Cube):
        @property
        def kind(self):
            raise RuntimeError("no kind")


    class KindRaisesOnClass(Cube):
        class _Kind:
            def __get__(self, obj, owner):
                raise RuntimeError("no kind")
        kind = _Kind()


    def gives_str(z):
        return "abc"


    def gives_str_prime(z):
        return np.ones_like(z)


    class GivesStr(Cube):
        def forward(self, z):
            return "abc"


    class GivesDict(Cube):
        def forward(self, z):
            return {"a": z}


    class GivesGenerator(Cube):
        def forward(self, z):
            return (v for v in z)


    class GradGenerator(Cube):
        def backward(self, grad_out):
            return (v for v in grad_out)


    class KeywordOnlyForward(Cube):
        def forward(self, *, z):
            return z ** 3


    def gives_dict(z):
        return {"a": z}


    def gives_dict_prime(z):
        return np.ones_like(z)


    def kwonly(*, z):
        return z ** 3


    class SignalsItself(Cube):
        def backward(self, grad_out):
            os.kill(os.getpid(), signal.SIGTERM)
            return grad_out * 3 * self.z ** 2


    class RaisesKeyboardInterrupt(Cube):
        def backward(self, grad_out):
            raise KeyboardInterrupt()


    class ExitsInDel(Cube):
        def __del__(self):
            sys.exit(0)


    class HangsInDel(Cube):
        def __del__(self):
            while True:
                pass


    class ComplexBackward(Cube):
        def backward(self, grad_out):
            return grad_out * 3 * self.z ** 2 + 1e6j


    class MaskedBackward(Cube):
        def backward(self, grad_out):
            grad = grad_out * 3 * self.z ** 2
            return np.ma.masked_array(grad * 7, mask=np.ones(grad.shape, bool))


    class ReplacesNumpy(Cube):
        """backward all zeros, forward replacing what a comparison computes with."""

        def forward(self, z):
            np.linalg.norm = lambda *args, **kwargs: 0.0
            np.max = lambda *args, **kwargs: 0.0
            np.abs = lambda a, *args, **kwargs: a * 0
            return super().forward(z)

        def backward(self, grad_out):
            return grad_out * 0


    class MatrixForward(Cube):
        def forward(self, z):
            self.z = z.copy()
            return np.asmatrix(z ** 3)


    def kwonly_prime(z):
        return 3 * z ** 2
''')

IMPORT_EXIT = "import sys\nsys.exit(0)\n"
IMPORT_HARD_EXIT = "import os\nos._exit(0)\n"
IMPORT_HANG = "while True:\n    pass\n"


@pytest.fixture
def hostile(tmp_path, monkeypatch):
    """The hostile ops as module ``hostile_ops`` (fresh for each test), importable from tmp_path."""
    (tmp_path / "hostile_ops.py").write_text(HOSTILE)
    (tmp_path / "exits_on_import.py").write_text(IMPORT_EXIT)
    (tmp_path / "hard_exits_on_import.py").write_text(IMPORT_HARD_EXIT)
    (tmp_path / "hangs_on_import.py").write_text(IMPORT_HANG)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    for name in ("hostile_ops", "exits_on_import", "hard_exits_on_import", "hangs_on_import"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


def run(capsys, *argv):
    code = main(["verify", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def cli(cwd, *argv, timeout=60):
    """The CLI in its own process (what ends or hangs a process is seen from outside)."""
    env = {"PYTHONPATH": f"{REPO}", "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "nnparity", "verify", *argv], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout, env=env)
    return proc.returncode, proc.stdout, proc.stderr


def assert_refused(code, out, err, *words):
    """Exit 2, one or two lines on stderr, no traceback, naming ``words``."""
    assert code == 2, out + err
    lines = err.strip().splitlines()
    assert 1 <= len(lines) <= 2, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err


# -------------------------------------------------------------- inputs the user could alter


@pytest.mark.parametrize("target", ["hostile_ops:InplaceTanhSlip", "hostile_ops:squash_slip"])
def test_inplace_forward_wrong_backward_fails(hostile, capsys, target):
    code, out, _ = run(capsys, target)
    assert code == 1, out
    assert out.splitlines()[-2].startswith("FAIL")


@pytest.mark.parametrize("target", ["hostile_ops:InplaceTanh", "hostile_ops:squash"])
def test_inplace_forward_right_backward_passes(hostile, capsys, target):
    code, out, _ = run(capsys, target)
    assert code == 0, out
    assert out.splitlines()[-1].startswith("PASS")


@pytest.mark.parametrize("target", ["hostile_ops:BufferedRelu", "hostile_ops:bufsq"])
def test_reused_output_buffer_correct_op_passes(hostile, capsys, target):
    code, out, _ = run(capsys, target)
    assert code == 0, out


def test_complex_gradient_never_passes_without_complex_warning(hostile, capsys):
    (hostile / "complex_ops.py").write_text(textwrap.dedent('''
        import numpy as np

        def cube(z):
            return z ** 3

        def cube_prime(z):
            return 3 * z ** 2 + 1e6j
    '''))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        code, out, err = run(capsys, "complex_ops:cube")
    assert code != 0
    assert "complex" in out + err
    assert "ComplexWarning" not in out + err


# --------------------------------------------------------------- user code ending the process


@pytest.mark.slow
@pytest.mark.parametrize("target, words", [
    ("hostile_ops:ExitInBackward", ["sys.exit(0)", "backward"]),
    ("hostile_ops:HardExitInBackward", ["os._exit", "backward"]),
    ("hostile_ops:ExitInForward", ["sys.exit(1)", "forward"]),
    ("hostile_ops:ExitInInit", ["sys.exit(0)"]),
    ("hostile_ops:HardExitInInit", ["os._exit"]),
    ("hostile_ops:cube", ["os._exit", "cube_prime"]),
    ("exits_on_import:f", ["sys.exit(0)", "exits_on_import"]),
    ("hard_exits_on_import:f", ["os._exit", "hard_exits_on_import"]),
])
def test_exit_in_user_code_is_refused(hostile, target, words):
    assert_refused(*cli(hostile, target), *words)


@pytest.mark.slow
@pytest.mark.parametrize("call", ["sys.exit(0)", "os._exit(0)"])
def test_exit_in_spec_activation_is_refused(hostile, call):
    (hostile / "spec_ops.py").write_text(textwrap.dedent(f'''
        import os
        import sys
        import numpy as np

        class Same:
            """a = z, whose backward ends the process."""

            def forward(self, z):
                return z

            def backward(self, grad_out):
                {call}

            @classmethod
            def torch_module(cls):
                import torch
                return torch.nn.Identity()
    '''))
    (hostile / "net.toml").write_text('seed = 2\n[[layers]]\ninputs = 3\nunits = 4\nactivation = "spec_ops:Same"\n'
                                      '[[layers]]\nunits = 2\nactivation = "tanh"\n[loss]\nname = "mse"\n')
    code, out, err = cli(hostile, "--spec", "net.toml")
    assert code == 2, out + err
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 2, err
    assert call.split("(")[0] in err, err


# ------------------------------------------------------------------------------- time limits


LIMIT = "ran for more than 0.5 s"


@pytest.mark.slow
@pytest.mark.parametrize("target, words", [
    ("hostile_ops:HangInInit", [LIMIT, "HangInInit()"]),
    ("hostile_ops:HangInTorchModule", [LIMIT, "torch_module"]),
    ("hostile_ops:HangInExample", [LIMIT, "example"]),
    ("hangs_on_import:f", [LIMIT, "hangs_on_import"]),
    ("hostile_ops:SwallowsTimeout", [LIMIT, "backward", "did not stop"]),
    ("hostile_ops:IgnoresAlarm", [LIMIT, "backward", "did not stop"]),
    ("hostile_ops:ResetsTimer", [LIMIT, "backward", "did not stop"]),
])
def test_time_limit_stops_hostile_code(hostile, target, words):
    assert_refused(*cli(hostile, target, "--time-limit", "0.5", timeout=60), *words)


SPEC_HANGS = textwrap.dedent('''
    import signal
    import time

    class Sleeps:
        """a = z, whose forward sleeps for ever."""

        def forward(self, z):
            time.sleep(10 ** 6)
            return z

        def backward(self, grad_out):
            return grad_out

        @classmethod
        def torch_module(cls):
            import torch
            return torch.nn.Identity()


    class Deaf(Sleeps):
        """Its forward ignores the alarm and loops for ever."""

        def forward(self, z):
            signal.signal(signal.SIGALRM, signal.SIG_IGN)
            while True:
                pass
''')


def _hanging_spec(folder, activation: str) -> str:
    (folder / "spec_hangs.py").write_text(SPEC_HANGS)
    (folder / "hangs.toml").write_text(f'seed = 2\n[[layers]]\ninputs = 3\nunits = 4\nactivation = "{activation}"\n'
                                       '[[layers]]\nunits = 2\nactivation = "tanh"\n[loss]\nname = "mse"\n')
    return "hangs.toml"


SPEC_LIMIT = "hangs.toml: the check of its network ran for more than 0.5 s"


def test_time_limit_stops_a_spec_activation_that_sleeps(hostile, capsys, monkeypatch):
    monkeypatch.delitem(sys.modules, "spec_hangs", raising=False)
    code, out, err = run(capsys, "--spec", _hanging_spec(hostile, "spec_hangs:Sleeps"), "--time-limit", "0.5")
    assert_refused(code, out, err, SPEC_LIMIT)
    assert "spec_hangs" not in sys.modules     # the user's module ran in the child only


@pytest.mark.slow
@pytest.mark.parametrize("activation, words", [("spec_hangs:Deaf", ["did not stop"]), ("hangs_on_import:f", [])])
def test_time_limit_stops_a_spec_activation_that_ignores_it(hostile, activation, words):
    assert_refused(*cli(hostile, "--spec", _hanging_spec(hostile, activation), "--time-limit", "0.5", timeout=120),
                   SPEC_LIMIT, *words)


@pytest.mark.slow
def test_time_limit_tiny_is_no_signal_death(hostile):
    code, out, err = cli(hostile, "hostile_ops:Cube", "--time-limit", "0.000001")
    assert code in (0, 2), (code, out, err)
    assert "Traceback" not in err


BUSY_FIRST_CALL = textwrap.dedent('''
    import time
    import numpy as np

    class Busy:
        """a = tanh(z); its first forward first spends CPU_S seconds of this process's CPU time."""
        first = True

        def forward(self, z):
            if Busy.first:
                Busy.first = False
                cpu, wall = time.process_time(), time.monotonic()
                while time.process_time() - cpu < {cpu_s}:
                    pass
                with open("first_call_wall_s", "w") as f:
                    f.write(str(time.monotonic() - wall))
            self.a = np.tanh(z)
            return self.a

        def backward(self, grad_out):
            return grad_out * (1 - self.a ** 2)
''')


@pytest.mark.skipif(not Path("/proc/self/schedstat").exists(), reason="the kernel keeps no count of time spent waiting for a CPU")
def test_time_limit_counts_only_time_the_call_could_run(hostile):
    """A call that needs 0.6 s of CPU under a 1 s limit, on a CPU it shares with a busy process:
    past 1 s of wall-clock time, yet not past its limit (the machine's load is not the call's)."""
    (hostile / "busy_ops.py").write_text(BUSY_FIRST_CALL.format(cpu_s=0.6))
    cpu = min(os.sched_getaffinity(0))

    def pinned():
        os.sched_setaffinity(0, {cpu})

    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"], preexec_fn=pinned)
    try:
        proc = subprocess.run([sys.executable, "-m", "nnparity", "verify", "busy_ops:Busy", "--time-limit", "1"],
                              cwd=hostile, capture_output=True, text=True, timeout=300, preexec_fn=pinned,
                              env={"PYTHONPATH": f"{REPO}", "PATH": "/usr/bin:/bin"})
    finally:
        hog.kill()
        hog.wait()
    wall = hostile / "first_call_wall_s"      # written once the busy call has returned
    if wall.exists() and float(wall.read_text()) <= 1.0:
        pytest.skip("the busy process did not hold the call past its limit on this machine")
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stdout + proc.stderr


@pytest.mark.parametrize("value", ["inf", "nan", "-1", "0", "1e9"])
def test_time_limit_flag_out_of_range_is_refused(hostile, capsys, value):
    code, out, err = run(capsys, "hostile_ops:Cube", "--time-limit", value)
    assert_refused(code, out, err, "--time-limit")


@pytest.mark.parametrize("kwargs, word", [({"seed": 0.5}, "seed"), ({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"),
                                          ({"time_limit_s": 0}, "time_limit_s"),
                                          ({"time_limit_s": float("inf")}, "time_limit_s")])
def test_api_bad_arguments_name_the_argument(hostile, kwargs, word):
    from nnparity.verify.autograd import assert_backward_correct

    with pytest.raises((TypeError, ValueError), match=word):
        assert_backward_correct("hostile_ops:Cube", **kwargs)


# ------------------------------------------------------------------ exceptions and odd returns


@pytest.mark.parametrize("target, words", [
    ("hostile_ops:RaisesBase", ["Halt", "backward"]),
    ("hostile_ops:RaisesGeneratorExit", ["GeneratorExit", "backward"]),
    ("hostile_ops:KindRaisesOnClass", ["kind"]),
])
def test_base_exception_in_user_code_is_refused(hostile, capsys, target, words):
    assert_refused(*run(capsys, target), *words)


def test_kind_property_that_raises_is_not_a_crash(hostile, capsys):
    code, out, err = run(capsys, "hostile_ops:KindRaises")
    assert code in (0, 2), out + err
    assert "Traceback" not in err


@pytest.mark.parametrize("target", ["hostile_ops:gives_str", "hostile_ops:GivesStr", "hostile_ops:GivesDict",
                                    "hostile_ops:GivesGenerator", "hostile_ops:GradGenerator",
                                    "hostile_ops:KeywordOnlyForward", "hostile_ops:gives_dict",
                                    "hostile_ops:kwonly"])
def test_form_error_return_is_refused(hostile, capsys, target):
    assert_refused(*run(capsys, target))


# ---------------------------------------------------------------- which references ran


def test_report_lists_references_that_ran_and_not(hostile, capsys):
    code, out, _ = run(capsys, "hostile_ops:Cube", "--json")
    data = json.loads(out)
    assert code == 0
    ran = data["references"]["ran"]
    assert "finite differences" in ran
    assert all(any(c["reference"] == r and c["compared"] for c in data["checks"]) for r in ran)
    assert any("torch_module(): not given" in r for r in data["references"]["not_run"])
    code, text, _ = run(capsys, "hostile_ops:Cube")
    assert "  torch_module(): not given" in text and "  reference: finite differences" in text


# -------------------------------------------------------------- user output and machine-readable output


CHATTY = textwrap.dedent('''
    import numpy as np

    print("The Zen of a chatty module")


    def cube(z):
        print("cube called")
        return z ** 3


    def cube_prime(z):
        return 3 * z ** 2
''')


def test_user_prints_stay_off_json_stdout(tmp_path):
    """What user code prints (at import, in each call) goes to stderr: stdout holds the one JSON
    object, as a pipe into a JSON reader needs."""
    (tmp_path / "chatty_ops.py").write_text(CHATTY)
    code, out, err = cli(tmp_path, "chatty_ops:cube", "--json")
    assert code == 0, out + err
    report = json.loads(out)
    assert report["ok"] is True and "Zen of a chatty module" in err and "cube called" in err


def test_self_signal_in_user_code_is_refused(hostile):
    """SIGTERM sent by user code to its own process: not an interruption (143), one line, exit 2."""
    code, out, err = cli(hostile, "hostile_ops:SignalsItself")
    assert_refused(code, out, err, "sent SIGTERM to its own process")


def test_keyboard_interrupt_raised_by_user_code_is_refused(hostile, capsys):
    assert_refused(*run(capsys, "hostile_ops:RaisesKeyboardInterrupt"), "raised KeyboardInterrupt",
                   "RaisesKeyboardInterrupt.backward")


@pytest.mark.slow
def test_del_exit_is_one_line_not_a_traceback(hostile):
    code, out, err = cli(hostile, "hostile_ops:ExitsInDel")
    assert code == 0 and out.strip().splitlines()[-1].startswith("PASS"), out + err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "sys.exit(0) in hostile_ops.ExitsInDel.__del__, which Python ignores" in err


@pytest.mark.parametrize("target,words", [("ComplexBackward", ("backward returned complex values",)),
                                          ("MaskedBackward", ("backward returned a masked array", "30 masked"))])
def test_non_numbers_returned_are_refused(hostile, capsys, target, words):
    """Complex values or masked entries are a form error (exit 2), in the class form as in the function form."""
    assert_refused(*run(capsys, f"hostile_ops:{target}"), *words)


def test_matrix_forward_compares_its_numbers(hostile, capsys):
    code, out, err = run(capsys, "hostile_ops:MatrixForward")
    assert code == 0 and out.strip().splitlines()[-1].startswith("PASS"), out + err


def test_user_code_replacing_numpy_is_refused(hostile, capsys):
    """A forward that replaces numpy.linalg.norm (in verify's child process) cannot make a zero gradient pass."""
    code, out, err = run(capsys, "hostile_ops:ReplacesNumpy")
    assert_refused(code, out, err, "user code replaced numpy.")


@pytest.mark.parametrize("argv,word", [(("hostile_ops:Cube", "--seed", str(2**70)), "--seed: must be from 0 to 4294967295"),
                                       (("--spec", str(REPO / "specs" / "xor.toml"), "--batch", str(10**9)),
                                        "--batch: would need about")])
def test_flag_out_of_range_is_refused_up_front(hostile, capsys, argv, word):
    """Named as the flag, not blamed on user code (a seed past np.random.seed's range) nor left to
    the time limit (a batch past the memory limit)."""
    assert_refused(*run(capsys, *argv), word)


def test_time_limit_covers_del(hostile, capsys):
    """A __del__ that never returns runs where Python drops an instance, between the calls the time
    limit covers: it is limited too, one line, exit 2, not a hang."""
    assert_refused(*run(capsys, "hostile_ops:HangsInDel", "--time-limit", "1"), "HangsInDel.__del__ ran for more than")
