"""Example 7: digits (scikit-learn's 8×8 images, 10 classes): a ReLU MLP, softmax cross-entropy, mini-batch Adam.

The spec is specs/digits.toml: 64-32-10 (ReLU hidden, He-uniform init, logits out),
nn.CrossEntropyLoss's softmax cross-entropy, Adam lr 0.003, batches of 32 in a seeded shuffled
order both sides share, 10 epochs; 20% of the 1,797 images held out, pixels standardized with the
training rows' statistics. Trained by scratch.training.train and torch_ref.training.train
(torch.optim.Adam, autograd); prints the test accuracy, the test loss and the loss of every epoch.

    .venv/bin/python examples/07_digits.py [--json] [--spec FILE]
"""
from __future__ import annotations

from _common import EXAMPLES_DIR, TRAINING_TOL, Comparison, make_parser, run_main, torch_threads
from scratch.data import load_dataset
from scratch.spec import SpecError, load_spec
from scratch.training import train as scratch_train
from torch_ref.training import train as torch_train

DEFAULT_SPEC = EXAMPLES_DIR.parent / "specs" / "digits.toml"


def main(argv=None) -> dict:
    parser = make_parser(__doc__)
    parser.add_argument("--spec", default=str(DEFAULT_SPEC), metavar="FILE",
                        help="a digits spec (.toml or .json); default: specs/digits.toml")
    args = parser.parse_args(argv)
    try:
        spec = load_spec(args.spec)
    except SpecError as err:
        parser.error(f"--spec: {err}")
    if spec.data.name != "digits":
        parser.error(f"--spec: {args.spec} trains on {spec.data.name or 'inline data'!r}, not digits")
    data = load_dataset(spec)
    widths = "-".join("x".join(map(str, shape)) for shape in spec.shapes)   # 64-32-10, or 1x8x8-...
    network = "MLP" if all(layer.kind == "dense" for layer in spec.layers) else "CNN"
    cmp = Comparison("07_digits",
                     f"Example 7: digits, {widths} ReLU {network}, softmax cross-entropy, Adam lr {spec.optimizer.lr:g}, "
                     f"batch {spec.train.batch_size}, {spec.train.epochs} epochs", TRAINING_TOL,
                     notes=[f"{len(data.x_train)} training images, {len(data.x_test)} held out; spec {args.spec}"])
    ours = scratch_train(spec, data, progress=False)
    with torch_threads(1):
        theirs = torch_train(spec, data, progress=False)
    cmp.add("held-out test set", "accuracy", ours.test_accuracy, theirs.test_accuracy)
    cmp.add("held-out test set", "cross-entropy", ours.test_loss, theirs.test_loss)
    for epoch, (a, b) in enumerate(zip(ours.history.epoch_loss, theirs.history.epoch_loss), start=1):
        cmp.add("training", f"epoch {epoch:2d} mean loss", a, b)
    cmp.add("training", "final epoch accuracy", ours.history.epoch_accuracy[-1], theirs.history.epoch_accuracy[-1])
    cmp.add("training", "every step's loss", ours.history.step_loss, theirs.history.step_loss)
    for name in ours.params:
        cmp.add("final parameters", name, ours.params[name], theirs.params[name])
    cmp.result("training seconds (scratch, torch)", [round(ours.seconds, 2), round(theirs.seconds, 2)])
    return cmp.finish(args)


if __name__ == "__main__":
    run_main(main)
