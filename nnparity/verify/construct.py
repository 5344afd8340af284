"""Build an instance of a user's class for verification: through its hook, else with small
constructor arguments read from their names, with NumPy's global generator seeded (so weights
drawn with np.random.randn are reproducible) and restored afterwards.

Hooks, the first found: a classmethod ``example(rng)``, or a function ``<Class>_example(rng)`` in the
class's module; either returns an instance or a dict of constructor arguments. Without a hook,
required arguments are filled by name (SIZE_NAMES) and the report says which values were used.
"""
from __future__ import annotations

import inspect

import numpy as np

from nnparity.verify.calls import call
from nnparity.verify.load import OpError

# constructor parameter -> the small value used when it has no default (sizes kept small: finite
# differences cost four calls per parameter element)
SIZE_NAMES = {
    "input_dim": 4, "n_in": 4, "in_features": 4, "input_size": 4, "inputs": 4, "fan_in": 4, "in_dim": 4,
    "n_inputs": 4, "num_inputs": 4, "in_channels": 2, "d_in": 4,
    "num_features": 4, "n_features": 4, "features": 4, "dim": 4, "d_model": 4, "embed_dim": 4,
    "normalized_shape": 4,
    "hidden_dim": 5, "hidden_size": 5, "n_hidden": 5, "num_hidden": 5, "hidden": 5,
    "n_out": 3, "out_features": 3, "units": 3, "output_dim": 3, "output_size": 3, "outputs": 3, "fan_out": 3,
    "out_dim": 3, "n_outputs": 3, "num_outputs": 3, "n_units": 3, "num_units": 3, "neurons": 3, "d_out": 3,
    "num_classes": 3, "n_classes": 3, "classes": 3, "out_channels": 3,
    "vocab_size": 5, "sizes": [4, 5, 3], "hidden_dims": [5, 4], "hidden_sizes": [5, 4], "layer_sizes": [4, 5, 3], "layers": [4, 5, 3],
}
# parameters with defaults that would make the check weak or slow, replaced (and said so)
OVERRIDES = {"input_dim": 4, "input_size": 4, "hidden_dim": 5, "hidden_size": 5, "num_classes": 3,
             "output_size": 3, "weight_scale": 0.5, "std": 0.5, "init_scale": 0.5, "reg": 0.1, "sizes": [4, 5, 3],
             "hidden_dims": [5, 4], "dtype": "float64"}
EXAMPLE_TEXT = ("def {cls}_example(rng):\n"
                "    return {cls}(4, 3)          # or a dict of constructor arguments")


def hook(cls):
    """(the hook, its name) or (None, None)."""
    own = inspect.getattr_static(cls, "example", None)
    if isinstance(own, (classmethod, staticmethod)):
        return getattr(cls, "example"), f"{cls.__name__}.example(rng)"
    module = inspect.getmodule(cls)
    fn = getattr(module, f"{cls.__name__}_example", None) if module is not None else None
    if callable(fn):
        return fn, f"{cls.__name__}_example(rng)"
    return None, None


def _arguments(cls, name: str) -> tuple[dict, list[str]]:
    """Constructor arguments by name: (kwargs, what was filled in)."""
    try:
        params = list(inspect.signature(cls.__init__).parameters.values())[1:]
    except (TypeError, ValueError):
        return {}, []
    kwargs, said = {}, []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        low = p.name.lower()
        if p.default is p.empty:
            if low not in SIZE_NAMES:
                known = ", ".join(sorted(SIZE_NAMES))
                raise OpError(f"{name}: cannot construct it: its argument {p.name!r} has no default and no known "
                              f"meaning (known: {known}); give a hook:\n"
                              + EXAMPLE_TEXT.format(cls=cls.__name__))
            kwargs[p.name] = SIZE_NAMES[low]
        elif low in OVERRIDES and p.default != OVERRIDES[low]:
            kwargs[p.name] = OVERRIDES[low]
        else:
            continue
        said.append(f"{p.name}={kwargs[p.name]}")
    return kwargs, said


def build(cls, name: str, seed: int = 0, **extra):
    """(instance, how it was built: one line for the report)."""
    fn, hook_name = hook(cls)
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        if fn is not None:
            made = call(hook_name, fn, np.random.default_rng(seed))
            if isinstance(made, dict):
                return call(f"{name}(**{hook_name})", cls, **made), f"built from {hook_name} (arguments)"
            if not isinstance(made, cls):
                raise OpError(f"{hook_name} returned {type(made).__name__}; expected an instance of "
                              f"{cls.__name__} or a dict of its constructor arguments")
            return made, f"built by {hook_name}"
        kwargs, said = _arguments(cls, name)
        kwargs.update(extra)
        inst = call(f"{name}({', '.join(said)})", cls, **kwargs)
        how = (f"constructed as {cls.__name__}({', '.join(said)}) (no example(rng) hook: sizes chosen small, "
               f"from the argument names)") if said else f"constructed as {cls.__name__}()"
        return inst, how + f"; np.random seeded with {seed}"
    finally:
        np.random.set_state(state)
