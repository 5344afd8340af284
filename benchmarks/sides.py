"""The sides a benchmark times, each a factory ``make(cfg, op, dtype, threads) -> step()``.

``step()`` runs one operation (``forward``, ``forward_backward``, ``train_sgd`` or
``train_adam``: forward, softmax cross-entropy, backward, optimizer update) on the next of a
rotation of distinct batches. A side that cannot run raises ``Skip`` with the reason.
Every side starts from scratch's seeded initial weights (the same spec), so they do the same work.
"""
from __future__ import annotations

import itertools

from benchmarks.configs import make_batches, make_spec, rotation_count


class Skip(Exception):
    """This side cannot run here; the message says why."""


def _rotation(cfg, dtype):
    return itertools.cycle(make_batches(cfg.widths, cfg.batch, dtype, rotation_count(cfg.widths, cfg.batch, dtype)))


# ------------------------------------------------------------------------------------ scratch


def scratch(cfg, op, dtype, threads):
    from scratch.network import Network, build_loss
    from scratch.optimizers import make_optimizer

    spec = make_spec(cfg.widths, cfg.batch, dtype, op)
    net = Network.from_spec(spec)
    loss = build_loss(spec)
    batches = _rotation(cfg, dtype)
    if op == "forward":
        def step():
            x, _ = next(batches)
            return net.forward(x)
        return step
    if op == "forward_backward":
        def step():
            x, y = next(batches)
            loss.forward(net.forward(x), y)
            net.backward(loss.backward(), input_grad=False)
        return step
    optimizer = make_optimizer(spec.optimizer, net.parameters())
    grads = None

    def step():
        nonlocal grads
        x, y = next(batches)
        loss.forward(net.forward(x), y)
        net.backward(loss.backward(), input_grad=False)
        optimizer.step(net.gradients())
    return step


# -------------------------------------------------------------------------------------- torch


def _torch_setup(cfg, op, dtype, threads):
    import torch
    from torch_ref.model import build, build_loss
    from torch_ref.optimizers import make_torch_optimizer

    torch.set_num_threads(threads)
    spec = make_spec(cfg.widths, cfg.batch, dtype, op)
    model = build(spec)
    loss_fn = build_loss(spec)
    batches = [(torch.from_numpy(x), torch.from_numpy(y)) for x, y in
               make_batches(cfg.widths, cfg.batch, dtype, rotation_count(cfg.widths, cfg.batch, dtype))]
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
