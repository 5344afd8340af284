"""The torch-free half of `nnparity verify`: a hand-written backward checked on probes against
central finite differences, with a diagnosis of what is wrong. Its modules import only NumPy and
scratch (importing them never imports torch); nnparity.verify.autograd adds the autograd
references on the same evaluation, and ``assert_backward_correct`` for a user's test suite.

Public API:
- ``load_op(target, kind=None) -> OpUnderTest``, ``OpError``, ``KINDS`` (load: what a verifiable op
  looks like and how it is found);
- ``load_ops(target, grad=None, kind=None, convention=None) -> [OpUnderTest]`` (forms: a class, a
  function with its derivative, a loss function, or a forward/backward pair with a cache, read into
  the op form; function_pairs, derivatives, loss_functions, layer_functions hold each reading;
  course_pairs and course_inputs pair a course layer's functions and give their inputs);
- ``evaluate(op, seed) -> Evaluation``, ``fd_checks(evaluation)``, ``verify_fd(target)`` (op_check);
- ``PROBE_TIME_LIMIT``, ``ProbeTimeout`` (time_limit: each call into user code is time-limited);
- ``Check``, ``OpReport`` (report: the verdict and its text and JSON forms);
- ``GroupData``, ``compare``, ``diagnose`` (diagnosis: how got and expected differ).
"""
from nnparity.verify.diagnosis import GroupData, compare, diagnose
from nnparity.verify.forms import load_ops
from nnparity.verify.load import KINDS, OpError, OpUnderTest, load_op
from nnparity.verify.op_check import Evaluation, evaluate, fd_checks, verify_fd
from nnparity.verify.report import Check, OpReport
from nnparity.verify.time_limit import PROBE_TIME_LIMIT, ProbeTimeout

__all__ = ["KINDS", "PROBE_TIME_LIMIT", "Check", "Evaluation", "GroupData", "OpError", "OpReport", "OpUnderTest",
           "ProbeTimeout", "compare", "diagnose", "evaluate", "fd_checks", "load_op", "load_ops", "verify_fd"]
