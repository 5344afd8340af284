"""What `verify --spec` compares: the network's ops, blocks opened, and the order of their tensors.

An op is a layer with its scratch and torch halves: a top-level layer, a residual block's body layer
or projection, or a transformer block's layernorms, attention and MLP layers. Backprop order, from
the output back, for each op: its activation's dL/dz, each parameter's gradient (an attention's
out_proj before its in_proj), its dL/d(input). A block lists its inner ops' tensors, then its joins,
where the skip's gradient is added back:

- residual, z = f(x) + s(x): the body from the last layer back, the projection, then
  dL/d(input) = the body's + the skip's;
- transformer (pre-norm), h = x + A(LN1(x)), z = h + MLP(LN2(h)): linear2, linear1 (its GELU's
  dL/dz), norm2, then dL/dh = dL/dz + the MLP's dL/d(input); self_attn, norm1, then
  dL/d(input) = dL/dh + the attention's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from scratch.network import Network
from scratch.spec import Spec


@dataclass
class Op:
    """One layer of the network, its activation, and where it sits."""

    path: str                 # layers.3, layers.3.body.1, layers.3.projection, layers.3.self_attn
    top: int                  # the top-level layer it belongs to
    kind: str
    where: str                # how the messages name it
    activation: str | None    # spec name; None: a layer without one (a projection, a block's layer)
    layer: object             # the scratch layer
    scratch_act: object       # its scratch activation (None without one)
    module: object            # the torch module
    torch_act: object
    inner: list = field(default_factory=list)    # a block's inner ops, in forward order
    rows: bool = False        # scratch runs it on (N·T, features) rows of torch's (N, T, features)


@dataclass
class Entry:
    """One compared gradient: where both passes keep it, the row's name, the op it belongs to."""

    key: str                  # the passes' key: layers.3.linear1.weight, layers.3.self_attn.z
    label: str                # the row's name: layers.3.linear1.dL/dW, layers.3.dL/dh
    op: Op
    part: str                 # activation | the op's kind


TENSOR = {"z": "dL/dz", "weight": "dL/dW", "bias": "dL/db", "input": "dL/d(input)"}


def tensor_name(key: str) -> str:
    return TENSOR.get(key, f"dL/d{key}")


# A transformer block's layers, in the order its forward runs them: (name, kind, role, rows).
TRANSFORMER_PARTS = (("norm1", "layernorm", "the attention's layernorm", False),
                     ("self_attn", "attention", "the self-attention", False),
                     ("norm2", "layernorm", "the MLP's layernorm", False),
                     ("linear1", "dense", "the MLP's first layer", True),
                     ("linear2", "dense", "the MLP's second layer", True))
TRANSFORMER_LAYERS = [name for name, *_ in TRANSFORMER_PARTS] + ["gelu"]   # what a block must hold to be opened


def network_ops(spec: Spec, net: Network, model) -> list[Op]:
    """The network's ops, top-level layers in order, each block holding its inner ops."""
    n = len(spec.layers)
    ops = []
    for i, (layer_spec, layer, act, module, torch_act) in enumerate(
            zip(spec.layers, net.layers, net.activations, model.linears, model.activations)):
        where = f"layers.{i} (layer {i + 1} of {n})"
        ops.append(_opened(Op(f"layers.{i}", i, layer_spec.kind, where, layer_spec.activation, layer, act,
                              module, torch_act), layer_spec))
    return ops


def _opened(op: Op, layer_spec) -> Op:
    """The op with its inner ops, when it is a block (a block's inner blocks opened too)."""
    if layer_spec.kind == "residual" and hasattr(op.layer, "body"):
        op.inner = _residual_ops(op, layer_spec)
    elif layer_spec.kind == "transformer" and all(hasattr(op.layer, name) for name in TRANSFORMER_LAYERS):
        op.inner = _transformer_ops(op)
    return op


def _residual_ops(op: Op, layer_spec) -> list[Op]:
    layer, module, m = op.layer, op.module, len(layer_spec.body)
    inner = [_opened(Op(f"{op.path}.body.{j}", op.top, body.kind,
                        f"{op.path}.body.{j} (body layer {j + 1} of {m} of the residual block {op.where})",
                        body.activation, layer.body[j], layer.activations[j], module.body[j], module.activations[j]),
                     body)
             for j, body in enumerate(layer_spec.body)]
    if layer_spec.projection:
        inner.append(Op(f"{op.path}.projection", op.top, "projection",
                        f"{op.path}.projection (the skip's projection of the residual block {op.where})",
                        None, layer.projection, None, module.projection, None))
    return inner


def _transformer_ops(op: Op) -> list[Op]:
    """norm1, self_attn, norm2, linear1 with its GELU, linear2: scratch's TransformerBlock and torch's
    nn.TransformerEncoderLayer hold them under the same names."""
    inner = []
    for name, kind, role, rows in TRANSFORMER_PARTS:
        gelu = name == "linear1"
        where = f"{op.path}.{name} ({role} of the transformer block {op.where})"
        inner.append(Op(f"{op.path}.{name}", op.top, kind, where, "gelu" if gelu else None, getattr(op.layer, name),
                        op.layer.gelu if gelu else None, getattr(op.module, name),
                        op.module.activation if gelu else None, rows=rows))
    return inner


def walk(ops: list[Op]):
    for op in ops:
        yield op
        yield from walk(op.inner)


def forward_order(ops: list[Op]):
    """(label, op) for each layer's output z and activation a, in the order forward computes them."""
    for op in ops:
        yield from forward_order(op.inner)
        yield f"{op.path}.z", op
        if op.activation is not None:
            yield f"{op.path}.a", op


def parameter_names(op: Op) -> list[str]:
    """The op's parameters as its torch module names them, in the order backprop computes them."""
    names = [name for name, _ in op.module.named_parameters()]
    if op.kind == "attention":
        names.sort(key=lambda name: not name.startswith("out_proj."))
    return names


def backward_order(ops: list[Op]):
    """Each compared gradient (an Entry) in the order backprop computes them, from the output back."""
    for op in reversed(ops):
        if op.activation is not None:
            yield _entry(op, "z", "activation")
        if op.inner:
            yield from _joined(op)
            continue
        for name in parameter_names(op):
            yield _entry(op, name, op.kind)
        if op.kind != "embedding":     # an embedding's input is token ids: no gradient
            yield _entry(op, "input", op.kind)


def _entry(op: Op, key: str, part: str) -> Entry:
    return Entry(f"{op.path}.{key}", f"{op.path}.{tensor_name(key)}", op, part)


def _joined(op: Op):
    """A block's inner tensors and its joins."""
    if op.kind == "transformer":
        attention, mlp = op.inner[:2], op.inner[2:]
        yield from backward_order(mlp)
        # dL/dh is what the attention's output receives, on both sides
        yield Entry(f"{op.path}.self_attn.z", f"{op.path}.dL/dh", op, op.kind)
        yield from backward_order(attention)
    else:
        yield from backward_order(op.inner)
    yield _entry(op, "input", op.kind)


JOINS = {  # (block kind, tensor) -> what its join computes and from what
    ("residual", "dL/d(input)"): "its residual join — dL/d(input) disagrees while the body's and the skip's "
                                 "gradients agree (dL/dx = the body's dL/d(input) + the skip's)",
    ("transformer", "dL/dh"): "its MLP's skip join — dL/dh disagrees while dL/dz and the MLP's dL/d(input) "
                              "(norm2's) agree (h = x + A(LN1(x)), z = h + MLP(LN2(h)): dL/dh = dL/dz + "
                              "the MLP's dL/d(input))",
    ("transformer", "dL/d(input)"): "its attention's skip join — dL/d(input) disagrees while dL/dh and the "
                                    "attention's dL/d(input) (norm1's) agree (dL/dx = dL/dh + the attention's)",
}


def join_message(entry: Entry) -> str:
    return f"{entry.op.where}: " + JOINS[entry.op.kind, entry.label.rpartition(".")[2]]
