"""The autograd half of `nnparity verify` (the torch-free half is scratch.verify).

Public API:
- ``verify(target, kind=None, seed=0, grad=None, convention=None) -> OpReport``: one op (a class, a
  function with its derivative, a loss function, a forward/backward pair with a cache) checked
  against autograd of its ``torch_module()`` (for functions: torch's module of the same name,
  twins.py), autograd of its own NumPy forward run on torch tensors, and finite differences;
- ``first_wrong_layer(spec, batch=None)``: a network's first layer, from the output back, whose
  gradient disagrees with torch.
"""
from torch_ref.verify.autograd import verify
from torch_ref.verify.layerwise import first_wrong_layer

__all__ = ["first_wrong_layer", "verify"]
