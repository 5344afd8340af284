"""The optimizers' three ways through an update give the same bits.

An update runs over a network's packed buffer in one pass, or parameter by parameter; a large
NumPy update goes through in blocks, a device update whole; on a device the optimizer never
reads a value on the host except where its rule compares losses (Armijo, random search). These
paths are speed and placement, not maths: each pair must agree bit for bit, at every step,
parameters and optimizer state alike. (Parity with torch is test_optimizers.py's.)
"""
from __future__ import annotations

import numpy as np
import pytest

from scratch.device import to_host
from scratch.network import Network, build_loss
from scratch.optimizers import BLOCK, OPTIMIZERS, apply_clipping, global_norm, make_optimizer
from scratch.packed import Packed
from scratch.spec import OptimizerSpec, Spec
from strict_xp import strict

STEPS = 12
# every optimizer, and every branch of SGD's and Adam's updates
UPDATES = {
    "sgd": dict(name="sgd", lr=0.3),
    "sgd_momentum_dampening": dict(name="sgd", lr=0.2, momentum=0.9, dampening=0.3),
    "sgd_nesterov_wd": dict(name="sgd", lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05),
    "adam": dict(name="adam", lr=0.05),
    "adam_wd_low_beta1": dict(name="adam", lr=0.05, betas=(0.3, 0.9), weight_decay=0.1),   # lerp's 2nd branch
    "adamw": dict(name="adamw", lr=0.05, weight_decay=0.2),
    "armijo": dict(name="armijo", lr=4.0),
    "random_search": dict(name="random_search", lr=0.1, seed=3),
    "sgd_clip_norm": dict(name="sgd", lr=0.3, momentum=0.9, clip_norm=0.05),
    "adam_clip_value": dict(name="adam", lr=0.05, clip_value=0.01),
}


def test_optimizer_paths_cover_the_registry():
    assert {fields["name"] for fields in UPDATES.values()} == set(OPTIMIZERS)


def _spec(dtype="float64") -> Spec:
    return Spec.from_dict({"seed": 5, "dtype": dtype, "loss": {"name": "softmax_cce"},
                           "layers": [{"inputs": 3, "units": 6, "activation": "tanh"},
                                      {"units": 3, "activation": "identity"}]})


def _run_network(opt_spec, packed: bool, dtype: str) -> tuple[list[dict], dict]:
    """Train a small network STEPS steps; ``packed`` False hands the optimizer plain dicts of the
    same live arrays, which takes it parameter by parameter."""
    spec = _spec(dtype)
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(10, 3)).astype(dtype), rng.integers(0, 3, size=10)
    net, loss = Network.from_spec(spec), build_loss(spec)
    params = net.parameters() if packed else dict(net.parameters())
    optimizer = make_optimizer(opt_spec, params)
    seen = []
    for _ in range(STEPS):
        net.loss_and_gradients(x, y, loss)
        grads = net.gradients() if packed else dict(net.gradients())
        assert isinstance(grads, Packed) == packed
        apply_clipping(opt_spec, grads)
        optimizer.step(grads, closure=lambda: loss.forward(net.forward(x), y))
        seen.append({name: p.copy() for name, p in net.parameters().items()})
    return seen, optimizer.get_state()[0]


def _assert_same_bits(ours: list[dict], theirs: list[dict], state_a: dict, state_b: dict):
    for step, (a, b) in enumerate(zip(ours, theirs, strict=True), 1):
        for name in a:
            assert np.array_equal(a[name], b[name]), f"{name} differs after step {step}"
    assert state_a.keys() == state_b.keys()
    for name in state_a:
        assert state_a[name].keys() == state_b[name].keys(), name
        for key in state_a[name]:
            assert np.array_equal(state_a[name][key], state_b[name][key]), f"state {name}.{key}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("update", list(UPDATES))
def test_optimizer_packed_matches_per_parameter(update, dtype):
    opt_spec = OptimizerSpec(**UPDATES[update])
    packed, packed_state = _run_network(opt_spec, True, dtype)
    single, single_state = _run_network(opt_spec, False, dtype)
    _assert_same_bits(packed, single, packed_state, single_state)


def test_optimizer_packed_state_survives_set_state():
    """A restored state (fresh arrays, as a checkpoint gives) is taken back into the packed buffer."""
    opt_spec = OptimizerSpec(name="adam", lr=0.05)
    spec = _spec()
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(6, 3)), rng.integers(0, 3, size=6)
    nets = [Network.from_spec(spec) for _ in range(2)]
    loss = build_loss(spec)
    optimizers = [make_optimizer(opt_spec, net.parameters()) for net in nets]
    for step in range(6):
        if step == 3:   # the second one resumes from a copy of the first's state
            optimizers[1] = make_optimizer(opt_spec, nets[1].parameters())
            optimizers[1].set_state(*optimizers[0].get_state())
        for net, optimizer in zip(nets, optimizers):
            net.loss_and_gradients(x, y, loss)
            optimizer.step(net.gradients())
    for name, p in nets[0].parameters().items():
        assert np.array_equal(p, nets[1].parameters()[name]), name
    assert optimizers[1].state["layers.0.weight"]["step"] == 6


# ------------------------------------------------------------------- blocks, and the device


def _target_and_grad(w: np.ndarray, target: np.ndarray) -> np.ndarray:
    """A gradient that changes size and sign along the run, computed on the host."""
    d = w - target
    return d + 0.3 * np.sin(3 * d)


def _run_vector(opt_spec, xp, dtype: str, size: int) -> tuple[list[np.ndarray], dict]:
    """STEPS steps on one parameter of ``size`` elements held by ``xp``; the loss is ‖w − target‖²."""
    rng = np.random.default_rng(9)
    target = rng.normal(size=(size,)).astype(dtype)
    w = xp.asarray(rng.normal(size=(size,)).astype(dtype))
    params = {"w": w}
    optimizer = make_optimizer(opt_spec, params)
    target_on_device = xp.asarray(target)
    seen = []
    for _ in range(STEPS):
        grads = {"w": xp.asarray(_target_and_grad(to_host(w, xp), target))}
        apply_clipping(opt_spec, grads)
        optimizer.step(grads, closure=lambda: ((params["w"] - target_on_device) ** 2).sum())
        seen.append({"w": to_host(w, xp).copy()})
    return seen, optimizer.get_state()[0]


@pytest.mark.parametrize("update", list(UPDATES))
def test_optimizer_on_device_matches_numpy_in_blocks(update):
    """The same steps on the strict device namespace (whole arrays, every host read refused) and
    on NumPy (a parameter of three blocks and a bit, updated block by block): the same bits."""
    opt_spec = OptimizerSpec(**UPDATES[update])
    size = 3 * BLOCK + 7
    on_host, host_state = _run_vector(opt_spec, np, "float64", size)
    on_device, device_state = _run_vector(opt_spec, strict, "float64", size)
    _assert_same_bits(on_host, on_device, host_state, device_state)


def test_global_norm_stays_on_the_device():
    grads = {"a": strict.asarray(np.array([3.0, 0.0])), "b": strict.asarray(np.array([[4.0]]))}
    total = global_norm(grads)
    assert type(total).__name__ == "DeviceArray"    # not a Python float: no host read was made
    assert float(strict.asnumpy(total)) == 5.0
