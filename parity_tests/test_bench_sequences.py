"""The sequence benchmark configurations (char_lstm, tiny_gpt): their specs, batches, FLOP counts,
every side's step, the GPU path on the CPU's device stand-in, and where --save keeps them (never timings)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from nnparity.bench import gpu, run, sides
from nnparity.bench.cli import family_tag, results_stem
from nnparity.bench.configs import CONFIGS, IMAGE_CONFIGS, QUICK_SKIPS, SEQ_CONFIGS, config, config_names
from nnparity.bench.configs import SeqConfig

ROOT = Path(__file__).resolve().parent.parent

#: tiny networks, one per layer kind the FLOP count knows: (layers after the embedding, extra layers)
TINY_BODIES = {
    "lstm": [{"kind": "lstm", "hidden": 6}],
    "lstm_stacked_bidirectional": [{"kind": "lstm", "hidden": 4, "num_layers": 2, "bidirectional": True}],
    "gru": [{"kind": "gru", "hidden": 6}],
    "rnn": [{"kind": "rnn", "hidden": 6}],
    "gpt": [{"kind": "positional_embedding", "max_len": 4},
            {"kind": "transformer", "heads": 2, "causal": True, "mlp_units": 9},
            {"kind": "layernorm", "dims": 1}],
}
VOCAB, DIM, STEPS, BATCH = 7, 8, 3, 2


def tiny_config(tmp_path, body: str, dtype: str = "float32") -> SeqConfig:
    """A SeqConfig on a tiny spec: ids of VOCAB tokens embedded (DIM), the body, a dense layer to VOCAB."""
    spec = {"seed": 0, "dtype": dtype, "input_shape": [STEPS],
            "layers": [{"kind": "embedding", "vocab": VOCAB, "dim": DIM}, *TINY_BODIES[body], {"units": VOCAB}],
            "loss": {"name": "token_cce"}, "optimizer": {"name": "sgd", "lr": 0.01},
            "train": {"epochs": 1, "batch_size": BATCH}}
    path = tmp_path / f"{body}.json"
    path.write_text(json.dumps(spec))
    return SeqConfig(body, BATCH, path)


def test_bench_seq_configs_are_their_specs():
    assert config_names() == [*CONFIGS, *IMAGE_CONFIGS, *SEQ_CONFIGS]
    for name, kinds, steps in (("char_lstm", ["embedding", "lstm", "dense"], 64),
                               ("tiny_gpt", ["embedding", "positional_embedding", "transformer", "transformer",
                                             "layernorm", "dense"], 128)):
        cfg = config(name)
        spec = cfg.spec("float64", "train_adam")
        assert isinstance(cfg, SeqConfig) and cfg.batch == 32 and (cfg.steps, cfg.vocab) == (steps, 65)
        assert [layer.kind for layer in spec.layers] == kinds and spec.loss.name == "token_cce"
        assert spec.optimizer.name == "adam" and spec.dtype == "float64" and spec.outputs == 65
    assert config("char_lstm").spec().layers[1].hidden == 256
    gpt = config("tiny_gpt").spec().layers
    assert (gpt[2].heads, gpt[2].causal, gpt[1].max_len, config("tiny_gpt").spec().shapes[1]) == (4, True, 128, (128, 64))


@pytest.mark.parametrize("name", SEQ_CONFIGS)
def test_bench_seq_batches_are_seeded_ids_and_their_next_tokens(name):
    cfg = config(name)
    batches = cfg.batches("float32", 3)
    again = cfg.batches("float32", 3)
    for (x, y), (x2, y2) in zip(batches, again):
        assert x.shape == y.shape == (cfg.batch, cfg.steps) and x.dtype == y.dtype == np.int64
        assert 0 <= min(x.min(), y.min()) and max(x.max(), y.max()) < cfg.vocab
        assert np.array_equal(x[:, 1:], y[:, :-1])            # each target is the next step's id
        assert np.array_equal(x, x2) and np.array_equal(y, y2)
    assert not np.array_equal(batches[0][0], batches[1][0])
    assert cfg.batches("float32", 1, rows=5)[0][0].shape == (5, cfg.steps)


def test_bench_seq_configs_skipped_by_quick_unless_named():
    assert set(SEQ_CONFIGS) <= set(QUICK_SKIPS)
    assert not set(SEQ_CONFIGS) & set(run.config_names(quick=True))
    assert set(SEQ_CONFIGS) <= set(run.config_names(quick=False))


# ------------------------------------------------------------------------------- FLOP counts


def test_bench_char_lstm_flops_by_hand():
    """N = 32, T = 64, embedding 64, hidden H = 256 (4H = 1024 gate rows), vocab 65, R = N·T rows:
    the LSTM's input projection, dW_ih and dL/dx are R·64·4H multiply-adds each, dW_hh R·H·4H, and
    h W_hhᵀ and dA W_hh N·H·4H each at every step but the first (h_{−1} = 0; no step before it to
    send a gradient to); the dense layer R·H·65 three times."""
    rows, gates = 32 * 64, 4 * 256
    lstm = 3 * rows * 64 * gates + rows * 256 * gates + 2 * 63 * 32 * 256 * gates
    assert config("char_lstm").train_flops == 2 * (lstm + 3 * rows * 256 * 65)


def test_bench_tiny_gpt_flops_by_hand():
    """N = 32, T = 128, D = 64, 4 heads of 16, MLP 256, vocab 65, R = N·T: per block the projections
    (qkv R·D·3D, out R·D·D) and the MLP (2·R·D·256) three times each (forward, dW, dx), and per
    sequence and head T·T·16 for each of QKᵀ, PV, dV, dP, dQ, dK; two blocks; the dense layer
    R·D·65 three times."""
    rows = 32 * 128
    block = 3 * (rows * 64 * 192 + rows * 64 * 64 + 2 * rows * 64 * 256) + 6 * 32 * 4 * 128 * 128 * 16
    assert config("tiny_gpt").train_flops == 2 * (2 * block + 3 * rows * 64 * 65)


def _counted_products(cfg, monkeypatch) -> Counter:
    """(m, k, n) -> how often one scratch SGD train step (the GPU path's, on the strict device
    stand-in) multiplies matrices of those shapes: every `@` and xp.matmul, a stacked product once
    per matrix in its stack."""
    from strict_xp import DeviceArray, strict

    seen = Counter()
    plain = DeviceArray.__matmul__

    def record(a, b):
        stack = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        seen[(a.shape[-2], a.shape[-1], b.shape[-1])] += math.prod(stack)

    def matmul(self, other):
        record(self, other)
        return plain(self, other)

    namespace_matmul = strict.matmul

    def xp_matmul(a, b, **kwargs):
        record(a, b)
        return namespace_matmul(a, b, **kwargs)

    monkeypatch.setattr(DeviceArray, "__matmul__", matmul)
    monkeypatch.setitem(vars(strict), "matmul", xp_matmul)
    step = gpu.scratch_device(cfg, "train_sgd", "float32", strict)
    step()                                  # the first step binds the gradient buffers
    seen.clear()
    step()
    return seen


@pytest.mark.parametrize("body", list(TINY_BODIES))
def test_bench_seq_flops_are_the_products_a_step_does(body, tmp_path, monkeypatch):
    """gemm_list against the products a scratch train step really does, counted on a tiny network of
    each kind: the same shapes as often, less the embedding's backward (its one-hot product of
    shape (vocab, N·T, dim), a scatter-add that the FLOPs leave out)."""
    cfg = tiny_config(tmp_path, body)
    done = _counted_products(cfg, monkeypatch)
    embedding = (VOCAB, BATCH * STEPS, DIM)
    assert done.pop(embedding) == 1
    assert done == Counter((m, k, n) for _, m, k, n in cfg.gemm_list())
    assert cfg.train_flops == sum(2 * m * k * n * times for (m, k, n), times in done.items())


# ------------------------------------------------------------------------------- the sides


@pytest.mark.parametrize("name", SEQ_CONFIGS)
@pytest.mark.parametrize("side", ["scratch", "torch_eager"])
def test_bench_seq_sides_take_a_step(side, name):
    """Each side builds the configuration's Adam train step and runs it."""
    step = getattr(sides, side)(config(name), "train_adam", "float32", 1)
    step()


def test_bench_seq_torch_side_times_the_same_network(tmp_path):
    """torch's model, built as the torch side builds it from scratch's seeded weights, gives scratch's
    loss on the same batch (float64, to the one-pass tolerance): both sides time the same network."""
    import torch

    from scratch.network import Network, build_loss
    from scratch.policy import TOLERANCE, rel_error
    from torch_ref.model import build, build_loss as torch_loss

    for body in ("lstm", "gpt"):
        spec = tiny_config(tmp_path, body, "float64").spec("float64")
        x, y = tiny_config(tmp_path, body, "float64").batches("float64", 1)[0]
        ours = build_loss(spec).forward(Network.from_spec(spec).forward(x), y)
        theirs = torch_loss(spec)(build(spec)(torch.from_numpy(x)), torch.from_numpy(y)).item()
        assert rel_error(theirs, ours) < TOLERANCE["float64"], body


def test_bench_seq_micrograd_skips_with_its_reason():
    with pytest.raises(sides.Skip, match="tiny network only"):
        sides.micrograd(config("char_lstm"), "train_sgd", "float32", 1)


#: run in a process of its own: JAX's threads in the suite's process would meet verify's forks
JAX_LOSSES = """
import json, sys
from nnparity.bench import sides
from nnparity.bench.configs import SeqConfig
from scratch.network import Network, build_loss
jax, jnp = sides._jax("float64")
try:
    sides.jax_jit(SeqConfig("gru", 2, sys.argv[1]), "train_sgd", "float64", 1)
    out = {"gru": "not skipped"}
except sides.Skip as exc:
    out = {"gru": str(exc)}
for path in sys.argv[2:]:
    cfg = SeqConfig("tiny", 2, path)
    spec = cfg.spec("float64")
    x, y = cfg.batches("float64", 1)[0]
    params, _, jax_loss = sides.jax_model(cfg, spec, jax, jnp)
    out[path] = [float(build_loss(spec).forward(Network.from_spec(spec).forward(x), y)),
                 float(jax_loss(params, jnp.asarray(x), jnp.asarray(y)))]
print(json.dumps(out))
"""


def test_bench_seq_jax_loss_is_scratchs(tmp_path):
    """The JAX side's sequence network (embedding, positions, the LSTM as a lax.scan, stacked and
    bidirectional too, causal transformer blocks, layernorm, dense at every step, token cross-entropy)
    gives scratch's loss at float64 from the same weights and batch; a kind it does not write out (GRU)
    is a Skip naming it; skipped where JAX is not installed."""
    pytest.importorskip("jax")
    from scratch.policy import TOLERANCE, rel_error

    paths = [str(tiny_config(tmp_path, body, "float64").path) for body in ("lstm", "lstm_stacked_bidirectional", "gpt")]
    gru = str(tiny_config(tmp_path, "gru", "float64").path)
    proc = subprocess.run([sys.executable, "-c", JAX_LOSSES, gru, *paths], capture_output=True, text=True, timeout=300,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    losses = json.loads(proc.stdout.strip().splitlines()[-1])
    for path in paths:
        scratch_loss, jax_loss = losses[path]
        assert scratch_loss > 1 and rel_error(jax_loss, scratch_loss) < TOLERANCE["float64"], (path, losses[path])
    assert "layer kind 'gru' is not written out here" in losses["gru"]


@pytest.mark.slow
def test_bench_seq_jax_and_compile_sides_take_a_step(tmp_path):
    """The JAX side's SGD step on both full configurations and torch.compile's on the char-LSTM and
    a one-block GPT (a compile of the full tiny_gpt alone takes 11 s), in a process of its own; JAX
    skipped where it is not installed."""
    gpt = tiny_config(tmp_path, "gpt").path
    code = ("import sys\nfrom nnparity.bench import sides; from nnparity.bench.configs import SeqConfig, config\n"
            "steps = [('jax_jit', config('char_lstm')), ('jax_jit', config('tiny_gpt')),\n"
            "         ('torch_compile', config('char_lstm')), ('torch_compile', SeqConfig('gpt', 2, sys.argv[1]))]\n"
            "for side, cfg in steps:\n"
            "    try:\n"
            "        getattr(sides, side)(cfg, 'train_sgd', 'float32', 1)()\n"
            "    except sides.Skip as exc:\n"
            "        assert side == 'jax_jit' and 'not installed' in str(exc), exc\n"
            "print('ok')")
    proc = subprocess.run([sys.executable, "-c", code, str(gpt)], capture_output=True, text=True, timeout=900,
                          cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize("side", ["scratch", "torch_eager"])
def test_bench_seq_memory_of_a_side(side):
    """The memory module measures a side's SGD step on both sequence configurations in its own process."""
    proc = subprocess.run([sys.executable, "-m", "nnparity.bench.memory", side, "float32", "1", *SEQ_CONFIGS],
                          capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in SEQ_CONFIGS:
        assert rows[name]["peak_bytes"] >= rows[name]["delta_bytes"] > 0, rows


# ------------------------------------------------------------------------- the GPU path


def test_bench_seq_gpu_configs_when_named():
    """The GPU times the sequence models when --config names them (the default run keeps to the MLPs)."""
    assert not set(SEQ_CONFIGS) & set(gpu.config_names(quick=False) + gpu.config_names(quick=True))
    for quick in (False, True):
        assert gpu.config_names(quick, named=list(SEQ_CONFIGS)) == list(SEQ_CONFIGS)
        assert gpu.steps_total(quick, named=["tiny_gpt"]) == len(gpu.GPU_OPS) * len(gpu.STEP_SIDES)
    assert gpu.gpu_config("tiny_gpt") == config("tiny_gpt")


@pytest.mark.parametrize("body", ["lstm", "gpt"])
@pytest.mark.parametrize("op", ["forward", "train_sgd", "train_adam"])
def test_bench_seq_gpu_scratch_step_stays_on_the_device(body, op, tmp_path):
    """The scratch side the GPU benchmark times, on a tiny sequence network, run on the strict device
    namespace (which refuses every host round-trip) through the GPU timing helper."""
    from strict_xp import strict

    step = gpu.scratch_device(tiny_config(tmp_path, body), op, "float32", strict)
    row = gpu.timed_step(step, min_run_time=0.02, synchronize=lambda: None)
    assert row["median_s"] > 0 and row["runs"] >= 3


# ------------------------------------------------------------------------------ --save's name


@pytest.mark.parametrize("names, tag", [
    (["tiny", "wide"], ""), (["lenet", "resnet_small"], "cnn"), (SEQ_CONFIGS, "seq"), (["tiny_gpt"], "seq"),
    (["char_lstm", "lenet"], "cnn-seq"), (["small", "char_lstm"], ""), ([], ""),
])
def test_bench_save_name_keeps_the_families_apart(names, tag):
    data = {"machine": {"cpu": "Some CPU @ 2.0GHz", "cores": 2}, "configs": {name: {} for name in names}}
    assert family_tag(names) == tag
    assert results_stem(data, "float32") == "some-cpu-2-0ghz-2core-" + (tag + "-" if tag else "") + "float32"


def test_bench_save_names_of_the_kept_results():
    """The results kept in benchmarks/results are where --save would write them: the MLPs' run under the
    plain name, the CNNs' under -cnn-, so a sequence run (-seq-) overwrites neither."""
    kept = {path.name for path in (ROOT / "benchmarks" / "results").glob("*.json")}
    machine = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2}
    for names in (list(CONFIGS), list(IMAGE_CONFIGS)):
        assert results_stem({"machine": machine, "configs": dict.fromkeys(names)}, "float32") + ".json" in kept
    seq = results_stem({"machine": machine, "configs": dict.fromkeys(SEQ_CONFIGS)}, "float32") + ".json"
    assert seq == "intel-r-xeon-r-processor-2core-seq-float32.json"
