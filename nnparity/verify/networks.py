"""Whole networks as people write them, read into one form (NetworkUnderTest): live parameter
arrays, the scalar loss they give, and the hand-derived gradient of each.

- ``loss(X, y) -> (loss, grads)`` over ``self.params`` (a dict of arrays; ``loss(X)`` gives the
  scores): X (N, D) with D from the first weight, y N class labels < C (C from the scores), or
  ``<Class>_inputs(rng)`` returning (X, y);
- ``backprop(x, y) -> (nabla_b, nabla_w)`` over lists ``weights`` and ``biases`` (one example; column
  vectors x (n, 1), y (k, 1) one-hot, w of shape (n_out, n_in); or row vectors, detected from the
  shapes): the cost is ``self.cost.fn(a, y)`` when the network has a cost class, else ½‖a − y‖²
  (whose derivative is ``cost_derivative``), a = ``feedforward(x)`` (network.py's own method; or
  its alias ``forward``, ``predict``, ``__call__``). Without one there is nothing to differentiate:
  the forward is never guessed from the weights and an activation;
- a function returning ``(loss, dA, dB, ...)`` for arrays A, B, ... it reads from its module's
  globals or takes as arguments (the classic char-RNN ``lossFun(inputs, targets, hprev)``): each
  returned ``dA`` is matched to ``A`` by name and shape; token-id arguments are lists of ints below the
  vocabulary size, a hidden state a column; or ``<function>_example(rng)`` returning the arguments.

Constructors: nnparity.verify.construct. Each reader also gives ``torch_loss(xp, values)``, the same
loss computed by the user's code with NumPy's names rebound to the array module ``xp`` and the
parameters replaced by ``values`` (nnparity.verify.autograd.networks runs it on tensors for autograd).
"""
from __future__ import annotations

import ast
import copy
import inspect
import textwrap
import types
from dataclasses import dataclass, field

import numpy as np

from nnparity.verify.calls import call
from nnparity.verify.construct import build
from nnparity.verify.load import OpError
from nnparity.verify.method_pairs import is_loss_pair_class
from nnparity.verify.rebind import with_array_module

BATCH = 5          # rows of X: a gradient off by N = 5 is told apart from one off by 2 or ½
SEQUENCE = 4       # tokens in a sequence (char-RNN)
TOKEN_NAMES = ("inputs", "targets", "xs", "ys", "tokens", "ids", "input_ids", "target_ids", "seq", "x", "y")
HIDDEN_NAMES = ("hprev", "h_prev", "h0", "h", "hidden", "prev_h", "hidden_prev", "state")


@dataclass
class NetworkUnderTest:
    """A whole network: the loss at the live parameters, and the user's gradient of each."""

    target: str
    kind: str                       # loss(X, y) | backprop | function
    params: dict                    # name -> live float64 array that the loss reads (perturbed in place)
    loss: object                    # () -> float at the current values of params
    gradients: object               # () -> name -> the user's gradient (None: none given)
    labels: dict                    # name -> how the user's gradient is named ("grads['W1']", "dWxh")
    order: list                     # parameter names from the output back
    torch_loss: object = None       # (xp, name -> xp array) -> scalar, the user's code on xp
    notes: list = field(default_factory=list)
    inputs: str = ""                # what the loss is evaluated on, for the report
    batch: tuple | None = None      # (N, C) for the diagnosis' batch factors


def _floats(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f"


def unzero(params: dict, seed: int) -> str | None:
    """Parameters that are all zeros (biases as initialised) set to seeded normal values: at zero
    biases a unit whose inputs are all dead sits exactly on relu's kink. The note says which."""
    zeros = [n for n, p in params.items() if p.size and not p.any()]
    rng = np.random.default_rng(seed + 1)
    for n in zeros:
        params[n][...] = rng.normal(0.0, 0.1, size=params[n].shape)
    return (f"{', '.join(zeros)}: all zeros as constructed, set to seeded normal values (σ = 0.1) so that no "
            f"unit sits exactly on a kink") if zeros else None


def _rebound_method(fn, inst, xp, attrs: dict):
    """fn bound to a shallow copy of inst with ``attrs`` replaced, NumPy names rebound to xp."""
    twin = copy.copy(inst)
    for key, value in attrs.items():
        setattr(twin, key, value)
    return types.MethodType(with_array_module(getattr(fn, "__func__", fn), xp), twin)


# ------------------------------------------------------------------ loss(X, y) over params


def is_params_net(cls) -> bool:
    return (callable(getattr(cls, "loss", None)) and not callable(getattr(cls, "backward", None))
            and not is_loss_pair_class(cls))


def _loss_keywords(cls) -> dict:
    """Keyword arguments of loss(...) set so that their gradient terms are checked: reg=0.1."""
    try:
        params = inspect.signature(cls.loss).parameters
    except (TypeError, ValueError):
        return {}
    return {"reg": 0.1} if "reg" in params and params["reg"].default is not inspect.Parameter.empty else {}


def params_net(cls, shown: str, seed: int) -> NetworkUnderTest:
    inst, how = build(cls, shown, seed)
    params = getattr(inst, "params", None)
    if not isinstance(params, dict) or not any(_floats(v) for v in params.values()):
        raise OpError(f"{shown}: a network with loss(X, y) keeps its parameters in self.params, a dict of "
                      f"arrays; e.g.\n    self.params = {{'W1': ..., 'b1': ...}}\n    def loss(self, X, y=None): "
                      f"... return loss, grads")
    names = [n for n, v in params.items() if _floats(v)]
    for n in names:
        params[n] = np.array(params[n], dtype=np.float64)
    unzeroed = unzero({n: params[n] for n in names}, seed)
    keywords = _loss_keywords(cls)
    X, y, made, classes = _params_inputs(cls, inst, params, names, shown, np.random.default_rng(seed))

    def run():
        out = call(f"{shown}.loss(X, y)", inst.loss, X.copy(), y.copy(), **keywords)
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict)):
            raise OpError(f"{shown}.loss(X, y) returned {type(out).__name__}; expected (loss, grads) with grads "
                          f"a dict keyed like self.params")
        return out

    def loss():
        return float(np.asarray(inst.loss(X.copy(), y.copy(), **keywords)[0], dtype=np.float64))

    def gradients():
        grads = run()[1]
        return {n: grads.get(n, grads.get(f"d{n}")) for n in names}

    def torch_loss(xp, values):
        method = _rebound_method(cls.loss, inst, xp, {"params": {**params, **values}})
        return method(xp.asarray(X), xp.asarray(y), **keywords)[0]

    run()
    notes = [f"form: network with loss(X, y) -> (loss, grads) over self.params ({', '.join(names)}); {how}"]
    notes += [unzeroed] if unzeroed else []
    if keywords:
        notes.append("loss called with " + ", ".join(f"{k}={v}" for k, v in keywords.items())
                     + " (so that the regularisation's gradient is checked too)")
    return NetworkUnderTest(shown, "loss(X, y)", {n: params[n] for n in names}, loss, gradients,
                            {n: f"grads[{n!r}]" for n in names}, names[::-1], torch_loss, notes,
                            f"X {X.shape} {made}, y {y.size} class labels", (X.shape[0], classes))


def _params_inputs(cls, inst, params, names, shown, rng):
    """(X, y, how X was made, the number of classes)."""
    module = inspect.getmodule(cls)
    fn = getattr(module, f"{cls.__name__}_inputs", None)
    if callable(fn):
        out = call(f"{cls.__name__}_inputs(rng)", fn, rng)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise OpError(f"{cls.__name__}_inputs(rng) returned {type(out).__name__}; expected (X, y)")
        X, y = np.asarray(out[0], dtype=np.float64), np.asarray(out[1])
        return X, y, f"from {cls.__name__}_inputs(rng)", int(y.max()) + 1 if y.size and y.dtype.kind in "iu" else 1
    first = next((params[n] for n in names if params[n].ndim >= 2), None)
    if first is None:
        raise OpError(f"{shown}: no weight matrix in self.params to read the input width from; define\n"
                      f"    def {cls.__name__}_inputs(rng):\n        return X, y")
    X = rng.normal(0.0, 1.0, size=(BATCH, first.shape[0]))
    try:
        y_optional = inspect.signature(inst.loss).parameters["y"].default is not inspect.Parameter.empty
    except (TypeError, ValueError, KeyError):
        y_optional = False
    if y_optional:
        scores = call(f"{shown}.loss(X)", inst.loss, X.copy())
        if np.ndim(scores) != 2:
            raise OpError(f"{shown}.loss(X) returned shape {np.shape(scores)}; expected scores (N, C) (or define "
                          f"{cls.__name__}_inputs(rng) returning (X, y))")
        classes = int(np.shape(scores)[1])
    else:    # the classes are the last parameter's width
        classes = int(params[names[-1]].shape[-1])
    y = rng.integers(0, classes, size=BATCH)
    return X, y, "seeded normal (width from the first weight)", classes


# -------------------------------------------------------------- backprop(x, y) over lists


def is_backprop_net(cls) -> bool:
    return callable(getattr(cls, "backprop", None))


def _convention(weights, biases):
    """(name, input shape, output shape) candidates for the layer convention, likeliest first."""
    w, b, last = weights[0], biases[0], biases[-1]
    k = int(last.size)
    column = ("column vectors (w @ a + b, w of shape (n_out, n_in))", (w.shape[1], 1), (k, 1))
    row = ("row vectors (a @ w + b, w of shape (n_in, n_out))", (1, w.shape[0]), (1, k))
    if b.ndim == 1:
        return [(column[0], (w.shape[1],), (k,)), (row[0], (w.shape[0],), (k,))]
    return [column, row] if b.shape[-1] == 1 else [row, column]


FORWARD_NAMES = ("feedforward", "forward", "predict", "__call__")
NO_FORWARD = ("backprop is checked against the cost of its forward, feedforward(x) (network.py's own method), "
              "or one named forward, predict or __call__; {shown} has none: add it, e.g.\n"
              "    def feedforward(self, a):\n        for b, w in zip(self.biases, self.weights): "
              "a = sigmoid(np.dot(w, a) + b)\n        return a")


def forward_method(cls) -> str | None:
    """The name of the backprop network's forward (FORWARD_NAMES, first found), None when it has none."""
    for name in FORWARD_NAMES:
        if name == "__call__":
            if any("__call__" in k.__dict__ for k in cls.__mro__[:-1]):
                return name
        elif callable(getattr(cls, name, None)):
            return name
    return None


def backprop_net(cls, shown: str, seed: int) -> NetworkUnderTest:
    inst, how = build(cls, shown, seed)
    weights, biases = getattr(inst, "weights", None), getattr(inst, "biases", None)
    if not (isinstance(weights, list) and isinstance(biases, list) and weights and len(weights) == len(biases)):
        raise OpError(f"{shown}: a network with backprop(x, y) keeps lists self.weights and self.biases of equal "
                      f"length; e.g.\n    self.weights = [np.random.randn(y, x) for x, y in zip(sizes[:-1], "
                      f"sizes[1:])]\n    def backprop(self, x, y): ... return (nabla_b, nabla_w)")
    fname = forward_method(cls)
    if fname is None:
        raise OpError(f"{shown}: " + NO_FORWARD.format(shown=shown))
    feedforward = getattr(inst, fname)
    for lst in (weights, biases):
        lst[:] = [np.array(v, dtype=np.float64) for v in lst]
    unzeroed = unzero({f"{kind}[{i}]": v for kind, lst in (("weights", weights), ("biases", biases))
                       for i, v in enumerate(lst)}, seed)
    rng = np.random.default_rng(seed)
    cost = getattr(inst, "cost", None)
    cost_fn = getattr(cost, "fn", None)
    reasons = []
    for convention, x_shape, y_shape in _convention(weights, biases):
        x = rng.normal(0.0, 1.0, size=x_shape)
        y = np.zeros(y_shape)
        y.flat[int(rng.integers(0, y.size))] = 1.0
        try:
            a = call(f"{shown}.{fname}(x)", feedforward, x.copy())
        except OpError as err:
            reasons.append(str(err))
            continue
        if np.shape(a) == y_shape:
            break
        reasons.append(f"{convention}: {fname}(x {x_shape}) returned shape {np.shape(a)}")
    else:
        raise OpError(f"{shown}: {fname} fits neither column nor row vectors: " + "; ".join(reasons))

    def value(a_out, xp=np):
        if callable(cost_fn):
            fn = with_array_module(cost_fn, xp)
            return fn(a_out, xp.asarray(y) if xp is not np else y.copy())
        diff = a_out - (xp.asarray(y) if xp is not np else y)
        return 0.5 * (diff * diff).sum()

    def loss():
        return float(np.asarray(value(feedforward(x.copy())), dtype=np.float64))

    def gradients():
        out = call(f"{shown}.backprop(x, y)", inst.backprop, x.copy(), y.copy())
        if not (isinstance(out, tuple) and len(out) == 2):
            raise OpError(f"{shown}.backprop(x, y) returned {type(out).__name__}; expected (nabla_b, nabla_w)")
        nabla_b, nabla_w = out
        grads = {}
        for i in range(len(weights)):
            grads[f"weights[{i}]"] = nabla_w[i] if i < len(nabla_w) else None
            grads[f"biases[{i}]"] = nabla_b[i] if i < len(nabla_b) else None
        return grads

    def torch_loss(xp, values):
        attrs = {"weights": [values[f"weights[{i}]"] for i in range(len(weights))],
                 "biases": [values[f"biases[{i}]"] for i in range(len(biases))]}
        forward = _rebound_method(getattr(cls, fname), inst, xp, attrs)
        return value(forward(xp.asarray(x)), xp)

    params = {}
    for i in range(len(weights)):
        params[f"weights[{i}]"], params[f"biases[{i}]"] = weights[i], biases[i]
    order = [f"{kind}[{i}]" for i in reversed(range(len(weights))) for kind in ("weights", "biases")]
    labels = {n: n.replace("weights", "nabla_w").replace("biases", "nabla_b") for n in params}
    cost_text = (f"cost: {type(cost).__name__ if not inspect.isclass(cost) else cost.__name__}.fn(a, y)"
                 if callable(cost_fn) else "cost: ½‖a − y‖² (no cost class; the cost whose derivative is a − y)")
    notes = [f"form: network with backprop(x, y) -> (nabla_b, nabla_w); {how}",
             f"convention: {convention}; one example x {x.shape}, one-hot y {y.shape}", cost_text]
    if fname != "feedforward":
        notes.append(f"forward: {fname}(x), as network.py's feedforward(x)")
    notes += [unzeroed] if unzeroed else []
    gradients()
    return NetworkUnderTest(shown, "backprop", params, loss, gradients, labels, order, torch_loss, notes,
                            f"x {x.shape} seeded normal, y {y.shape} one-hot")


# ------------------------------------------------- a function returning (loss, *gradients)


def returned_names(fn) -> list | None:
    """The expressions in ``return a, b, c`` (the last tuple return of fn's source), None if unreadable."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return None
    names = None
    for node in ast.walk(tree):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
            names = [e.id if isinstance(e, ast.Name) else ast.unparse(e) for e in node.value.elts]
    return names


def _global_reads(fn) -> set:
    """The global names fn reads, and those of the functions of its module it calls."""
    g = fn.__globals__
    names = set(fn.__code__.co_names)
    for name in list(names):
        helper = g.get(name)
        if isinstance(helper, types.FunctionType) and helper.__globals__ is g:
            names |= set(helper.__code__.co_names)
    return names - set(inspect.signature(fn).parameters)


def _matches(fn, names) -> dict:
    """returned position -> the module global it is the gradient of (read by fn, not an argument)."""
    g = getattr(fn, "__globals__", {})
    reads = _global_reads(fn)
    found = {}
    for i, name in enumerate(names or []):
        if i == 0 or not name.isidentifier():
            continue
        for base in (name[1:], name[2:] if name.startswith("d_") else None, name[5:] if name.startswith("grad_")
                     else None):
            if base and base in reads and _floats(g.get(base)):
                found[i] = base
                break
    return found


def is_loss_and_grads(fn) -> bool:
    return inspect.isfunction(fn) and bool(_matches(fn, returned_names(fn)))


def _arguments(fn, shown, rng, vocab, hidden):
    base = fn.__name__
    hook = getattr(inspect.getmodule(fn), f"{base}_example", None)
    if callable(hook):
        out = call(f"{base}_example(rng)", hook, rng)
        return list(out) if isinstance(out, tuple) else [out], f"from {base}_example(rng)"
    args, said = [], []
    for p in inspect.signature(fn).parameters.values():
        if p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        low = p.name.lower()
        if low in TOKEN_NAMES and vocab:
            args.append([int(t) for t in rng.integers(0, vocab, size=SEQUENCE)])
            said.append(f"{p.name} {SEQUENCE} token ids < {vocab}")
        elif low in HIDDEN_NAMES and hidden:
            args.append(rng.normal(0.0, 0.5, size=(hidden, 1)))
            said.append(f"{p.name} ({hidden}, 1)")
        else:
            raise OpError(f"{shown}: cannot make its argument {p.name!r} (known: token ids {', '.join(TOKEN_NAMES)}; "
                          f"hidden states {', '.join(HIDDEN_NAMES)}); define\n    def {base}_example(rng):\n"
                          f"        return inputs, targets, hprev     # the arguments, in order")
    return args, ", ".join(said) + " (seeded)"


def _sizes(g, arrays):
    """(vocabulary size, hidden size) from the globals' names and shapes (None where unknown)."""
    vocab = g.get("vocab_size") if isinstance(g.get("vocab_size"), int) else None
    hidden = g.get("hidden_size") if isinstance(g.get("hidden_size"), int) else None
    if vocab is None:
        for name, axis in (("Wxh", 1), ("Why", 0), ("by", 0), ("Wx", 0), ("U", 1)):
            if name in arrays and arrays[name].ndim >= 1:
                vocab = int(arrays[name].shape[axis])
                break
    if hidden is None:
        for name in ("Whh", "Wh", "bh", "W"):
            if name in arrays:
                hidden = int(arrays[name].shape[0])
                break
    return vocab, hidden


def function_net(fn, shown: str, seed: int) -> NetworkUnderTest:
    names = returned_names(fn)
    matched = _matches(fn, names)
    g = fn.__globals__
    arrays = {base: g[base] for base in matched.values()}
    vocab, hidden = _sizes(g, arrays)
    rng = np.random.default_rng(seed)
    args, made = _arguments(fn, shown, rng, vocab, hidden)
    for base, arr in arrays.items():
        if not arr.flags.writeable:
            raise OpError(f"{shown}: the global {base} is read-only; it is perturbed in place for finite differences")

    def fresh():
        return [a.copy() if isinstance(a, np.ndarray) else list(a) if isinstance(a, list) else a for a in args]

    def run():
        out = call(f"{fn.__name__}(...)", fn, *fresh())
        if not isinstance(out, tuple) or len(out) != len(names):
            raise OpError(f"{shown} returned {type(out).__name__}; expected the {len(names)} values of its "
                          f"return statement ({', '.join(names)})")
        return out

    def loss():
        return float(np.asarray(fn(*fresh())[0], dtype=np.float64))

    def gradients():
        out = run()
        return {base: out[i] for i, base in matched.items()}

    def torch_loss(xp, values):
        rebound = with_array_module(fn, xp, values=values)
        return rebound(*[xp.asarray(a) if isinstance(a, np.ndarray) else a for a in fresh()])[0]

    run()
    unmatched = [n for i, n in enumerate(names) if i and i not in matched]
    notes = [f"form: function returning (loss, gradients): {fn.__name__} returns "
             + ", ".join(names),
             "gradients matched by name: " + ", ".join(f"{names[i]} -> {b} (global)" for i, b in matched.items())
             + (f"; not checked: {', '.join(unmatched)} (no parameter of that name)" if unmatched else "")]
    order = list(matched.values())[::-1]
    return NetworkUnderTest(shown, "function", arrays, loss, gradients, {b: names[i] for i, b in matched.items()},
                            order, torch_loss, notes, f"{made}")


def read_network(obj, shown: str, seed: int = 0) -> NetworkUnderTest | None:
    """The network form of ``obj`` (a class or function), None when it is no whole-network form."""
    if inspect.isclass(obj):
        if is_backprop_net(obj):
            return backprop_net(obj, shown, seed)
        if is_params_net(obj):
            return params_net(obj, shown, seed)
        return None
    if inspect.isfunction(obj) and is_loss_and_grads(obj):
        return function_net(obj, shown, seed)
    return None
