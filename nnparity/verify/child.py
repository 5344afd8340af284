"""One verification run in a child process (fork), so that no user code can end, hang or decide
the outcome of the command that checks it.

The child runs the verification and sends back its result (or its OpError) through a pipe. The
parent waits, reading the call into user code in progress (nnparity.verify.time_limit.Watch):

- the child ends without a result (``os._exit``, a signal, a crash): OpError naming the call in
  progress and the exit status;
- a call runs ``GRACE_S`` past its time limit (the alarm was ignored, reset or caught): the
  parent kills the child, ProbeTimeout;
- user code raises what no call caught (SystemExit, a BaseException, an exception where
  verify reads the op, e.g. a ``kind`` property): OpError naming the user's function.

Where fork is not available (not on Linux or macOS), or inside a child already, it runs in this
process, each call still under the SIGALRM time limit. The child is forked, not spawned: what
the parent imported (torch) is there at once.
"""
from __future__ import annotations

import ctypes
import gc
import importlib
import mmap
import multiprocessing
import os
import pickle
import sys
import time
import traceback

from nnparity.verify.calls import exit_call, first_line
from nnparity.verify.errors import OpError
from nnparity.verify.load import FINALIZERS_OVERRUN
from nnparity.verify.time_limit import ProbeTimeout, Watch, timeout_message
from scratch import user_code
from scratch.signals import Interrupted

importlib.import_module("numpy.random")   # NumPy loads it lazily: here once, not again in every child

POLL_S = 0.02
OURS = ("nnparity", "scratch", "torch_ref", "numpy", "torch", "__main__")   # top-level names that are not user code


def forking() -> bool:
    return Watch.active is None and "fork" in multiprocessing.get_all_start_methods()


def isolated(fn, *args, **kwargs):
    """fn(*args, **kwargs) in a forked child; its result, or its OpError raised here."""
    if not forking():
        return fn(*args, **kwargs)
    ctx = multiprocessing.get_context("fork")
    watch = Watch(_shared(ctypes.c_double * 3), _shared(ctypes.c_char * 400))
    watch.numbers[0] = watch.numbers[1] = float("inf")   # no deadline; numbers[2], the waiting, starts at 0
    receive, send = ctx.Pipe(duplex=False)
    for stream in (sys.stdout, sys.stderr):   # nothing buffered here is written twice
        stream.flush()
    child = ctx.Process(target=_child, args=(send, watch, fn, args, kwargs))
    gc.freeze()     # the child's collections leave the parent's objects alone: fewer pages copied
    try:
        child.start()
    finally:
        gc.unfreeze()
    send.close()
    try:
        outcome = _wait(child, receive, watch)
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receive.close()
    if outcome[0] == "ok":
        return outcome[1]
    raise outcome[1]


def _shared(array_type):
    """A ctypes array in anonymous shared memory: the forked child writes it, the parent reads it.
    Anonymous, not a file (as multiprocessing's are), so that a file size limit cannot refuse it."""
    return array_type.from_buffer(mmap.mmap(-1, ctypes.sizeof(array_type)))


def _wait(child, receive, watch: Watch):
    while True:
        if receive.poll(POLL_S):
            try:
                return receive.recv()
            except EOFError:      # the child ended without a result
                child.join()
                return "error", OpError(_ended(watch.what, child.exitcode))
        if watch.overdue(child.pid, time.monotonic()):
            child.kill()
            return "error", ProbeTimeout(timeout_message(watch.what, watch.numbers[1]) + "; it did not stop when "
                                         "interrupted (it ignores, resets or catches the alarm), so it was ended")


def _ended(what: str, exitcode) -> str:
    where = f"while {what} ran" if what else "while it was checked"
    how = f"by signal {-exitcode}" if exitcode is not None and exitcode < 0 else f"with exit status {exitcode}"
    return (f"your code ended the process {how} {where} (os._exit or a crash); a function under test must "
            f"return its value")


def _child(send, watch: Watch, fn, args, kwargs):
    Watch.active = watch
    _user_output_to_stderr()
    user_code.note_unraisable()
    user_code.guard_shared()
    try:
        outcome = "ok", fn(*args, **kwargs)
        changed = user_code.tampered()
        if changed is not None:
            outcome = "error", OpError(user_code.tampered_message(changed, watch.what or "the code under test"))
        elif FINALIZERS_OVERRUN:
            outcome = "error", OpError(f"your {FINALIZERS_OVERRUN[0]} ran for more than its time limit (an endless "
                                       f"loop?) when Python dropped an instance; it was not run again")
    except OpError as err:
        outcome = "error", OpError(str(err)) if type(err) is not ProbeTimeout else err
    except Interrupted as err:   # a stop signal sent to this child alone (the parent stops for its own)
        where = f"while {watch.what} ran" if watch.what else "while it was checked"
        outcome = "error", OpError(f"your code sent {err} to its own process {where}; a function under test must "
                                   f"return its value")
    except BaseException as err:        # noqa: B036 — whatever user code raised past every guard
        outcome = "error", _unguarded(err, watch.what)
    ignored = user_code.unraisable_message()
    if ignored is not None:
        print(f"nnparity verify: {ignored}", file=sys.stderr)
    try:
        send.send(outcome)
    except Exception as err:    # a result that cannot be sent: ours, a bug
        send.send(("error", RuntimeError(f"verify's result could not be sent back: {first_line(err)}")))
    for stream in (sys.stdout, sys.stderr):
        stream.flush()


def _user_output_to_stderr() -> None:
    """What user code prints in the child (an import's banner, a debug print) goes to stderr: the
    parent alone writes the report, so ``--json`` stays the only thing on stdout."""
    sys.stdout.flush()
    try:
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    except (AttributeError, OSError, ValueError):   # streams without a descriptor (a test's capture)
        pass
    sys.stdout = sys.stderr


def _unguarded(err: BaseException, what: str) -> Exception:
    """OpError for what user code raised (SystemExit included) where no guarded call caught it;
    anything raised in verify's own code, as it is (a bug to report)."""
    where = _user_frame(err.__traceback__) or what
    if isinstance(err, SystemExit):
        return OpError(f"your code called {exit_call(err)}({err.code!r}) in {where or 'the op'}; a function "
                       f"under test must return its value")
    if where is None and isinstance(err, Exception):
        try:
            pickle.dumps(err)
            return err
        except Exception:
            return RuntimeError("".join(traceback.format_exception_only(type(err), err)).strip())
    line = first_line(err)
    return OpError(f"your code raised {type(err).__name__} in {where or 'the op'}{': ' + line if line else ''}")


def _user_frame(tb) -> str | None:
    """module.function of the innermost frame outside verify, scratch, NumPy, torch and the
    standard library's machinery (None: none, the error is verify's own)."""
    where = None
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", "?"))
        top = module.split(".")[0]
        if top not in OURS and top not in sys.stdlib_module_names:
            where = f"{module}.{tb.tb_frame.f_code.co_qualname}"
        tb = tb.tb_next
    return where
