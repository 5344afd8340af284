"""The corpus's own ground truth: every case's hand-derived gradient against central finite
differences in float64, computed here without any of nnparity's code.

A manifest case names a probe, a tuple `(form, ...)` read by `compare(case)`, which returns one
`(name, analytic, numeric)` per returned gradient. A correct case agrees everywhere
(`AGREE_TOL`); a slip differs somewhere by more than `DIFFER_TOL` or in shape. Probes stay away
from kinks (|x| ≥ 0.1 where a relu, hinge or max sits) so a central difference is the derivative.
"""
from __future__ import annotations

import importlib

import numpy as np

STEP = 1e-6
AGREE_TOL = 1e-6
DIFFER_TOL = 1e-3


# ------------------------------------------------------------------------------ the measure


def numeric_grad(value, array, coords=None):
    """Central differences of the scalar `value()` with respect to `array`, perturbed in place
    (restored after each coordinate); only at `coords` when given (zeros elsewhere)."""
    grad = np.zeros(array.shape)
    for idx in (coords if coords is not None else np.ndindex(array.shape)):
        old = array[idx]
        array[idx] = old + STEP
        plus = value()
        array[idx] = old - STEP
        minus = value()
        array[idx] = old
        grad[idx] = (plus - minus) / (2 * STEP)
    return grad


def rel_error(analytic, numeric, coords=None) -> float:
    """‖a − n‖ / ‖n‖ (absolute where ‖n‖ = 0); inf when the shapes differ."""
    analytic = np.asarray(analytic, dtype=float)
    if analytic.shape != numeric.shape:
        return float("inf")
    if coords is not None:
        analytic = np.array([analytic[c] for c in coords])
        numeric = np.array([numeric[c] for c in coords])
    scale = np.linalg.norm(numeric)
    diff = np.linalg.norm(analytic - numeric)
    return float(diff / scale) if scale > 0 else float(diff)


def worst_error(case) -> float:
    return max(err for _, err in errors(case))


def errors(case):
    """[(gradient name, relative error against finite differences)] for one manifest case."""
    return [(name, rel_error(a, n, coords)) for name, a, n, coords in compare(case)]


# ------------------------------------------------------------------------------ dispatch


def _target(case):
    module_name, name = case["argv"][0].split(":")
    return importlib.import_module(module_name), name


def compare(case):
    module, name = _target(case)
    form, *spec = case["probe"]
    return PROBES[form](module, name, *spec)


def _rng():
    return np.random.default_rng(1234)


def _away_from_zero(rng, shape, low=0.1, high=2.0):
    return rng.choice([-1.0, 1.0], size=shape) * rng.uniform(low, high, size=shape)


# ------------------------------------------------------------------------------ function pairs


def _elementwise(f, df_at_z):
    z = _away_from_zero(_rng(), (40,), 0.1, 3.0)
    numeric = (f(z + STEP) - f(z - STEP)) / (2 * STEP)
    return [("f'", df_at_z(z), numeric, None)]


def pair_probe(module, name, derivative, convention):
    f, df = getattr(module, name), getattr(module, derivative)
    return _elementwise(f, (lambda z: df(z)) if convention == "z" else (lambda z: df(f(z))))


def flag_probe(module, name, convention):
    f = getattr(module, name)
    if convention == "z":
        return _elementwise(f, lambda z: f(z, deriv=True))
    return _elementwise(f, lambda z: f(f(z), deriv=True))


def jacobian_probe(module, name, derivative):
    """f maps one row to one row; the derivative is its Jacobian (or, if it returns a vector,
    read as the diagonal Jacobian it claims)."""
    f, df = getattr(module, name), getattr(module, derivative)
    x = _rng().standard_normal(5)
    numeric = np.stack([numeric_grad(lambda i=i: f(x)[i], x) for i in range(x.size)])
    analytic = np.asarray(df(x.copy()))
    if analytic.ndim == 1:
        analytic = np.diag(analytic)
    return [("jacobian", analytic, numeric, None)]


# ------------------------------------------------------------------------------ loss pairs


def _loss_data(kind, rng):
    """(prediction, target) of shape (4, 3) (labels (4,) for "index")."""
    shape = (4, 3)
    if kind == "real":
        pred, target = 1.5 * rng.standard_normal(shape), rng.standard_normal(shape)
        return pred, target
    if kind == "binary":
        return rng.uniform(0.05, 0.95, shape), rng.integers(0, 2, shape).astype(float)
    if kind == "logits_binary":
        return rng.standard_normal(shape), rng.integers(0, 2, shape).astype(float)
    if kind == "onehot":
        return rng.standard_normal(shape), np.eye(3)[rng.integers(0, 3, 4)]
    if kind == "index":
        return rng.standard_normal(shape), rng.integers(0, 3, 4)
    if kind == "prob":
        e = np.exp(rng.standard_normal((2,) + shape))
        rows = e / e.sum(axis=-1, keepdims=True)
        return rows[0], rows[1]
    if kind == "pm1":
        target = rng.choice([-1.0, 1.0], shape)
        margin = _away_from_zero(rng, shape, 0.1, 1.5)
        return target * (1 - margin), target
    raise ValueError(kind)


def loss_pair_probe(module, name, derivative, order, kind):
    loss, grad = getattr(module, name), getattr(module, derivative)
    pred, target = _loss_data(kind, _rng())
    call = (lambda f: f(target, pred)) if order == "true_pred" else (lambda f: f(pred, target))
    analytic = np.array(call(grad), dtype=float)
    return [("dL/dpred", analytic, numeric_grad(lambda: call(loss), pred), None)]


# ------------------------------------------------------------------------------ forward/backward


def _inputs(key, rng):
    """The positional arguments of a course layer's forward, and which of them are differentiated."""
    normal = rng.standard_normal
    if key == "affine2d":
        return [normal((4, 5)), normal((5, 3)), normal(3)], [0, 1, 2]
    if key == "affine3d":
        return [normal((4, 2, 3)), normal((6, 3)), normal(3)], [0, 1, 2]
    if key == "relu":
        return [_away_from_zero(rng, (4, 5))], [0]
    if key == "batchnorm":
        return [2 * normal((6, 4)) + 1, normal(4), normal(4), {"mode": "train"}], [0, 1, 2]
    if key == "layernorm":
        return [2 * normal((4, 6)) + 1, normal(6), normal(6), {}], [0, 1, 2]
    if key == "dropout":
        return [normal((5, 6)), {"p": 0.4, "mode": "train", "seed": 123}], [0]
    if key == "conv":
        return [normal((2, 3, 5, 5)), normal((2, 3, 3, 3)), normal(2), {"stride": 2, "pad": 1}], [0, 1, 2]
    if key == "maxpool":
        x = (rng.permutation(2 * 2 * 4 * 4) * 0.1).reshape(2, 2, 4, 4)
        return [x, {"pool_height": 2, "pool_width": 2, "stride": 2}], [0]
    if key == "rnn_step":
        return [normal((3, 4)), normal((3, 5)), 0.5 * normal((4, 5)), 0.5 * normal((5, 5)), normal(5)], [0, 1, 2, 3, 4]
    if key == "rnn":
        return [normal((2, 3, 4)), normal((2, 5)), 0.5 * normal((4, 5)), 0.5 * normal((5, 5)), normal(5)], [0, 1, 2, 3, 4]
    if key == "word_embedding":
        return [np.array([[0, 3, 1, 3], [2, 0, 0, 4]]), normal((5, 3))], [1]
    if key == "temporal_affine":
        return [normal((2, 3, 4)), normal((4, 5)), normal(5)], [0, 1, 2]
    if key == "lstm_step":
        return [normal((3, 4)), normal((3, 5)), normal((3, 5)), 0.5 * normal((4, 20)),
                0.5 * normal((5, 20)), normal(20)], [0, 1, 2, 3, 4, 5]
    if key == "temporal_softmax":
        mask = np.array([[True, True, False], [True, False, False]])
        return [normal((2, 3, 5)), rng.integers(0, 5, (2, 3)), mask], [0]
    if key == "scores":
        return [normal((5, 4)), rng.integers(0, 4, 5)], [0]
    raise ValueError(key)


def layer_probe(module, name, backward_name, key):
    """forward(*args) -> (*outputs, cache); backward(*douts, cache) -> gradients of the
    differentiated arguments in order. The scalar checked is Σ outputs · douts."""
    forward, backward = getattr(module, name), getattr(module, backward_name)
    rng = _rng()
    args, diff = _inputs(key, rng)
    *outs, cache = forward(*args)
    douts = [rng.standard_normal(np.shape(o)) for o in outs]
    grads = backward(*[d.copy() for d in douts], cache)
    grads = [np.array(g, dtype=float) for g in (grads if isinstance(grads, tuple) else (grads,))]

    def value():
        return sum(np.sum(o * d) for o, d in zip(forward(*args)[:-1], douts))

    if len(grads) != len(diff):
        return [("number of gradients", np.zeros(len(grads)), np.zeros(len(diff)), None)]
    return [(f"d{i}", g, numeric_grad(value, args[i]), None) for g, i in zip(grads, diff)]


def loss_fn_probe(module, name, key):
    """fn(*args) -> (loss, dx), dx the gradient with respect to the first argument."""
    fn = getattr(module, name)
    args, _ = _inputs(key, _rng())
    _, dx = fn(*args)
    return [("dx", np.array(dx, dtype=float), numeric_grad(lambda: fn(*args)[0], args[0]), None)]


# ------------------------------------------------------------------------------ classes


def _grad_dicts(obj):
    params = getattr(obj, "params", None)
    if params is None:
        params = getattr(obj, "parameters", {})
    grads = getattr(obj, "grads", None)
    if grads is None:
        grads = getattr(obj, "gradients", {})
    return params, grads


def class_layer_probe(module, name, ctor_args, positive_away=False):
    rng = _rng()
    np.random.seed(7)
    layer = getattr(module, name)(*ctor_args)
    x = _away_from_zero(rng, (4, 5)) if positive_away else rng.standard_normal((4, 5))
    out = layer.forward(x)
    dout = rng.standard_normal(out.shape)
    dx = np.array(layer.backward(dout.copy()), dtype=float)
    params, grads = _grad_dicts(layer)
    analytic = {key: np.array(g, dtype=float) for key, g in grads.items()}

    def value():
        return np.sum(layer.forward(x) * dout)

    rows = [("dx", dx, numeric_grad(value, x), None)]
    rows += [(f"d{key}", analytic.get(key, np.zeros(0)), numeric_grad(value, params[key]), None)
             for key in params]
    return rows


def class_loss_probe(module, name, kind):
    loss = getattr(module, name)()
    pred, target = _loss_data(kind, _rng())
    loss.forward(pred, target)
    analytic = np.array(loss.backward(), dtype=float)
    return [("dL/dpred", analytic, numeric_grad(lambda: loss.forward(pred, target), pred), None)]


# ------------------------------------------------------------------------------ whole networks


def _seeded(build):
    state = np.random.get_state()
    np.random.seed(3)
    try:
        return build()
    finally:
        np.random.set_state(state)


def nielsen_probe(module, name, cost="quadratic"):
    net = _seeded(lambda: getattr(module, name)([4, 5, 3]))
    rng = _rng()
    x, y = rng.standard_normal((4, 1)), rng.uniform(0.05, 0.95, (3, 1))
    nabla_b, nabla_w = net.backprop(x, y)

    def value():
        a = net.feedforward(x)
        return 0.5 * np.sum((a - y) ** 2) if cost == "quadratic" else net.cost.fn(a, y)

    rows = [(f"nabla_b[{i}]", g, numeric_grad(value, b), None) for i, (g, b) in enumerate(zip(nabla_b, net.biases))]
    rows += [(f"nabla_w[{i}]", g, numeric_grad(value, w), None) for i, (g, w) in enumerate(zip(nabla_w, net.weights))]
    return rows


def cost_probe(module, name):
    cost = getattr(module, name)
    rng = _rng()
    z, y = rng.standard_normal((3, 1)), rng.uniform(0.05, 0.95, (3, 1))
    sigmoid = module.sigmoid
    analytic = np.array(cost.delta(z, sigmoid(z), y), dtype=float)
    return [("delta", analytic, numeric_grad(lambda: cost.fn(sigmoid(z), y), z), None)]


def two_layer_probe(module, name):
    net = _seeded(lambda: getattr(module, name)(input_dim=5, hidden_dim=6, num_classes=4,
                                                weight_scale=0.5, reg=0.1))
    rng = _rng()
    X, y = rng.standard_normal((3, 5)), rng.integers(0, 4, 3)
    _, grads = net.loss(X, y)
    return [(key, np.array(grads.get(key, np.zeros(0)), dtype=float),
             numeric_grad(lambda: net.loss(X, y)[0], net.params[key]), None)
            for key in ("W1", "b1", "W2", "b2")]


def min_char_rnn_probe(module, name):
    """lossFun reads the parameters from module globals: seeded ones are put there for the probe
    and the module's own restored after. Finite differences at 40 sampled entries per parameter."""
    names = ("Wxh", "Whh", "Why", "bh", "by")
    saved = {key: getattr(module, key) for key in names}
    rng = _rng()
    H, V = module.hidden_size, module.vocab_size
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H, 1), "by": (V, 1)}
    try:
        for key in names:
            setattr(module, key, 0.1 * rng.standard_normal(shapes[key]))
        text = module.data
        inputs = [module.char_to_ix[ch] for ch in text[:12]]
        targets = [module.char_to_ix[ch] for ch in text[1:13]]
        hprev = 0.1 * rng.standard_normal((H, 1))
        loss_fn = getattr(module, name)
        _, *grads = loss_fn(inputs, targets, hprev)[:6]
        rows = []
        for key, g in zip(names, grads):
            param = getattr(module, key)
            coords = [tuple(int(rng.integers(0, n)) for n in param.shape) for _ in range(40)]
            numeric = numeric_grad(lambda: loss_fn(inputs, targets, hprev)[0], param, coords)
            rows.append((f"d{key}", np.array(g, dtype=float), numeric, coords))
        return rows
    finally:
        for key, value in saved.items():
            setattr(module, key, value)


PROBES = {
    "pair": pair_probe,
    "flag": flag_probe,
    "jacobian": jacobian_probe,
    "loss_pair": loss_pair_probe,
    "layer": layer_probe,
    "loss_fn": loss_fn_probe,
    "class_layer": class_layer_probe,
    "class_loss": class_loss_probe,
    "nielsen": nielsen_probe,
    "cost": cost_probe,
    "two_layer": two_layer_probe,
    "min_char_rnn": min_char_rnn_probe,
}
