"""The autograd half of `nnparity verify` (the torch-free half is nnparity.verify): torch's autograd
as the reference; imports torch and torch_ref.

Public API:
- ``verify(target, kind=None, seed=0, grad=None, convention=None) -> OpReport``: one op (a class, a
  function with its derivative, a loss function, a forward/backward pair with a cache) checked
  against autograd of its ``torch_module()`` (for functions: torch's module of the same name,
  twins.py), autograd of its own NumPy forward run on torch tensors, and finite differences;
- ``first_wrong_layer(spec, batch=None)``: a network's first layer, from the output back, whose
  gradient disagrees with torch (layerwise.py); ``verify_spec(path, batch=None)``: the same for a spec
  file, its user activations run in a child process under a time limit;
- ``assert_backward_correct(target, grad=None, ...)``: ``verify`` as an assertion for a user's own
  pytest suite (testing.py).
"""
from nnparity.verify.autograd.layerwise import first_wrong_layer, verify_spec
from nnparity.verify.autograd.references import verify
from nnparity.verify.autograd.testing import assert_backward_correct

__all__ = ["assert_backward_correct", "first_wrong_layer", "verify", "verify_spec"]
