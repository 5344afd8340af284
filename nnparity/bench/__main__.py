"""``python -m nnparity.bench``: the benchmark harness, the same options and run as ``nnparity bench``."""
import sys

from nnparity.bench.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m nnparity.bench"))
