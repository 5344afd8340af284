"""The benchmark harness behind `nnparity bench` (`python -m nnparity.bench`); benchmarks/README.md has its method."""
