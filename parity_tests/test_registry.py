"""The scratch and torch registries name the same things, and scratch never imports torch."""
from __future__ import annotations

import inspect
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from torch import nn

import scratch
from scratch.activations import ACTIVATIONS
from scratch.initializers import INITIALIZERS
from scratch.losses import LOSSES
from torch_ref.model import TORCH_ACTIVATIONS, TORCH_LOSSES, torch_activation

ROOT = Path(__file__).resolve().parents[1]


def test_registry_activation_names_match():
    assert set(ACTIVATIONS) == set(TORCH_ACTIVATIONS)


def test_registry_loss_names_match():
    assert set(LOSSES) == set(TORCH_LOSSES)


def test_registry_names_are_class_names():
    assert all(cls.name == name for name, cls in ACTIVATIONS.items())
    assert all(cls.name == name for name, cls in LOSSES.items())
    assert all(f.__name__ == name for name, f in INITIALIZERS.items())


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_registry_activation_params_match(name):
    """The parameters an activation takes, and their defaults, are the torch twin's keyword arguments."""
    scratch_params = dict(ACTIVATIONS[name].params)
    sig = inspect.signature(TORCH_ACTIVATIONS[name])
    torch_params = {k: p.default for k, p in sig.parameters.items()}
    assert scratch_params == torch_params
    assert isinstance(torch_activation(name, scratch_params), nn.Module)


@pytest.mark.parametrize("name", list(LOSSES))
def test_registry_loss_reductions_match(name):
    """Every reduction the scratch loss accepts builds a torch twin with the same reduction."""
    for reduction in LOSSES[name].reductions:
        module = TORCH_LOSSES[name](reduction=reduction)
        assert isinstance(module, nn.Module)


def test_registry_docstrings_state_formula_and_twin():
    for cls in [*ACTIVATIONS.values(), *LOSSES.values()]:
        doc = inspect.getdoc(cls) or ""
        assert "Backward" in doc and "Torch twin" in doc, f"{cls.__name__}: docstring lacks Backward/Torch twin"


def test_scratch_import_without_torch():
    """A clean interpreter imports scratch and every module in it without importing torch."""
    modules = ["scratch"] + [m.name for m in pkgutil.walk_packages(scratch.__path__, "scratch.")]
    code = (
        "import importlib, json, sys\n"
        f"pulled = {{}}\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "    pulled[name] = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')\n"
        "                          or m == 'lightning' or m.startswith('lightning.'))[:3]\n"
        "print(json.dumps(pulled))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    pulled = json.loads(out.stdout)
    assert set(pulled) == set(modules)
    assert {name: mods for name, mods in pulled.items() if mods} == {}, "scratch must not import torch"
    assert {"scratch.spec", "scratch.policy", "scratch.signals", "scratch.checkpoint"} <= set(modules)


def test_scratch_source_never_names_torch_import():
    for path in Path(scratch.__path__[0]).rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not (stripped.startswith(("import torch", "from torch"))), f"{path.name}: {line}"
