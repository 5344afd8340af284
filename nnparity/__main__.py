"""`python -m nnparity`: the same as the `nnparity` console script."""
import sys

from nnparity.cli import console_main

sys.exit(console_main())
