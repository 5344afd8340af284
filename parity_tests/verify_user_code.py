"""What the verify tests share: a user's module written from source text and imported (as a user's
own file would be), and a plain central difference to check each correct example independently."""
from __future__ import annotations

import importlib
import sys

import numpy as np


def load_user_module(tmp_path, monkeypatch, name: str, source: str):
    """``source`` written to tmp_path/name.py and imported fresh (tmp_path on sys.path for the test)."""
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop(name, None)
    return importlib.import_module(name)


def central_gradient(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """(f(x + h e_i) − f(x − h e_i)) / 2h for every element i of x, f scalar."""
    grad = np.zeros_like(x, dtype=np.float64)
    for i in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[i] += h
        down[i] -= h
        grad[i] = (f(up) - f(down)) / (2 * h)
    return grad
