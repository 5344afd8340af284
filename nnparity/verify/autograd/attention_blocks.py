"""Which of an attention's [Q | K | V] projection blocks a wrong in_proj gradient reaches.

Scratch keeps W_in as (D, 3D) and b_in as (3D,), their last axis the Q, K and V blocks in turn (torch's
in_proj_weight transposed: the comparison's layout). Backward per head: dV = Pᵀ dC; dS = P ⊙ (dP −
rowsum(dP ⊙ P)), dP = dC Vᵀ; dQ = dS K / √d, dK = dSᵀ Q / √d; dC = G W_outᵀ. So Q and K wrong with V
right puts the slip in the softmax's backward or the scores' (their scale 1/√d, d = D/heads); all
three wrong, in P or dC.
"""
from __future__ import annotations

import numpy as np

BLOCKS = ("Q", "K", "V")


def in_projection_blocks(got, expected, tol: float, measure) -> str:
    """The message's tail naming the blocks that disagree (``measure(got, expected)``: the error)."""
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape or got.shape[-1] % 3:
        return ""
    pairs = zip(np.split(got, 3, axis=-1), np.split(expected, 3, axis=-1))
    wrong = [name for name, (ours, theirs) in zip(BLOCKS, pairs) if not measure(ours, theirs) <= tol]
    right = [name for name in BLOCKS if name not in wrong]
    if not wrong:
        return ""
    tail = f"; of its [Q | K | V] blocks {_listed(wrong)} {'disagrees' if len(wrong) == 1 else 'disagree'}"
    if right:
        tail += f", {_listed(right)} {'agrees' if len(right) == 1 else 'agree'}"
    if wrong == ["Q", "K"]:
        tail += (" (dQ = dS K/√d and dK = dSᵀ Q/√d come through the softmax's backward dS = P ⊙ (dP − "
                 "rowsum(dP ⊙ P)) and the scale, d = D/heads; dV = Pᵀ dC through neither)")
    elif not right:
        tail += (" (all three come from P and dC = G W_outᵀ: the probabilities the backward uses — its mask, "
                 "its heads — or dC)")
    return tail


def _listed(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
