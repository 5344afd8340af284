"""A layer written as a forward/backward pair with a cache (the classic course assignments):
``X_forward(*inputs) -> (out, cache)`` and ``X_backward(dout, cache) -> (d_input_1, ...)``; also
multi-output forwards ``(next_h, next_c, cache)`` whose backward takes one upstream gradient per
output, ``lstm_step_backward(dnext_h, dnext_c, cache)``, and course losses ``f(x, y, mask) ->
(loss, dx)`` (temporal_softmax_loss).

The inputs come from ``<base>_example(rng)`` used as given, else from the parameter names
(course_inputs.py). Only float arrays are differentiated: backward returns one gradient per float
array input, in order (ints, integer and boolean arrays, dicts such as conv_param and bn_param are
passed through, a fresh deep copy on every call, so a forward that updates bn_param's running
stats or re-seeds from dropout_param sees the same state each time). A forward that gives two
outputs on the same inputs is random and refused. Torch twin: torch's function of the layer's
name (nnparity.verify.autograd.course_twins) and autograd of the forward run on tensors.
"""
from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field

import numpy as np

from nnparity.verify import course_inputs, probes
from nnparity.verify.calls import array, call
from nnparity.verify.derivatives import required_parameters
from nnparity.verify.load import OpError, OpUnderTest
from nnparity.verify.rebind import with_array_module

ORDINALS = ("1st", "2nd", "3rd") + tuple(f"{k}th" for k in range(4, 20))
# Probe groups left out by layer: max pool's kinks are ties in a window (which element gets the
# gradient is a convention) as are its saturation values (drawn from six); recurrent gates at
# |x| = 700 only give derivatives of 0 (and overflow a plain 1/(1 + exp(−a))).
LEFT_OUT = {"max_pool": ("kink", "saturation"), "lstm": ("saturation",), "lstm_step": ("saturation",),
            "rnn": ("saturation",), "rnn_step": ("saturation",)}
ANY_RANK = (None, "affine", "relu", "dropout")   # layers a course writes for x of any rank


class FormError(OpError):
    """The forward returned something other than the form its backward reads."""


def is_float_array(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


@dataclass
class CoursePair:
    """A forward with its backward (or a loss returning (loss, dx)), and the inputs it is read at."""

    forward: object
    backward: object | None       # None: a loss form returning (loss, dx)
    names: list
    values: list
    outputs: int = 1               # arrays the forward returns before its cache
    hook: str | None = None        # the hook the inputs came from
    base: str = ""
    converted: list = field(default_factory=list)   # float dtypes read in float64

    @property
    def fname(self) -> str:
        return getattr(self.forward, "__name__", "forward")

    @property
    def bname(self) -> str:
        return getattr(self.backward, "__name__", self.fname)

    @property
    def differentiated(self) -> list:
        """Positions of the inputs backward returns gradients for: float arrays (a loss: the first)."""
        floats = [i for i, v in enumerate(self.values) if is_float_array(v)]
        return floats[:1] if self.backward is None else floats

    def arguments(self, floats: dict) -> list:
        """The forward's arguments: ``floats`` (position -> array) where given, deep copies elsewhere."""
        return [floats[i] if i in floats else copy.deepcopy(v) for i, v in enumerate(self.values)]

    def run(self, floats: dict, xp=np):
        """(outputs, cache) of one forward call."""
        result = with_array_module(self.forward, xp)(*self.arguments(floats))
        if not isinstance(result, tuple) or len(result) != self.outputs + 1:
            raise FormError(f"{self.fname} returned {_form(result)}; expected {self.expected_form}"
                            + ("" if self.backward is None else f", one output for each upstream gradient "
                               f"{self.bname} takes before its cache"))
        return list(result[:-1]), result[-1]

    @property
    def expected_form(self) -> str:
        if self.backward is None:
            return "(loss, dx)"
        return "(" + ", ".join([f"out{k + 1}" for k in range(self.outputs)] if self.outputs > 1 else ["out"]) + ", cache)"

    def gradients(self, returned) -> list:
        """The returned gradients of the differentiated inputs, in order (one per input also accepted)."""
        grads = list(returned) if isinstance(returned, (tuple, list)) else [returned]
        diff = self.differentiated
        if len(grads) == len(self.values) != len(diff):
            grads = [grads[i] for i in diff]
        if len(grads) != len(diff):
            names = ", ".join(self.names[i] for i in diff)
            raise OpError(f"{self.bname} returned {len(grads)} gradient(s); expected one per float array input of "
                          f"{self.fname}, in order: {names}")
        return grads


def _form(value) -> str:
    return f"a tuple of {len(value)}" if isinstance(value, tuple) else type(value).__name__


def join(outs: list, xp=np):
    """One array holding every output (flattened and concatenated when there are several)."""
    if len(outs) == 1:
        return outs[0]
    return xp.concatenate([o.reshape(-1) for o in outs])


def split(grad_out, shapes: list) -> list:
    """The upstream gradient of each output, from the joined one."""
    if len(shapes) == 1:
        return [grad_out]
    pieces, start = [], 0
    for shape in shapes:
        size = int(np.prod(shape))
        pieces.append(grad_out[start:start + size].reshape(shape))
        start += size
    return pieces


def _adapter(pair: CoursePair, groups: list):
    diff = pair.differentiated
    first, params = diff[0], diff[1:]

    class CourseLayer:
        kind = "layer"
        course = pair

        def __init__(self, xp=np):
            self.xp = xp
            self.inputs = int(pair.values[first].shape[-1])
            for i in params:
                setattr(self, f"_in_{pair.names[i]}", np.array(pair.values[i], dtype=np.float64))
            self._grads = {}

        @classmethod
        def example(cls, rng):
            return cls()

        @classmethod
        def probe_groups(cls, seed):
            return groups

        def parameters(self):
            return {pair.names[i]: getattr(self, f"_in_{pair.names[i]}") for i in params}

        def gradients(self):
            return self._grads

        def arguments(self, x) -> dict:
            return {first: x, **{i: getattr(self, f"_in_{pair.names[i]}") for i in params}}

        def forward(self, x):
            outs, self.cache = pair.run(self.arguments(x), self.xp)
            if pair.backward is None:
                value = outs[0]
                return value.reshape(1) if hasattr(value, "reshape") else np.array([value], dtype=np.float64)
            self._shapes = [tuple(np.shape(o)) for o in outs]
            return join(outs, self.xp)

        def backward(self, grad_out):
            if pair.backward is None:
                return grad_out[0] * np.asarray(self.cache, dtype=np.float64)
            returned = pair.backward(*split(grad_out, self._shapes), self.cache)
            grads = pair.gradients(returned)
            self._grads = {pair.names[i]: g for i, g in zip(params, grads[1:])}
            return grads[0]

    CourseLayer.__qualname__ = CourseLayer.__name__ = pair.fname
    CourseLayer.probe_text = _probe_text(pair, groups)
    return CourseLayer


def _probe_text(pair: CoursePair, groups: list) -> dict:
    name = pair.names[pair.differentiated[0]]
    text = {"given": f"{pair.hook}(rng) as given", "kink": f"{name} = 0", "saturation": f"|{name}| = 20, 100, 700",
            "tiny": f"|{name}| ~ 1e-8"}
    text.update({g.group: f"x {g.x.shape}" for g in groups if g.group == "3-D"})
    return text


# ------------------------------------------------------------------------------ reading


def _hook(module, pair_names: list):
    for name in pair_names:
        fn = getattr(module, f"{name}_example", None) if module is not None else None
        if callable(fn):
            return fn, f"{name}_example"
    return None, None


def _hook_inputs(hook, hook_name: str, names: list, rng) -> list:
    try:
        values = call(f"{hook_name}(rng)", hook, rng)
    except OpError as err:
        raise OpError(f"{err}; {hook_name}(rng) returns the forward's inputs ({', '.join(names)}) as a tuple "
                      f"in order, or a dict by name") from None
    if isinstance(values, dict):
        missing = [n for n in names if n not in values]
        if missing:
            raise OpError(f"{hook_name}(rng) returned a dict without {', '.join(missing)}; return the forward's "
                          f"inputs by parameter name ({', '.join(names)}) or as a tuple in order")
        return [values[n] for n in names]
    values = list(values) if isinstance(values, tuple) else [values]
    if len(values) != len(names):
        raise OpError(f"{hook_name}(rng) returned {len(values)} input(s); the forward takes {len(names)} "
                      f"({', '.join(names)}): return them as a tuple in that order")
    return values


def _float64(values: list) -> tuple[list, list]:
    """Float arrays as float64 (finite differences need its precision), and the names converted."""
    out, converted = [], []
    for v in values:
        if is_float_array(v) and v.dtype != np.float64:
            converted.append(str(v.dtype))
            v = v.astype(np.float64)
        out.append(v)
    return out, converted


def _outputs(backward) -> int:
    return max(1, len(required_parameters(backward)) - 1) if backward is not None else 1


def _check_deterministic(pair: CoursePair) -> np.ndarray:
    """The joined output of two calls on the same inputs: equal, or the op is random (OpError)."""
    floats = {i: pair.values[i] for i in pair.differentiated}
    what = f"{pair.fname}({', '.join(pair.names)})"
    outs = [call(what, pair.run, {i: v.copy() for i, v in floats.items()})[0] for _ in range(2)]
    joined = [np.concatenate([array(f"{pair.fname}'s output", o).reshape(-1) for o in out]) for out in outs]
    if not np.array_equal(joined[0], joined[1], equal_nan=True):
        raise OpError(f"{pair.fname} is random: two calls on the same inputs gave different outputs; it must take a "
                      f"seed it re-seeds from on every call, as the course's dropout does, e.g.\n"
                      f"    if 'seed' in dropout_param:\n"
                      f"        np.random.seed(dropout_param['seed'])")
    return joined[0]


def _check_backward(pair: CoursePair) -> None:
    floats = {i: pair.values[i].copy() for i in pair.differentiated}
    outs, cache = call(f"{pair.fname}({', '.join(pair.names)})", pair.run, floats)
    if pair.backward is None:
        array(f"{pair.fname}'s loss", outs[0], ())
        array(f"{pair.fname}'s dx", cache, pair.values[pair.differentiated[0]].shape)
        return
    douts = [np.ones_like(array(f"{pair.fname}'s output", o)) for o in outs]
    upstream = ", ".join(f"d{k}" for k in range(1, len(outs) + 1)) if len(outs) > 1 else "dout"
    grads = pair.gradients(call(f"{pair.bname}({upstream}, cache)", pair.backward, *douts, cache))
    for i, g in zip(pair.differentiated, grads):
        array(f"{pair.bname}'s d{pair.names[i]}", g)


def _groups(pair: CoursePair, rng) -> tuple[list, list]:
    """Probe groups of the first differentiated input, and notes on what was not probed."""
    x = pair.values[pair.differentiated[0]]
    if pair.hook is not None:
        return [probes.Probe("given", x.copy())], []
    kind = course_inputs.layer_kind(pair.base)
    sat = rng.choice((-1.0, 1.0), size=x.shape) * rng.choice(probes.SATURATION, size=x.shape)
    groups = [probes.Probe("random", x.copy()),
              probes.Probe("kink", np.zeros_like(x), kink_mask=np.ones(x.shape, bool)),
              probes.Probe("saturation", sat), probes.Probe("tiny", probes.TINY * rng.normal(size=x.shape))]
    groups = [g for g in groups if g.group not in LEFT_OUT.get(kind, ())]
    notes = []
    x3 = course_inputs.rank_variant(x, rng) if pair.differentiated[0] == 0 and kind in ANY_RANK else None
    if x3 is not None:
        try:
            _check_backward(CoursePair(pair.forward, pair.backward, pair.names, [x3] + pair.values[1:],
                                       pair.outputs, pair.hook, pair.base))
            groups.append(probes.Probe("3-D", x3))
        except OpError:
            notes.append(f"3-D x {x3.shape}: not probed, {pair.fname} raised on it (written for 2-D x only)")
    return groups, notes


def read_pair(forward, backward, module, base: str, seed: int) -> CoursePair:
    """The pair with its inputs, after one call of each: bad input (OpError) if their form is wrong."""
    names = required_parameters(forward)
    if not names:
        raise OpError(f"{forward.__name__}{inspect.signature(forward)}: a layer forward takes its inputs "
                      f"positionally, the batch x first")
    rng = np.random.default_rng(seed)
    hook, hook_name = _hook(module, [base, forward.__name__])
    if hook is not None:
        values = _hook_inputs(hook, hook_name, names, rng)
    else:
        values = course_inputs.inferred_inputs(forward.__name__, base, names, rng)
    values, converted = _float64(values)
    pair = CoursePair(forward, backward, names, values, _outputs(backward), hook_name, base)
    if not pair.differentiated:
        source = f"{hook_name}(rng)" if hook_name else "the inferred inputs"
        raise OpError(f"{forward.__name__}: no float array among its inputs from {source}, nothing to differentiate; "
                      f"return x as a float array, e.g.\n    def {base}_example(rng):\n"
                      f"        return (rng.normal(size=(6, 4)),)")
    pair.converted = converted
    try:
        _check_backward(pair)
    except OpError as err:
        if hook is not None or isinstance(err, FormError):
            raise
        shapes = ", ".join(f"{n} {course_inputs.describe(v)}" for n, v in zip(names, values))
        raise OpError(f"{err} (on inputs inferred from the parameter names: {shapes}); define {base}_example(rng) "
                      f"in its module returning the inputs, e.g.\n    def {base}_example(rng):\n"
                      f"        return rng.normal(size=(6, 4)), rng.normal(size=(4, 3))") from None
    _check_deterministic(pair)
    return pair


def course_op(pair: CoursePair, target: str, how: str, seed: int = 0) -> OpUnderTest:
    """The pair as a layer op whose checks are named by position and parameter name."""
    groups, notes = _groups(pair, np.random.default_rng([seed, 3]))
    cls = _adapter(pair, groups)
    diff = pair.differentiated
    source = (f"from {pair.hook}(rng), used as given" if pair.hook else
              f"inferred from the parameter names (course conventions; {pair.base}_example(rng), where defined, "
              f"is used instead)")
    form = ("a loss returning (loss, dx)" if pair.backward is None else
            f"forward/backward with a cache, {pair.fname} and {pair.bname} ({how})")
    returns = "dx" if pair.backward is None else ", ".join(f"d{pair.names[i]}" for i in diff)
    op_notes = [f"form: {form}",
                "inputs: " + ", ".join(f"{n} {course_inputs.describe(v)}" for n, v in zip(pair.names, pair.values))
                + f"; {source}",
                f"differentiated: {', '.join(pair.names[i] for i in diff)} (float arrays); "
                f"{pair.bname} returns {returns}"]
    if pair.converted:
        op_notes.append(f"float arrays of {', '.join(sorted(set(pair.converted)))} checked in float64")
    op = OpUnderTest(cls, "layer", target, notes=op_notes + notes, input_name=pair.names[diff[0]])
    op.review = _review([pair.names[i] for i in diff], pair.bname)
    return op


def _review(names: list, bname: str):
    """Checks renamed 'dw (2nd returned) vs ...', diagnoses prefixed with the same."""
    position = {n: ORDINALS[i] for i, n in enumerate(names)}

    def hook(evaluation, checks):
        for c in checks:
            if c.wrt in position and c.name.startswith(f"dL/d{c.wrt} "):
                label = f"d{c.wrt} ({position[c.wrt]} returned)"
                c.name = label + c.name[len(f"dL/d{c.wrt}"):]
                if c.diagnosis:
                    c.diagnosis = f"{label.replace(' returned)', f' returned by {bname})')}: {c.diagnosis}"
        return checks
    return hook
