"""One corpus case through `nnparity verify` in this process, as a user's command line would run
it: the same `main(["verify", ...])` the CLI tests call, numpy's default error handling (warnings,
not the test suite's errors) and output captured. A case that runs past a CPU-time budget or
raises out of the CLI is an error, not a verdict."""
from __future__ import annotations

import contextlib
import io
import signal
import traceback
import warnings
from dataclasses import dataclass

import numpy as np

CASE_CPU_BUDGET_S = 60.0   # far above any case (each takes well under a second)

VERDICTS = ("right", "false FAIL", "false PASS", "refused", "error")


class CaseTimeout(BaseException):
    """A BaseException so that user code's `except Exception` cannot swallow it."""


@dataclass
class Outcome:
    exit_code: int | None      # None: the CLI did not return (timeout, an escaping exception)
    stdout: str
    stderr: str
    verdict: str               # one of VERDICTS

    @property
    def last_line(self) -> str:
        lines = (self.stdout.strip() or self.stderr.strip()).splitlines()
        return lines[-1] if lines else ""


def verdict(truth: str, exit_code: int | None) -> str:
    """right: correct -> 0, slip -> 1; false FAIL: correct -> 1; false PASS: slip -> 0;
    refused: exit 2; error: anything else."""
    if exit_code == 2:
        return "refused"
    if exit_code == 0:
        return "right" if truth == "correct" else "false PASS"
    if exit_code == 1:
        return "right" if truth == "slip" else "false FAIL"
    return "error"


@contextlib.contextmanager
def _cpu_budget(seconds: float):
    """SIGVTALRM on user CPU time: verify's own per-call limit uses the real-time timer (SIGALRM),
    which this must not disturb."""
    if not hasattr(signal, "setitimer"):
        yield
        return

    def stop(signum, frame):
        raise CaseTimeout(f"more than {seconds:g} s of CPU")

    previous = signal.signal(signal.SIGVTALRM, stop)
    signal.setitimer(signal.ITIMER_VIRTUAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_VIRTUAL, 0)
        signal.signal(signal.SIGVTALRM, previous)


def run_case(case: dict, extra_argv: tuple[str, ...] = ()) -> Outcome:
    from nnparity.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            warnings.catch_warnings(), np.errstate(all="warn", under="ignore"):
        warnings.simplefilter("default")
        try:
            with _cpu_budget(CASE_CPU_BUDGET_S):
                code = main(["verify", *case["argv"], *extra_argv])
        except (Exception, SystemExit, CaseTimeout):
            err.write(traceback.format_exc())
    return Outcome(code, out.getvalue(), err.getvalue(), verdict(case["truth"], code))
