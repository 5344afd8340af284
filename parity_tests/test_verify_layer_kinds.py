"""`nnparity verify --spec` over every layer kind: a correct image, recurrent or attention network
agrees tensor by tensor in train and eval mode, and a planted slip in a convolution, pooling,
normalization, dropout, residual block, recurrent layer, attention or transformer block's backward is
named — the layer's path, its kind and the tensor that first disagrees."""
from __future__ import annotations

import functools
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from nnparity.cli import main
from nnparity.verify.autograd.layerwise import first_wrong_layer
from scratch import attention
from scratch.activations import GELU
from scratch.attention import Attention, row_softmax
from scratch.conv import Conv2d
from scratch.dropout import Dropout
from scratch.embedding import Embedding
from scratch.network import Network
from scratch.normalization import BatchNorm, LayerNorm, normalize_backward
from scratch.pooling import AvgPool2d, GlobalAvgPool, MaxPool2d
from scratch.recurrent import GRU, LSTM
from scratch.residual import Residual
from scratch.spec import load_spec, parse_spec
from scratch.transformer import TransformerBlock
from torch_ref.model import build

REPO = Path(__file__).resolve().parents[1]

# conv2d, layernorm over (C, H, W), avgpool2d, global_avgpool, dropout, dense: the kinds the
# example specs do not hold, with a bias-free convolution before the normalization
MIXED = {"seed": 3, "input_shape": [2, 6, 6], "layers": [
    {"kind": "conv2d", "out_channels": 3, "kernel": 3, "padding": 1, "use_bias": False},
    {"kind": "layernorm", "activation": "tanh"},
    {"kind": "avgpool2d", "kernel": 2},
    {"kind": "conv2d", "out_channels": 4, "kernel": 2, "stride": 1, "activation": "relu"},
    {"kind": "global_avgpool"},
    {"kind": "dropout", "p": 0.25},
    {"units": 3}], "loss": {"name": "softmax_cce"}}


# a tiny GPT: token and positional embeddings, an attention layer and a pre-norm transformer block
# (2 heads each), a final layernorm and the logits at every step
TINY_GPT = {"seed": 1, "input_shape": [5], "layers": [
    {"kind": "embedding", "vocab": 7, "dim": 8},
    {"kind": "positional_embedding", "max_len": 5},
    {"kind": "attention", "heads": 2, "causal": True},
    {"kind": "transformer", "heads": 2, "causal": True, "mlp_units": 12},
    {"kind": "layernorm", "dims": 1},
    {"units": 7}], "loss": {"name": "token_cce"}}


def _spec(name: str, causal: bool = True):
    if name == "tiny_gpt":
        return parse_spec({**TINY_GPT, "layers": [{**layer, "causal": causal} if "heads" in layer else layer
                                                  for layer in TINY_GPT["layers"]]})
    return parse_spec(MIXED) if name == "mixed" else load_spec(REPO / "specs" / f"{name}.toml")


def _layer(net: Network, path: str):
    """The scratch layer at ``layers.<i>[.body.<j> | .projection | .<a transformer block's part>]``."""
    parts = path.split(".")
    layer = net.layers[int(parts[1])]
    if len(parts) == 4:
        layer = layer.body[int(parts[3])]
    elif len(parts) == 3:
        layer = getattr(layer, parts[2])
    return layer


# ------------------------------------------------------------------------------- planted slips


class ConvBiasMean(Conv2d):
    """dL/db averaged over the N·OH·OW positions instead of summed."""

    def backward(self, grad_out, input_grad=True):
        grad = super().backward(grad_out, input_grad)
        self.grad_bias /= grad_out.shape[0] * grad_out.shape[2] * grad_out.shape[3]
        return grad


class ConvWeightFlipped(Conv2d):
    """dL/dW with the kernel flipped (convolution where torch's is a cross-correlation)."""

    def backward(self, grad_out, input_grad=True):
        grad = super().backward(grad_out, input_grad)
        self.grad_weight[...] = self.grad_weight[:, :, ::-1, ::-1].copy()
        return grad


class ConvInputCornerCrop(Conv2d):
    """dL/dx read from the padded gradient's top-left corner, not its interior (the padding's offset
    forgotten)."""

    def _col2im(self, grad_columns):
        self.windows.crop = lambda padded, shape: padded[:, :, :shape[2], :shape[3]]
        try:
            return super()._col2im(grad_columns)
        finally:
            del self.windows.crop


class MaxPoolEveryPosition(MaxPool2d):
    """The gradient sent to every position of the window, not only to its maximum."""

    def backward(self, grad_out, input_grad=True):
        windows = self.windows
        out_h, out_w = grad_out.shape[2:]
        grad_padded = windows.padded_zeros(self.x_shape, grad_out.dtype, self.xp)
        for i, j in windows.offsets():
            grad_padded[windows.offset_slice(i, j, out_h, out_w)] += grad_out
        return windows.crop(grad_padded, self.x_shape)


class AvgPoolNoDivide(AvgPool2d):
    """Each window's gradient not divided by its kh·kw positions."""

    def backward(self, grad_out, input_grad=True):
        return super().backward(grad_out, input_grad) * self.size


class GlobalPoolNoDivide(GlobalAvgPool):
    """dL/dx = dL/dz, the 1/(H·W) of the mean dropped."""

    def backward(self, grad_out, input_grad=True):
        n, c, h, w = self.x_shape
        return super().backward(grad_out, input_grad) * (h * w)


class BatchNormEvalBackward(BatchNorm):
    """Train mode differentiated as if μ_B and σ_B were constants: dL/dx = ĝ·σ⁻¹."""

    def backward(self, grad_out, input_grad=True):
        shape = (1, -1) if grad_out.ndim == 2 else (1, -1, 1, 1)
        axes = (0,) if grad_out.ndim == 2 else (0, 2, 3)
        grad_xhat = self._store_gradients(grad_out, axes, shape)
        return grad_xhat * self.inv_std


class BatchNormGammaWithoutXhat(BatchNorm):
    """dL/dγ = Σ dL/dz, the ⊙ x̂ dropped (dL/dβ's formula)."""

    def backward(self, grad_out, input_grad=True):
        grad = super().backward(grad_out, input_grad)
        axes = (0,) if grad_out.ndim == 2 else (0, 2, 3)
        self.grad_weight[...] = grad_out.sum(axis=axes)
        return grad


class LayerNormOverBatch(LayerNorm):
    """dL/dx with the means of the compact form taken over the batch too."""

    def backward(self, grad_out, input_grad=True):
        axes = tuple(range(grad_out.ndim))
        shape = (1,) + grad_out.shape[1:]
        grad_xhat = self._store_gradients(grad_out, (0,), shape)
        return normalize_backward(grad_xhat, self.xhat, self.inv_std, axes)


class DropoutUnscaled(Dropout):
    """dL/dx = dL/dz ⊙ keep: the 1/(1 − p) of the forward missing from the backward."""

    def backward(self, grad_out, input_grad=True):
        return grad_out * (self.noise != 0)


class ResidualNoSkipGradient(Residual):
    """The skip's gradient dropped: dL/dx = the body's only."""

    def backward(self, grad_out, input_grad=True):
        grad = grad_out
        for j in reversed(range(len(self.body))):
            grad = self.body[j].backward(self.activations[j].backward(grad), input_grad=True)
        if self.projection is not None:
            self.projection.backward(grad_out)
        return grad


PLANTED = [  # spec, layer path, slip, first tensor that disagrees, its part, the diagnosis's start
    # 1/96: the mean over N·OH·OW = 6·4·4 positions
    ("digits_cnn", "layers.2", ConvBiasMean, "dL/db", "conv2d", f"off by a constant factor {1 / 96:g}"),
    ("digits_cnn", "layers.0", ConvWeightFlipped, "dL/dW", "conv2d", None),
    ("digits_cnn", "layers.2", ConvInputCornerCrop, "dL/d(input)", "conv2d", None),
    ("digits_cnn", "layers.3", MaxPoolEveryPosition, "dL/d(input)", "maxpool2d", None),
    ("mixed", "layers.2", AvgPoolNoDivide, "dL/d(input)", "avgpool2d", "off by a constant factor 4"),
    ("mixed", "layers.4", GlobalPoolNoDivide, "dL/d(input)", "global_avgpool", "off by a constant factor 4"),
    ("mixed", "layers.1", LayerNormOverBatch, "dL/d(input)", "layernorm", None),
    ("mixed", "layers.5", DropoutUnscaled, "dL/d(input)", "dropout", None),
    ("digits_resnet", "layers.1", BatchNormGammaWithoutXhat, "dL/dW", "batchnorm", None),
    ("digits_resnet", "layers.2.body.3", BatchNormEvalBackward, "dL/d(input)", "batchnorm", None),
    ("digits_resnet", "layers.3.body.1", BatchNormEvalBackward, "dL/d(input)", "batchnorm", None),
    ("digits_resnet", "layers.2", ResidualNoSkipGradient, "dL/d(input)", "residual", None),
    ("digits_resnet", "layers.3", ResidualNoSkipGradient, "dL/d(input)", "residual", None),
]


@pytest.mark.parametrize("spec_name, path, slip, tensor, part, diagnosis", PLANTED,
                         ids=[f"{c[2].__name__}-{c[1]}" for c in PLANTED])
def test_verify_layer_kinds_planted_slip_is_named(spec_name, path, slip, tensor, part, diagnosis):
    """The slip's layer is the first disagreement, every tensor above it agrees."""
    spec = _spec(spec_name)
    net = Network.from_spec(spec)
    _layer(net, path).__class__ = slip
    report = first_wrong_layer(spec, net=net, batch=6)
    wrong = report.first_wrong
    assert wrong is not None, report.format()
    assert (wrong["path"], wrong["part"], wrong["tensor"]) == (path, part, f"{path}.{tensor}"), report.format()
    assert wrong["layer"] == int(path.split(".")[1])
    assert wrong["message"].startswith(f"{path} (")
    first = next(i for i, row in enumerate(report.rows) if not row.ok)
    assert report.rows[first].name == f"{path}.{tensor}" and all(row.ok for row in report.rows[:first])
    if diagnosis is not None:
        assert wrong["diagnosis"].startswith(diagnosis), wrong["diagnosis"]
    assert f"FAIL: {path} (" in report.format()


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("spec_name", ["digits_cnn", "digits_resnet", "mixed"])
def test_verify_layer_kinds_correct_network_passes(spec_name, mode):
    """Every tensor of every kind, blocks opened, agrees with torch; the network's buffers and mode
    are as they were."""
    spec = _spec(spec_name)
    net = Network.from_spec(spec)
    before = {name: np.array(value) for name, value in net.buffers().items()}
    report = first_wrong_layer(spec, net=net, batch=6, mode=mode)
    assert report.ok, report.format()
    assert len(report.rows) > 2 * len(spec.layers) and all(row.error <= report.tol for row in report.rows)
    assert all(np.array_equal(value, before[name]) for name, value in net.buffers().items())
    assert net.training


def test_verify_layer_kinds_eval_mode_finds_an_eval_slip():
    """In eval mode batchnorm's dL/dx is ĝ·σ⁻¹ with the running σ: a train-mode formula there is found."""
    class TrainFormulaInEval(BatchNorm):
        def backward(self, grad_out, input_grad=True):
            grad_xhat = self._store_gradients(grad_out, (0, 2, 3), (1, -1, 1, 1))
            return normalize_backward(grad_xhat, self.xhat, self.inv_std, (0, 2, 3))

    spec = _spec("digits_resnet")
    net = Network.from_spec(spec)
    net.layers[1].__class__ = TrainFormulaInEval
    assert first_wrong_layer(spec, net=net, batch=6, mode="train").ok
    wrong = first_wrong_layer(spec, net=net, batch=6, mode="eval").first_wrong
    assert (wrong["path"], wrong["tensor"]) == ("layers.1", "layers.1.dL/d(input)")


def test_verify_layer_kinds_float32_uses_float32_tolerance():
    spec = _spec("digits_resnet").replace(dtype="float32")
    report = first_wrong_layer(spec, batch=6)
    assert report.ok and report.tol == 1e-5, report.format()


def test_verify_layer_kinds_cli_on_an_image_spec(capsys):
    """`nnparity verify --spec` on the example image specs (the README's command among them): exit 0,
    every row a pass, the mode named."""
    for mode in ("train", "eval"):
        assert main(["verify", "--spec", str(REPO / "specs" / "digits_resnet.toml"), "--mode", mode]) == 0
        out = capsys.readouterr().out
        assert f"float64, {mode} mode" in out.splitlines()[0] and "layers.3.body.0.dL/dW" in out
        assert out.splitlines()[-1] == "PASS: every layer's gradient agrees with torch"
    assert main(["verify", "--spec", str(REPO / "specs" / "digits_cnn.toml"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] and data["kinds"][:2] == ["conv2d", "maxpool2d"] and data["mode"] == "train"


def test_verify_layer_kinds_cli_refuses_mode_without_spec(capsys):
    assert main(["verify", "examples.custom_ops:Swish", "--mode", "eval"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--mode applies to --spec" in err[0]


def test_verify_layer_kinds_one_row_batch_for_batchnorm_is_refused(tmp_path, capsys):
    """A train-mode batch of one row through a batchnorm over features: one line naming --batch."""
    path = tmp_path / "bn.json"
    path.write_text(json.dumps({"layers": [{"inputs": 3, "units": 4}, {"kind": "batchnorm"}, {"units": 2}],
                                "loss": {"name": "mse"}}))
    assert main(["verify", "--spec", str(path), "--batch", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--batch" in err[0]
    assert main(["verify", "--spec", str(path), "--batch", "1", "--mode", "eval"]) == 0


# ------------------------------------------------------------------------------------ sequences


class LSTMRecurrentWeightHalved(LSTM):
    """dL/dW_hh of the first layer halved (a factor ½ slipped into the recurrent term)."""

    def backward(self, grad_out, input_grad=True):
        grad = super().backward(grad_out, input_grad)
        self.grad_weight_hh_l0 *= 0.5
        return grad


class GRUInputGradWithoutRecurrence(GRU):
    """dL/dx taken from the last step's gradient only, every earlier step's set to zero."""

    def backward(self, grad_out, input_grad=True):
        grad = super().backward(grad_out, input_grad)
        grad[:, :-1] = 0.0
        return grad


class EmbeddingGradientMean(Embedding):
    """dL/dW averaged over the batch instead of summed."""

    def backward(self, grad_out, input_grad=True):
        grad = super().backward(grad_out, input_grad)
        self.grad_weight /= grad_out.shape[0]
        return grad


@pytest.mark.parametrize("spec_name", ["char_lstm", "seq_gru"])
def test_verify_layer_kinds_sequence_network_passes(spec_name):
    """Token ids in (no gradient for them), every recurrent weight and bias compared with torch's."""
    spec = _spec(spec_name)
    report = first_wrong_layer(spec, batch=4)
    assert report.ok, report.format()
    names = [row.name for row in report.rows]
    assert "layers.1.dL/dweight_hh_l0" in names and "layers.0.dL/d(input)" not in names


@pytest.mark.parametrize("spec_name, path, slip, tensor, part", [
    ("char_lstm", "layers.1", LSTMRecurrentWeightHalved, "dL/dweight_hh_l0", "lstm"),
    ("seq_gru", "layers.1", GRUInputGradWithoutRecurrence, "dL/d(input)", "gru"),
    ("char_lstm", "layers.0", EmbeddingGradientMean, "dL/dW", "embedding"),
], ids=["lstm-weight_hh", "gru-input", "embedding-weight"])
def test_verify_layer_kinds_sequence_slip_is_named(spec_name, path, slip, tensor, part):
    spec = _spec(spec_name)
    net = Network.from_spec(spec)
    _layer(net, path).__class__ = slip
    wrong = first_wrong_layer(spec, net=net, batch=4).first_wrong
    assert wrong is not None and (wrong["path"], wrong["part"], wrong["tensor"]) == (path, part, f"{path}.{tensor}")


# ------------------------------------------------------------------------ attention and transformer


class AttentionOutBiasMean(Attention):
    """dL/db_out averaged over the N·T rows instead of summed."""

    def backward(self, grad_out, input_grad=True):
        grad = super().backward(grad_out, input_grad)
        self.grad_out_proj_bias /= grad_out.shape[0] * grad_out.shape[1]
        return grad


ROW_SOFTMAX_BACKWARD = attention.row_softmax_backward


class AttentionSoftmaxBackwardDiagonal(Attention):
    """dS = P ⊙ dP: the softmax's backward without its − rowsum(dP ⊙ P) term (scratch's own
    row_softmax_backward replaced while this backward runs)."""

    def backward(self, grad_out, input_grad=True):
        attention.row_softmax_backward = lambda grad_p, p: p * grad_p
        try:
            return super().backward(grad_out, input_grad)
        finally:
            attention.row_softmax_backward = ROW_SOFTMAX_BACKWARD


class AttentionBackwardUnmasked(Attention):
    """The backward differentiates the softmax without the causal mask: P recomputed from the scores
    with every step allowed (the forward masked)."""

    def backward(self, grad_out, input_grad=True):
        scores = self.q @ self.k.transpose(0, 1, 3, 2) / np.sqrt(self.q.shape[-1])
        self.p = row_softmax(scores, None)
        return super().backward(grad_out, input_grad)


class AttentionBackwardScaledByWidth(Attention):
    """dQ and dK scaled by 1/√D, the whole width, where the forward's scores used 1/√(D/heads)."""

    def backward(self, grad_out, input_grad=True):
        shrink = 1 / np.sqrt(self.heads)
        self.q, self.k = self.q * shrink, self.k * shrink
        return super().backward(grad_out, input_grad)


class LayerNormGammaWithoutXhat(LayerNorm):
    """dL/dγ = Σ dL/dz, the ⊙ x̂ dropped (dL/dβ's formula)."""

    def backward(self, grad_out, input_grad=True):
        grad = super().backward(grad_out, input_grad)
        self.grad_weight[...] = grad_out.reshape(-1, grad_out.shape[-1]).sum(axis=0)
        return grad


class GELUWithoutDensity(GELU):
    """da/dz = Φ(z): the z·φ(z) term dropped."""

    def backward(self, grad_out):
        return grad_out * self.cdf


class TransformerMLPSkipDropped(TransformerBlock):
    """dL/dh = the MLP's dL/d(input) alone: the skip's dL/dz not added back."""

    def backward(self, grad_out, input_grad=True):
        n, steps, width = self.shape
        grad_rows = self.linear1.backward(self.gelu.backward(self.linear2.backward(grad_out.reshape(n * steps, width))))
        grad_h = self.norm2.backward(grad_rows.reshape(n, steps, width))
        return grad_h + self.norm1.backward(self.self_attn.backward(grad_h))


PLANTED_SEQUENCE = [  # layer path, slip, first tensor that disagrees, its part
    ("layers.2", AttentionOutBiasMean, "dL/dout_proj.bias", "attention"),
    ("layers.2", AttentionSoftmaxBackwardDiagonal, "dL/din_proj_weight", "attention"),
    ("layers.3.self_attn", AttentionBackwardUnmasked, "dL/din_proj_weight", "attention"),
    ("layers.2", AttentionBackwardScaledByWidth, "dL/din_proj_weight", "attention"),
    ("layers.3.self_attn", AttentionOutBiasMean, "dL/dout_proj.bias", "attention"),
    ("layers.3.norm2", LayerNormGammaWithoutXhat, "dL/dW", "layernorm"),
    ("layers.3.norm1", LayerNormGammaWithoutXhat, "dL/dW", "layernorm"),
    ("layers.3.gelu", GELUWithoutDensity, "dL/dz", "activation"),
    ("layers.3", TransformerMLPSkipDropped, "dL/dh", "transformer"),
]


def _op_path(path: str) -> str:
    """The op a slip is named by: a transformer block's GELU is its linear1's activation."""
    return path.replace(".gelu", ".linear1")


@pytest.mark.parametrize("path, slip, tensor, part", PLANTED_SEQUENCE,
                         ids=[f"{c[1].__name__}-{c[0]}" for c in PLANTED_SEQUENCE])
def test_verify_layer_kinds_attention_slip_is_named(path, slip, tensor, part):
    """The slip's layer and tensor are the first disagreement, every tensor above it agrees."""
    spec = _spec("tiny_gpt")
    net = Network.from_spec(spec)
    _layer(net, path).__class__ = slip
    report = first_wrong_layer(spec, net=net, batch=3)
    wrong, path = report.first_wrong, _op_path(path)
    assert wrong is not None, report.format()
    assert (wrong["path"], wrong["part"], wrong["tensor"]) == (path, part, f"{path}.{tensor}"), report.format()
    assert wrong["layer"] == int(path.split(".")[1]) and wrong["message"].startswith(f"{path} (")
    first = next(i for i, row in enumerate(report.rows) if not row.ok)
    assert report.rows[first].name == f"{path}.{tensor}" and all(row.ok for row in report.rows[:first])
    assert all(row.ok for row in report.forward) and attention.row_softmax_backward is ROW_SOFTMAX_BACKWARD


def test_verify_layer_kinds_attention_slip_names_its_projection_blocks():
    """A wrong softmax backward, or the scores' scale taken over the whole width, reaches dQ and dK but
    not dV = Pᵀ dC: the message says so; a mask dropped from the backward reaches all three."""
    spec = _spec("tiny_gpt")
    messages = []
    for slip in (AttentionSoftmaxBackwardDiagonal, AttentionBackwardScaledByWidth, AttentionBackwardUnmasked):
        net = Network.from_spec(spec)
        net.layers[2].__class__ = slip
        messages.append(first_wrong_layer(spec, net=net, batch=3).first_wrong["message"])
    assert all("Q and K disagree, V agrees" in message for message in messages[:2]), messages
    assert "Q, K and V disagree" in messages[2], messages[2]


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("causal", [True, False])
def test_verify_layer_kinds_attention_network_passes(causal, mode):
    """Every parameter of the attention layer and of the transformer block (its layernorms, attention
    and MLP, opened layer by layer) has its own row, and every row agrees with torch."""
    spec = _spec("tiny_gpt", causal)
    report = first_wrong_layer(spec, batch=3, mode=mode)
    assert report.ok, report.format()
    names = {row.name for row in report.rows}
    labels = {"weight": "dL/dW", "bias": "dL/db"}
    for i, module in enumerate(build(spec).linears):
        for name, _ in module.named_parameters():
            head, _, last = name.rpartition(".")
            if head.startswith(("self_attn", "linear", "norm")):     # the transformer block's layers
                head, last = head.partition(".")[0], name.partition(".")[2]
                last = labels.get(last, f"dL/d{last}")
            else:
                head, last = "", labels.get(name, f"dL/d{name}")
            assert ".".join(filter(None, (f"layers.{i}", head, last))) in names, (name, sorted(names))
    for joined in ("layers.3.dL/dh", "layers.3.dL/d(input)", "layers.3.linear1.dL/dz"):
        assert joined in names


def test_verify_layer_kinds_attention_float32_uses_float32_tolerance():
    report = first_wrong_layer(_spec("tiny_gpt").replace(dtype="float32"), batch=3)
    assert report.ok and report.tol == 1e-5, report.format()


@pytest.mark.parametrize("change", [{"causal": False}, {"heads": 1}])
def test_verify_layer_kinds_attention_mask_and_heads_are_compared(change):
    """A scratch attention without the spec's causal mask, or with another head count, computes
    another function: the forward differs at that layer, and no gradient is called a pass."""
    spec = _spec("tiny_gpt")
    net = Network.from_spec(spec)
    for name, value in change.items():
        setattr(net.layers[3].self_attn, name, value)
    report = first_wrong_layer(spec, net=net, batch=3)
    wrong = report.first_wrong
    assert wrong is not None and (wrong["part"], wrong["tensor"]) == ("forward", "layers.3.self_attn.z")
    assert report.rows == [] and "FAIL: the forward already differs at layers.3.self_attn.z" in report.format()


def test_verify_layer_kinds_cli_on_the_tiny_gpt(capsys, tmp_path):
    """The README's command: the shipped tiny GPT (two causal transformer blocks) passes, exit 0; a
    planted activation on a block is named, exit 1."""
    spec = REPO / "specs" / "tiny_gpt.toml"
    assert main(["verify", "--spec", str(spec)]) == 0
    out = capsys.readouterr().out
    assert "layers.2.self_attn.dL/din_proj_weight" in out and "layers.3.norm1.dL/dW" in out
    assert out.splitlines()[-1] == "PASS: every layer's gradient agrees with torch"
    path = tmp_path / "gpt.json"
    layers = [{**layer, "activation": "planted_ops:TanhDouble"} if layer.get("kind") == "transformer" else layer
              for layer in TINY_GPT["layers"]]
    path.write_text(json.dumps({**TINY_GPT, "layers": layers}))
    assert main(["verify", "--spec", str(path), "--json"]) == 1
    wrong = json.loads(capsys.readouterr().out)["first_wrong"]
    assert (wrong["path"], wrong["part"], wrong["tensor"]) == ("layers.3", "activation", "layers.3.dL/dz")


def test_verify_layer_kinds_transformer_in_a_residual_body_is_opened():
    """A block inside a residual block's body is opened too: a slip in its MLP's layernorm is named by
    its whole path."""
    spec = parse_spec({"seed": 2, "input_shape": [4, 6], "layers": [
        {"kind": "residual", "body": [{"kind": "transformer", "heads": 3, "mlp_units": 5}]},
        {"kind": "seq_mean"}, {"units": 2}], "loss": {"name": "mse"}})
    report = first_wrong_layer(spec, batch=3)
    assert report.ok and "layers.0.body.0.self_attn.dL/din_proj_weight" in {row.name for row in report.rows}
    net = Network.from_spec(spec)
    net.layers[0].body[0].norm2.__class__ = LayerNormGammaWithoutXhat
    wrong = first_wrong_layer(spec, net=net, batch=3).first_wrong
    assert (wrong["path"], wrong["tensor"]) == ("layers.0.body.0.norm2", "layers.0.body.0.norm2.dL/dW")


class TransformerNorm1Unrecorded(TransformerBlock):
    """Its attention's layernorm run through the class's method, past the instance the check records:
    the same numbers, but nothing of that layer is seen."""

    def forward(self, x):
        norm1 = self.norm1
        self.norm1 = SimpleNamespace(forward=functools.partial(LayerNorm.forward, norm1))
        try:
            return super().forward(x)
        finally:
            self.norm1 = norm1


def test_verify_layer_kinds_a_layer_never_seen_is_not_a_pass():
    spec = _spec("tiny_gpt")
    net = Network.from_spec(spec)
    net.layers[3].__class__ = TransformerNorm1Unrecorded
    report = first_wrong_layer(spec, net=net, batch=3)
    wrong = report.first_wrong
    assert not report.ok and (wrong["part"], wrong["tensor"]) == ("forward", "layers.3.norm1.z")
    assert "the scratch network's forward never ran it" in wrong["message"] and report.rows == []
