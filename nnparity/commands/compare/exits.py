"""The compare worker's exit statuses, each after its message on stderr. Any other status is a run
that ended without saying why (user code ending its process, a crash): the parent reports it."""

RESULT_WRITTEN = 0
BAD_INPUT = 2
FAILED = 3   # diverged, or two runs of the same spec differed: the comparison fails (exit 1)
