"""Assertions for a user's own test suite, in the spirit of ``torch.testing.assert_close`` and
``torch.autograd.gradcheck``."""
from __future__ import annotations

from nnparity.verify.autograd.references import verify
from nnparity.verify.load import OpError
from nnparity.verify.time_limit import PROBE_TIME_LIMIT


def assert_backward_correct(target, grad=None, *, convention: str | None = None, kind: str | None = None,
                            seed: int = 0, time_limit_s: float | None = PROBE_TIME_LIMIT) -> None:
    """Pass silently when a hand-written gradient agrees with autograd and finite differences; raise
    ``AssertionError`` with the one-line diagnosis of ``nnparity verify`` otherwise.

    ``target``: a class with forward/backward, a function (with ``grad``, its derivative, or found
    by name: ``f_prime``, ``f_derivative``, ``df``, ...), a loss function, an ``X_forward``
    (with ``X_backward``), a ``(forward, backward)`` pair, or an import path ``module:name``.
    An op that cannot be verified as given (no derivative found, wrong signature, a call past the
    time limit) raises ``ValueError`` (nnparity.verify.load.OpError) naming what is wrong.

        from nnparity.verify.autograd.testing import assert_backward_correct
        assert_backward_correct(sigmoid, sigmoid_prime)
    """
    report = verify(target, kind=kind, seed=seed, grad=grad, convention=convention, time_limit_s=time_limit_s)
    if report.ok:
        return
    failing = [c for c in report.checks if not c.ok]
    why = report.diagnosis or (report.findings[0] if report.findings else "no check compared anything")
    raise AssertionError(f"{report.target}: {len(failing)} of {len(report.checks)} checks failed: {why}")


__all__ = ["OpError", "assert_backward_correct"]
