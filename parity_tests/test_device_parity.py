"""The scratch network off the host: the same parity, with scratch's arrays on a device.

Two devices, one set of tests:
- ``strict`` (always): scratch on parity_tests/strict_xp.py, a CuPy stand-in on the CPU that
  refuses every host round-trip and NumPy-only call, against torch on the CPU. What would break
  on a GPU breaks here first, in CI.
- ``cuda`` (marked gpu; skipped cleanly without CUDA and CuPy): scratch on CuPy against torch on
  CUDA. float64 to the CPU tolerances; float32 with TF32 off to the float32 tolerance (1e-5).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from conftest import CHECK_TOL, assert_close, cuda_ready
from scratch.activations import ACTIVATIONS, make_activation
from scratch.data import random_batch
from scratch.device import to_host
from scratch.losses import FEATURE_LOSSES as LOSSES, make_loss  # token_cce: test_sequence_layers.py
from scratch.spec import load_spec
from strict_xp import HostRoundTrip, strict
from torch_ref.check import run_scratch, run_torch
from torch_ref.model import FORWARD_ONLY, TORCH_DTYPES, TORCH_LOSSES, torch_activation

SPECS = sorted((Path(__file__).resolve().parents[1] / "specs").glob("*.toml"))


DEVICES = [
    pytest.param("strict", id="strict"),
    pytest.param("cuda", id="cuda", marks=[pytest.mark.gpu,
                                           pytest.mark.skipif(not cuda_ready(), reason="needs CUDA and CuPy")]),
]


@pytest.fixture(params=DEVICES)
def device(request):
    """(scratch's array module, torch's device) for one device."""
    if request.param == "strict":
        return strict, "cpu"
    import cupy
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False   # float32 parity is for true float32 products
    torch.backends.cudnn.allow_tf32 = False
    return cupy, "cuda"


def _torch(array, dtype: str, torch_device: str, grad: bool = False):
    import torch

    return torch.tensor(np.asarray(array), dtype=TORCH_DTYPES[dtype], device=torch_device, requires_grad=grad)


def test_device_strict_namespace_refuses_host_round_trips():
    """The stand-in is strict: each refusal a GPU would make (or a sync it would cost) raises."""
    a = strict.asarray(np.ones((2, 3)))
    for attempt in (lambda: np.asarray(a), lambda: float(a.sum()), lambda: a.sum().item(), lambda: a.tolist(),
                    lambda: [v for v in a], lambda: a + np.ones((2, 3)), lambda: np.linalg.norm(a),
                    lambda: strict.linalg, lambda: bool(a.sum() > 0)):
        with pytest.raises(HostRoundTrip):
            attempt()
    assert np.array_equal(strict.asnumpy(strict.exp(a) * 2 + a.T.T), np.exp(np.ones((2, 3))) * 2 + 1)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_device_activation_parity(device, name, dtype):
    xp, torch_device = device
    rng = np.random.default_rng(7)
    z = rng.normal(scale=3, size=(6, 5)).astype(dtype)
    grad_out = rng.normal(size=(6, 5)).astype(dtype)
    op = make_activation(name, xp=xp)
    a = to_host(op.forward(xp.asarray(z)), xp)
    g = to_host(op.backward(xp.asarray(grad_out)), xp)
    zt = _torch(z, dtype, torch_device, grad=True)
    at = torch_activation(name)(zt)
    assert_close(a, at.detach().cpu().numpy(), dtype, what=f"{name} forward on {torch_device}")
    if name not in FORWARD_ONLY:
        at.backward(_torch(grad_out, dtype, torch_device))
        assert_close(g, zt.grad.cpu().numpy(), dtype, what=f"{name} backward on {torch_device}")


def _loss_cases():
    for name, cls in sorted(LOSSES.items()):
        for reduction in cls.reductions:
            yield name, reduction


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name, reduction", list(_loss_cases()))
def test_device_loss_parity(device, name, reduction, dtype):
    xp, torch_device = device
    rng = np.random.default_rng(3)
    pred = rng.uniform(0.05, 0.95, size=(6, 4)).astype(dtype) if name in ("bce", "cce") \
        else rng.normal(size=(6, 4)).astype(dtype)
    target = rng.uniform(0, 1, size=(6, 4)).astype(dtype)
    if name in ("cce", "softmax_cce"):
        target = (target / target.sum(axis=1, keepdims=True)).astype(dtype)
    op = make_loss(name, reduction, xp=xp)
    value = to_host(op.forward(xp.asarray(pred), xp.asarray(target)), xp)
    grad = to_host(op.backward(), xp)
    pt = _torch(pred, dtype, torch_device, grad=True)
    vt = TORCH_LOSSES[name](reduction=reduction)(pt, _torch(target, dtype, torch_device))
    vt.backward()
    assert_close(value, vt.detach().cpu().numpy(), dtype, what=f"{name} loss on {torch_device}")
    assert_close(grad, pt.grad.cpu().numpy(), dtype, what=f"{name} gradient on {torch_device}")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec_file", SPECS, ids=[p.stem for p in SPECS])
def test_device_network_parity(device, spec_file, dtype):
    """Forward, every activation, loss and every gradient of each example spec, both sides on the device."""
    xp, torch_device = device
    spec = load_spec(spec_file).replace(dtype=dtype)
    x, y = random_batch(spec, 5)
    ours, theirs = run_scratch(spec, x, y, xp=xp), run_torch(spec, x, y, device=torch_device)
    tol = CHECK_TOL[dtype]
    assert_close(ours["output"], theirs["output"], dtype, tol, what="output")
    for i, (a, b) in enumerate(zip(ours["activations"], theirs["activations"])):
        assert_close(a, b, dtype, tol, what=f"activation {i}")
    assert_close(ours["loss"], theirs["loss"], dtype, tol, what="loss")
    assert set(ours["grads"]) == set(theirs["grads"])
    for name, grad in ours["grads"].items():
        assert_close(grad, theirs["grads"][name], dtype, tol, what=f"grad {name}")


def test_device_parity_detects_a_host_round_trip():
    """A backward that leaves the device (np.asarray inside it) fails on the strict device."""
    op = make_activation("tanh", xp=strict)
    op.forward(strict.asarray(np.ones((2, 3))))
    leaky = type("Leaky", (type(op),), {"backward": lambda self, g: g * (1 - np.asarray(self.a) ** 2)})
    op.__class__ = leaky
    with pytest.raises(HostRoundTrip):
        op.backward(strict.asarray(np.ones((2, 3))))
