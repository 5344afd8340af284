"""``python -m benchmarks``: the benchmark harness (``nnparity bench``)."""
import sys

from benchmarks.cli import main

if __name__ == "__main__":   # asv imports every module of benchmarks/: only run when executed
    sys.exit(main(prog="python -m benchmarks"))
