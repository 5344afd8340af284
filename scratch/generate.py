"""Text from a trained character-level language model: greedy decoding, one character at a time."""
from __future__ import annotations

import numpy as np

from scratch.network import Network
from scratch.sequence_data import decode, encode, text_vocab

PROMPT = "And God said"


def greedy_text(spec, params: dict, prompt: str = PROMPT, length: int = 80) -> str:
    """``prompt`` continued by ``length`` characters, each the argmax of the next-character logits
    at the last step, the model reading at most its input length T of the latest characters
    (the scratch network holding ``params``, in eval mode). The characters are the shipped text's."""
    vocab = text_vocab()
    net = Network.from_spec(spec, params={name: np.asarray(value) for name, value in params.items()}).eval()
    steps = spec.shapes[0][0]
    ids = list(encode(prompt, vocab))
    for _ in range(length):
        logits = net.forward(np.array([ids[-steps:]], dtype=np.int64))
        ids.append(int(np.argmax(logits[0, -1])))
    return decode(ids, vocab)
