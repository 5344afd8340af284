"""asv imports this folder as a package (asv_bench.py); it is not installed: pyproject.toml lists nnparity.bench instead."""
