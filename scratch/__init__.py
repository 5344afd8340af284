"""nnparity's from-scratch side: a neural network in NumPy, every derivative written by hand.

Importing scratch never imports torch.
"""
from scratch.spec import Spec, SpecError, load_spec  # noqa: F401
from scratch.network import Network  # noqa: F401
