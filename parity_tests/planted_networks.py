"""Planted slips in whole networks for the verify tests: each is a correct network from examples/
with one line of its source changed (``planted``); the docstring says what `nnparity verify` must
name. The planted code runs in a copy of the example module's namespace, so a char-RNN's globals
are the example's own arrays."""
from __future__ import annotations

import inspect
import linecache
import textwrap


from examples import char_rnn, nielsen_network
from examples.nielsen_network import Network, Network2
from examples.two_layer_net import TwoLayerNet


def planted(fn, old: str, new: str, name: str):
    """``fn`` (a function or method of an example) with the line ``old`` replaced by ``new``, renamed."""
    source = textwrap.dedent(inspect.getsource(fn))
    assert source.count(old) == 1, f"{old!r} is not one line of {fn.__qualname__}"
    source = source.replace(old, new).replace(f"def {fn.__name__}(", f"def {name}(", 1)
    filename = f"<planted {name}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)   # inspect reads it
    namespace = dict(vars(inspect.getmodule(fn)))
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]


class TwoLayerTransposed(TwoLayerNet):
    """grads['W2'] = dscoresᵀ·hidden, (C, H) -> "grads['W2']: transposed"."""

    loss = planted(TwoLayerNet.loss, 'grads["W2"] = hidden.T.dot(dscores) + self.reg * W2',
                   'grads["W2"] = dscores.T.dot(hidden) + self.reg * W2.T', "loss")


class TwoLayerNoMean(TwoLayerNet):
    """The loss is a mean over the batch, dscores is not divided by N -> "grads['b2']: missing the ÷N"."""

    loss = planted(TwoLayerNet.loss, "dscores /= N", "pass", "loss")


class TwoLayerBiasMean(TwoLayerNet):
    """grads['b2'] = mean of dscores (already divided by N) -> "divided by the batch size N = 5 once too often"."""

    loss = planted(TwoLayerNet.loss, 'grads["b2"] = np.sum(dscores, axis=0)', 'grads["b2"] = np.mean(dscores, axis=0)',
                   "loss")


class TwoLayerNoBiasGradient(TwoLayerNet):
    """grads has no 'b1' -> "grads['b1']: no gradient given", never a pass."""

    loss = planted(TwoLayerNet.loss, 'grads["b1"] = np.sum(dhidden, axis=0)', "pass", "loss")


class TwoLayerInPlace(TwoLayerNet):
    """Correct, but its forward divides probs in place (probs /= ...), which autograd cannot
    differentiate: no torch reference runs, the report says so, finite differences check it."""

    loss = planted(TwoLayerNet.loss, "probs = probs / np.sum(probs, axis=1, keepdims=True)",
                   "probs /= np.sum(probs, axis=1, keepdims=True)", "loss")


class NetworkSign(Network):
    """cost_derivative returns y − a -> "nabla_w[1]: wrong sign"."""

    cost_derivative = planted(Network.cost_derivative, "return output_activations - y",
                              "return y - output_activations", "cost_derivative")


class CrossEntropySign(nielsen_network.CrossEntropyCost):
    delta = staticmethod(planted(nielsen_network.CrossEntropyCost.delta, "return a - y", "return y - a", "delta"))


class Network2DeltaSign(Network2):
    """The cost class's delta returns y − a -> "nabla_w[1]: wrong sign"."""

    def __init__(self, sizes):
        super().__init__(sizes, cost=CrossEntropySign)


class NetworkWrongLayer(Network):
    """The hidden layers' nabla_w takes the layer's own output instead of its input,
    activations[-l] for activations[-l - 1] -> "nabla_w[0]: shape mismatch"."""

    backprop = planted(Network.backprop, "nabla_w[-l] = np.dot(delta, activations[-l - 1].transpose())",
                       "nabla_w[-l] = np.dot(delta, activations[-l].transpose())", "backprop")


# Back through time without dhnext: dh = Whyᵀ·dy only -> "dbh: ..." (the first wrong from the output back).
lossFunNoCarry = planted(char_rnn.lossFun, "dh = np.dot(Why.T, dy) + dhnext", "dh = np.dot(Why.T, dy)",
                         "lossFunNoCarry")
# dWhh from h_t instead of h_{t-1} -> "dWhh: ..." (dby, dbh, dWhy above it agree).
lossFunWrongStep = planted(char_rnn.lossFun, "dWhh += np.dot(dhraw, hs[t - 1].T)", "dWhh += np.dot(dhraw, hs[t].T)",
                           "lossFunWrongStep")
