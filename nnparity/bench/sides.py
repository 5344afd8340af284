"""The sides a benchmark times, each a factory ``make(cfg, op, dtype, threads) -> step()``.

``step()`` runs one operation (``forward``, ``forward_backward``, ``train_sgd`` or
``train_adam``: forward, softmax cross-entropy, backward, optimizer update) on the next of a
rotation of distinct batches. A side that cannot run raises ``Skip`` with the reason.
Every side starts from scratch's seeded initial weights (the same spec), so they do the same work.
"""
from __future__ import annotations

import inspect
import itertools

from nnparity.bench.configs import SeqConfig, spec_dict


class Skip(Exception):
    """This side cannot run here; the message says why."""


def _rotation(cfg, dtype):
    return itertools.cycle(cfg.batches(dtype, cfg.rotation(dtype)))


# ------------------------------------------------------------------------------------ scratch


def scratch(cfg, op, dtype, threads):
    from scratch.network import Network, build_loss
    from scratch.optimizers import make_optimizer

    spec = cfg.spec(dtype, op)
    net = Network.from_spec(spec)
    loss = build_loss(spec)
    batches = _rotation(cfg, dtype)
    # commits before backward(input_grad=...) existed (asv runs this code against older scratch)
    skip_dx = {"input_grad": False} if "input_grad" in inspect.signature(net.backward).parameters else {}
    if op == "forward":
        def step():
            x, _ = next(batches)
            return net.forward(x)
        return step
    if op == "forward_backward":
        def step():
            x, y = next(batches)
            loss.forward(net.forward(x), y)
            net.backward(loss.backward(), **skip_dx)
        return step
    optimizer = make_optimizer(spec.optimizer, net.parameters())

    def step():
        x, y = next(batches)
        loss.forward(net.forward(x), y)
        net.backward(loss.backward(), **skip_dx)
        optimizer.step(net.gradients())
    return step


# -------------------------------------------------------------------------------------- torch


def _torch_setup(cfg, op, dtype, threads):
    import torch
    from torch_ref.model import build, build_loss
    from torch_ref.optimizers import make_torch_optimizer

    torch.set_num_threads(threads)
    spec = cfg.spec(dtype, op)
    model = build(spec)
    loss_fn = build_loss(spec)
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in cfg.batches(dtype, cfg.rotation(dtype))]
    optimizer = make_torch_optimizer(spec.optimizer, model.parameters()) if op.startswith("train") else None
    return torch, spec, model, loss_fn, itertools.cycle(batches), optimizer


def torch_eager(cfg, op, dtype, threads):
    torch, spec, model, loss_fn, batches, optimizer = _torch_setup(cfg, op, dtype, threads)
    return _torch_step(torch, model, loss_fn, batches, optimizer, op)


def _torch_step(torch, model, loss_fn, batches, optimizer, op):
    if op == "forward":
        def step():
            x, _ = next(batches)
            with torch.no_grad():
                return model(x)
        return step
    if op == "forward_backward":
        params = list(model.parameters())

        def step():
            x, y = next(batches)
            for p in params:
                p.grad = None
            loss_fn(model(x), y).backward()
        return step

    def step():
        x, y = next(batches)
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()
    return step


def torch_compile(cfg, op, dtype, threads):
    """torch.compile of the same step (inductor; the optimizer step compiled with it).

    Compilation happens on the first call, before timing; ``compile_seconds`` on the returned
    step says how long it took.
    """
    import time

    torch, spec, model, loss_fn, batches, optimizer = _torch_setup(cfg, op, dtype, threads)
    if op == "forward":
        fn = torch.compile(lambda x: model(x))

        def raw():
            x, _ = next(batches)
            with torch.no_grad():
                return fn(x)
    else:
        compiled_model = torch.compile(model)
        params = list(model.parameters())
        opt_step = torch.compile(optimizer.step) if optimizer is not None else None

        def raw():
            x, y = next(batches)
            for p in params:
                p.grad = None
            loss_fn(compiled_model(x), y).backward()
            if opt_step is not None:
                opt_step()
    t0 = time.perf_counter()
    try:
        raw()
        raw()
    except Exception as exc:   # no compiler, an unsupported op: skip with torch's own reason
        raise Skip(f"torch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}") from None
    raw.compile_seconds = time.perf_counter() - t0
    return raw


# ---------------------------------------------------------------------------------------- JAX


def jax_jit(cfg, op, dtype, threads):
    """The same network in JAX, the whole step under one jax.jit (CPU); SGD and Adam written out.

    Longer than the others on purpose: a peer's model, loss and both updates read as one JAX
    program, closures over the same params, which is how a JAX user would write them."""
    jax, jnp = _jax(dtype)
    spec = cfg.spec(dtype, op)
    params, forward, loss = jax_model(cfg, spec, jax, jnp)
    batches = itertools.cycle([(jnp.asarray(x), jnp.asarray(y)) for x, y in cfg.batches(dtype, cfg.rotation(dtype))])

    if op == "forward":
        fn = jax.jit(forward)

        def step():
            x, _ = next(batches)
            return fn(params, x).block_until_ready()
        return step
    grad = jax.value_and_grad(loss)
    if op == "forward_backward":
        fn = jax.jit(grad)

        def step():
            x, y = next(batches)
            jax.block_until_ready(fn(params, x, y))
        return step
    if op == "train_sgd":
        lr = spec.optimizer.lr

        @jax.jit
        def train(params, state, x, y):
            value, g = grad(params, x, y)
            return jax.tree_util.tree_map(lambda p, d: p - lr * d, params, g), state, value
        state = ()
    else:
        lr, (b1, b2), eps = spec.optimizer.lr, spec.optimizer.betas, spec.optimizer.eps

        @jax.jit
        def train(params, state, x, y):
            value, g = grad(params, x, y)
            t, m, v = state
            t = t + 1
            m = jax.tree_util.tree_map(lambda m, d: b1 * m + (1 - b1) * d, m, g)
            v = jax.tree_util.tree_map(lambda v, d: b2 * v + (1 - b2) * d * d, v, g)
            c1, c2 = 1 - b1 ** t, jnp.sqrt(1 - b2 ** t)
            params = jax.tree_util.tree_map(lambda p, m, v: p - (lr / c1) * m / (jnp.sqrt(v) / c2 + eps), params, m, v)
            return params, (t, m, v), value
        zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
        state = (jnp.asarray(0, dtype=dtype), zeros, zeros)
    current = [params, state]

    def step():
        x, y = next(batches)
        current[0], current[1], value = train(current[0], current[1], x, y)
        value.block_until_ready()
    return step


def _jax(dtype):
    """(jax, jax.numpy), float64 enabled for a float64 run; ``Skip`` without JAX."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        raise Skip("JAX is not installed (pip install -e '.[bench]')") from None
    if dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    return jax, jnp


def jax_model(cfg, spec, jax, jnp):
    """(params, forward(params, x), loss(params, x, y)) of the configuration's network in JAX, from
    scratch's seeded initial weights: the MLP, a CNN (``_jax_image_forward``) or a sequence model
    (nnparity/bench/jax_sequence.py); the loss is softmax cross-entropy averaged over every class
    index of y (one per example, or one per token)."""
    from scratch.initializers import initial_parameters

    init = initial_parameters(spec)
    if isinstance(cfg, SeqConfig):
        from nnparity.bench.jax_sequence import sequence_forward

        params = {name: jnp.asarray(value) for name, value in init.items()}
        try:
            forward = sequence_forward(spec, jax, jnp)
        except NotImplementedError as exc:
            raise Skip(str(exc)) from None
    elif hasattr(cfg, "gemm_list"):
        params = {name: jnp.asarray(value) for name, value in init.items()}
        forward = _jax_image_forward(spec, jax, jnp)
    else:
        params = [(jnp.asarray(init[f"layers.{i}.weight"]), jnp.asarray(init[f"layers.{i}.bias"]))
                  for i in range(len(cfg.widths) - 1)]

        def forward(params, x):
            for i, (w, b) in enumerate(params):
                x = x @ w + b
                if i < len(params) - 1:
                    x = jax.nn.relu(x)
            return x

    def loss(params, x, y):
        logp = jax.nn.log_softmax(forward(params, x), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, y[..., None], axis=-1))
    return params, forward, loss


def _jax_image_forward(spec, jax, jnp):
    """A CNN spec's forward in JAX (lax's convolution and windows), batch normalization in train
    mode on the batch's statistics (the running ones are not carried: the step computes what the
    gradient needs); ReLU and identity activations."""
    from jax import lax

    from scratch.windows import pair

    def activate(name, z):
        if name not in ("relu", "identity"):
            raise Skip(f"JAX side: activation {name!r} is not written out here (relu, identity)")
        return jax.nn.relu(z) if name == "relu" else z

    def pool(layer, x, init, op):
        (kh, kw), p = pair(layer.kernel), pair(layer.padding)
        s = pair(layer.kernel if layer.stride is None else layer.stride)
        return lax.reduce_window(x, init, op, (1, 1, kh, kw), (1, 1, *s), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))

    def apply(layer, params, prefix, x):
        kind = layer.kind
        if kind == "dense":
            z = x @ params[prefix + "weight"]
            return z + params[prefix + "bias"] if layer.use_bias else z
        if kind == "conv2d":
            p = pair(layer.padding)
            z = lax.conv_general_dilated(x, params[prefix + "weight"], pair(layer.stride), ((p[0], p[0]), (p[1], p[1])),
                                         rhs_dilation=pair(layer.dilation), feature_group_count=layer.groups,
                                         dimension_numbers=("NCHW", "OIHW", "NCHW"))
            return z + params[prefix + "bias"].reshape(1, -1, 1, 1) if layer.use_bias else z
        if kind == "maxpool2d":
            return pool(layer, x, -jnp.inf, lax.max)
        if kind == "avgpool2d":
            (kh, kw) = pair(layer.kernel)
            return pool(layer, x, 0.0, lax.add) / (kh * kw)
        if kind == "flatten":
            return x.reshape(x.shape[0], -1)
        if kind == "global_avgpool":
            return x.mean(axis=(2, 3))
        if kind == "batchnorm":
            axes, shape = ((0,), (1, -1)) if x.ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))
            xhat = (x - x.mean(axis=axes, keepdims=True)) / jnp.sqrt(x.var(axis=axes, keepdims=True) + layer.eps)
            return xhat * params[prefix + "weight"].reshape(shape) + params[prefix + "bias"].reshape(shape) \
                if layer.affine else xhat
        if kind == "residual":
            h = x
            for j, inner in enumerate(layer.body):
                h = activate(inner.activation, apply(inner, params, f"{prefix}body.{j}.", h))
            if not layer.projection:
                return h + x
            w = params[prefix + "projection.weight"]
            if w.ndim == 2:
                return h + x @ w
            stride = layer.projection_stride(x.shape[1:], h.shape[1:], "")
            return h + lax.conv_general_dilated(x, w, stride, "VALID", dimension_numbers=("NCHW", "OIHW", "NCHW"))
        raise Skip(f"JAX side: layer kind {kind!r} is not written out here")

    def forward(params, x):
        for i, layer in enumerate(spec.layers):
            x = activate(layer.activation, apply(layer, params, f"layers.{i}.", x))
        return x
    return forward


# ---------------------------------------------------------------------------------- micrograd


def micrograd(cfg, op, dtype, threads):
    """Karpathy's micrograd (scalar autograd, Python floats): the tiny network only.

    micrograd has no exp or log; the two nodes softmax cross-entropy needs are added here in
    micrograd's own style. Python floats are float64 whatever --dtype says. Long for the same reason
    as jax_jit: the peer's whole program in one place.
    """
    if cfg.name != "tiny":
        raise Skip("micrograd runs the tiny network only (scalar autograd: hours at larger sizes)")
    try:
        from micrograd.engine import Value
    except ImportError:
        raise Skip("micrograd is not installed (pip install -e '.[bench]')") from None
    import math

    from scratch.initializers import initial_parameters

    def exp(v):
        out = Value(math.exp(v.data), (v,), "exp")

        def _backward():
            v.grad += out.data * out.grad
        out._backward = _backward
        return out

    def log(v):
        out = Value(math.log(v.data), (v,), "log")

        def _backward():
            v.grad += out.grad / v.data
        out._backward = _backward
        return out

    spec = cfg.spec(dtype, op)
    init = initial_parameters(spec)
    layers = [([[Value(float(w)) for w in row] for row in init[f"layers.{i}.weight"]],
               [Value(float(b)) for b in init[f"layers.{i}.bias"]]) for i in range(len(cfg.widths) - 1)]
    params = [p for weight, bias in layers for row in weight for p in row] + [p for _, bias in layers for p in bias]
    batches = itertools.cycle([(x.tolist(), y.tolist()) for x, y in cfg.batches(dtype, 64)])

    def forward(row):
        a = [Value(v) for v in row]
        for i, (weight, bias) in enumerate(layers):
            z = [sum((a[k] * weight[k][j] for k in range(len(a))), bias[j]) for j in range(len(bias))]
            a = [v.relu() for v in z] if i < len(layers) - 1 else z
        return a

    def loss_of(xs, ys):
        total = Value(0.0)
        for row, label in zip(xs, ys):
            z = forward(row)
            top = max(v.data for v in z)
            shifted = [v - top for v in z]
            total = total + (log(sum((exp(s) for s in shifted), Value(0.0))) - shifted[label])
        return total * (1.0 / len(xs))

    if op == "forward":
        def step():
            xs, _ = next(batches)
            return [forward(row) for row in xs]
        return step
    lr, (b1, b2), eps = spec.optimizer.lr, spec.optimizer.betas, spec.optimizer.eps
    m = [0.0] * len(params)
    v = [0.0] * len(params)
    t = [0]

    def step():
        xs, ys = next(batches)
        for p in params:
            p.grad = 0.0
        loss_of(xs, ys).backward()
        if op == "train_sgd":
            for p in params:
                p.data -= lr * p.grad
        elif op == "train_adam":
            t[0] += 1
            c1, c2 = 1 - b1 ** t[0], math.sqrt(1 - b2 ** t[0])
            for i, p in enumerate(params):
                m[i] = b1 * m[i] + (1 - b1) * p.grad
                v[i] = b2 * v[i] + (1 - b2) * p.grad * p.grad
                p.data -= (lr / c1) * m[i] / (math.sqrt(v[i]) / c2 + eps)
    return step


# ------------------------------------------------------------------- training loops (per step)


def training_loop(backend: str, cfg, dtype, threads, steps: int, device: str = "cpu", whole_run: bool = False):
    """Median seconds per step of a whole training loop (scratch.training, torch_ref.training or
    Lightning's Trainer, as ``nnparity compare`` runs them) on the configuration's SGD spec:
    every step's extras included (loss as a float, gradient norm, accuracy, logging).
    Returns (median, iqr, steps timed); ``whole_run``: (the run's seconds per step, steps) instead,
    for a device, where a step's own time is only the queueing of its work."""
    import statistics

    import numpy as np

    from scratch.data import Dataset
    from scratch.spec import Spec

    batches = max(2, steps // 2)
    x, y = cfg.batches(dtype, 1, rows=cfg.batch * batches)[0]
    raw = cfg.spec(dtype).to_dict() if hasattr(cfg, "gemm_list") else spec_dict(cfg.widths, cfg.batch, dtype)
    raw["train"] = {"epochs": 2, "batch_size": cfg.batch, "shuffle": False}
    raw["device"] = device
    spec = Spec.from_dict(raw)
    if backend == "scratch":
        from scratch.training import train
    else:
        import torch

        torch.set_num_threads(threads)
        if backend == "torch":
            from torch_ref.training import train
        else:
            from torch_ref.lightning import train
    result = train(spec, Dataset(x, y), progress=False)
    if whole_run:
        return result.seconds / len(result.step_seconds), len(result.step_seconds)
    times = result.step_seconds[batches:]          # the second epoch: warm
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return statistics.median(times), q[2] - q[0], len(times)
