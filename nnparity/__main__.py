"""`python -m nnparity`: the same as the `nnparity` console script."""
import sys

from nnparity.cli import main

sys.exit(main())
