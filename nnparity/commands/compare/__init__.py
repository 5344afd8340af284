"""`nnparity compare [SPEC]`: one spec trained by the three backends (the scratch loop, the plain
torch loop, PyTorch Lightning's Trainer) from the same initial weights in the same batch order,
side by side.

The command (``command``) starts one child process per backend, one after the other
(``python -m nnparity.commands.compare.worker``), so that each backend's peak memory is its own
and its timings are not disturbed by the others' threads or allocators; the worker (``worker``)
trains and writes its result as JSON; the report (``report``) compares the three results, prints
the table and draws the plot.

Verdict: float64 runs must agree per step to the policy's TRAJECTORY_TOL (1e-10 relative);
float32 runs drift by rounding (about 1e-6 on the digits spec), which is shown and only fails
above FLOAT32_DRIFT_BOUND (scratch.policy). Exit codes: 0 the three backends agree, 1 they do not
(or a run diverged), 2 bad input, or a backend's run that ended without a result (``exits``).
"""
from nnparity.commands.compare.command import add_arguments, run  # noqa: F401
from nnparity.commands.compare.report import BACKENDS  # noqa: F401
