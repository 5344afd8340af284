"""Every case of the corpus: id, family, the command line a user would run (`argv` after
`nnparity verify`), the truth ("correct" or "slip", established by ground_truth's finite
differences), a note naming the slip, and the probe ground_truth uses to check it.

Run them all with `python tools/verify_score.py`."""
from __future__ import annotations

PKG = "parity_tests.verify_corpus"


def _case(id, family, argv, truth, note, probe):
    return {"id": id, "family": family, "argv": list(argv), "truth": truth, "note": note, "probe": probe}


# ------------------------------------------------------------------------------ course layers

_LAYERS = [
    # (name stem, forward, backward, ground-truth inputs)
    ("affine", "affine_forward", "affine_backward", "affine3d"),
    ("relu", "relu_forward", "relu_backward", "relu"),
    ("batchnorm", "batchnorm_forward", "batchnorm_backward", "batchnorm"),
    ("layernorm", "layernorm_forward", "layernorm_backward", "layernorm"),
    ("dropout", "dropout_forward", "dropout_backward", "dropout"),
    ("conv", "conv_forward_naive", "conv_backward_naive", "conv"),
    ("maxpool", "max_pool_forward_naive", "max_pool_backward_naive", "maxpool"),
    ("rnn_step", "rnn_step_forward", "rnn_step_backward", "rnn_step"),
    ("rnn", "rnn_forward", "rnn_backward", "rnn"),
    ("word_embedding", "word_embedding_forward", "word_embedding_backward", "word_embedding"),
    ("temporal_affine", "temporal_affine_forward", "temporal_affine_backward", "temporal_affine"),
    ("lstm_step", "lstm_step_forward", "lstm_step_backward", "lstm_step"),
    ("affine_relu", "affine_relu_forward", "affine_relu_backward", "affine2d"),
    ("sigmoid", "sigmoid_forward", "sigmoid_backward", "relu"),
]
_LAYER_BY_STEM = {stem: (fwd, bwd, key) for stem, fwd, bwd, key in _LAYERS}
_LOSS_FNS = [("temporal_softmax_loss", "temporal_softmax"), ("svm_loss", "scores"), ("softmax_loss", "scores")]
_LOSS_FN_KEY = dict(_LOSS_FNS)

_COURSE_SLIPS = [
    # (module, stem or loss function, note)
    ("course_slips_a", "affine", "dw transposed: doutᵀ x is (M, D)"),
    ("course_slips_a", "relu", "relu backward ignores dout"),
    ("course_slips_a", "batchnorm", "batchnorm backward drops the variance path"),
    ("course_slips_a", "batchnorm_alt", "batchnorm _alt misses the −x̂·Σ(dx̂·x̂) term"),
    ("course_slips_a", "layernorm", "layernorm backward sums over the batch axis (batchnorm pasted)"),
    ("course_slips_a", "dropout", "dropout backward forgets the 1/(1 − p) scale"),
    ("course_slips_a", "conv", "conv backward ignores the stride"),
    ("course_slips_a", "maxpool", "max-pool routes to the argmax without the window's stride offset"),
    ("course_slips_a", "rnn_step", "tanh' taken at prev_h instead of next_h"),
    ("course_slips_a", "word_embedding", "dW[x] += dout loses repeated words (np.add.at needed)"),
    ("course_slips_a", "temporal_affine", "dw divided by N"),
    ("course_slips_a", "lstm_step", "gate gradients stacked i, f, g, o; forward slices i, f, o, g"),
    ("course_slips_a", "temporal_softmax_loss", "dx not masked"),
    ("course_slips_a", "svm_loss", "dx misses the correct class's −count"),
    ("course_slips_a", "softmax_loss", "dx not divided by N"),
    ("course_slips_b", "affine", "db averaged instead of summed"),
    ("course_slips_b", "relu", "dout times relu(x) instead of the 0/1 mask"),
    ("course_slips_b", "batchnorm", "dgamma = Σ dout (x̂ missing)"),
    ("course_slips_b", "batchnorm_alt", "the 1/N of the closed form missing"),
    ("course_slips_b", "layernorm", "layernorm backward drops the row-mean term"),
    ("course_slips_b", "dropout", "dropout backward does not use the mask"),
    ("course_slips_b", "conv", "dx un-padded from the corner [:H, :W]"),
    ("course_slips_b", "maxpool", "max-pool backward spreads evenly (average pool)"),
    ("course_slips_b", "rnn", "BPTT does not add dh from the next step"),
    ("course_slips_b", "temporal_affine", "db averaged over N·T"),
    ("course_slips_b", "lstm_step", "dprev_c = dc, the forget gate missing"),
    ("course_slips_b", "temporal_softmax_loss", "dx not divided by N"),
    ("course_slips_b", "svm_loss", "dx not divided by N"),
    ("course_slips_b", "softmax_loss", "sign slip: += 1 at the correct class"),
    ("course_slips_c", "affine", "dx not reshaped back to x's (N, d1, d2)"),
    ("course_slips_c", "batchnorm", "batchnorm backward drops the mean path"),
    ("course_slips_c", "conv", "dw overwritten per image instead of summed over the batch"),
    ("course_slips_c", "rnn_step", "dWx transposed"),
    ("course_slips_c", "lstm_step", "dnext_c not added to the cell gradient"),
    ("course_slips_d", "affine", "dw divided by N"),
    ("course_slips_d", "rnn", "dWh assigned, not accumulated, over time"),
]


def _course_case(module, stem, truth, note):
    mod = f"{PKG}.{module}"
    if stem in _LOSS_FN_KEY:
        return _case(f"course/{module}/{stem}", "course_layers", [f"{mod}:{stem}"], truth, note,
                     ("loss_fn", _LOSS_FN_KEY[stem]))
    if stem == "batchnorm_alt":
        return _case(f"course/{module}/{stem}", "course_layers",
                     [f"{mod}:batchnorm_forward", "--grad", f"{mod}:batchnorm_backward_alt"], truth, note,
                     ("layer", "batchnorm_backward_alt", "batchnorm"))
    fwd, bwd, key = _LAYER_BY_STEM[stem]
    return _case(f"course/{module}/{stem}", "course_layers", [f"{mod}:{fwd}"], truth, note, ("layer", bwd, key))


COURSE = ([_course_case("course_layers", stem, "correct", "") for stem, *_ in _LAYERS]
          + [_course_case("course_layers", "batchnorm_alt", "correct", "")]
          + [_course_case("course_layers", name, "correct", "") for name, _ in _LOSS_FNS]
          + [_course_case(module, stem, "slip", note) for module, stem, note in _COURSE_SLIPS])


# ------------------------------------------------------------------------------ function pairs

_PAIRS = [
    # (function, derivative, convention, slip note in function_slips or None)
    ("sigmoid", "sigmoid_der", "z", "σ(x)(1 − x): x where σ(x) belongs"),
    ("tanh", "deriv_tanh", "z", "1 − tanh(x): square forgotten"),
    ("softplus", "softplusPrime", "z", "σ(−x): sign of the exponent"),
    ("elu", "eluGradient", "z", "negative side returns the forward value α(eˣ − 1)"),
    ("swish", "derivative_swish", "z", "product rule half-applied: + σ missing"),
    ("leaky_relu", "leaky_relu_derivative", "z", "the two slopes swapped"),
    ("relu", "relu_derivative", "z", "returns relu(x) itself"),
    ("gelu", "gelu_derivative", "z", "tanh-GELU: only the first product-rule term"),
    ("gelu_exact", "gelu_exact_grad", "z", "erf-GELU: Φ(x) only, x φ(x) missing"),
    ("softsign", "softsign_prime", "z", "square of the denominator forgotten"),
    ("mish", "mish_derivative", "z", None),
    ("selu", "selu_derivative", "z", "scale applied on the negative side only"),
    ("arctan", "arctan_derivative", "z", "1/(1 − x²): sign in the denominator"),
    ("logistic", "logistic_derivative", "a", "a(1 + a): sign slip in the a-form"),
    ("silu", "silu_grad", "z", None),
    ("log_sigmoid", "log_sigmoid_derivative", "z", None),
    ("gaussian", "gaussian_derivative", "z", None),
    ("bipolar_sigmoid", "bipolar_sigmoid_prime", "z", None),
]

def _pair_case(module, f, df, convention, truth, note):
    return _case(f"function/{module}/{f}", "function_pairs", [f"{PKG}.{module}:{f}"], truth, note, ("pair", df, convention))


_FLAGS = [
    ("flag_sigmoid_a", "a", "correct", ""),
    ("flag_sigmoid_z", "z", "correct", ""),
    ("flag_tanh_a", "a", "correct", ""),
    ("flag_slip_off_by_one", "a", "slip", "a-form derivative (1 − x): the factor x dropped"),
    ("flag_slip_copy_paste", "a", "slip", "tanh forward with sigmoid's x(1 − x) derivative"),
    ("flag_slip_z_sign", "z", "slip", "z-form s(s − 1): sign slip"),
]

FUNCTIONS = ([_pair_case("function_pairs", f, df, conv, "correct", "") for f, df, conv, _ in _PAIRS]
             + [_pair_case("function_slips", f, df, conv, "slip", note) for f, df, conv, note in _PAIRS if note]
             + [_case(f"function/{module}/nonlin", "function_pairs", [f"{PKG}.{module}:nonlin"], truth, note,
                      ("flag", conv)) for module, conv, truth, note in _FLAGS]
             + [_case("function/function_pairs/softmax", "function_pairs",
                      [f"{PKG}.function_pairs:softmax"],
                      "correct", "", ("jacobian", "softmax_jacobian")),
                _case("function/function_slips/softmax", "function_pairs", [f"{PKG}.function_slips:softmax"],
                      "slip", "softmax derivative s(1 − s): the Jacobian's diagonal only",
                      ("jacobian", "softmax_derivative"))])


# ------------------------------------------------------------------------------ loss pairs

_LOSSES = [
    # (loss, gradient, argument order, data, slip note in loss_slips or None)
    ("mse", "mse_prime", "true_pred", "real", "(y_true − y_pred): sign from the argument order"),
    ("mean_squared_error", "mean_squared_error_grad", "pred_target", "real", "the 2 dropped (½·MSE's gradient)"),
    ("binary_cross_entropy", "binary_cross_entropy_prime", "true_pred", "binary", "no ÷N although the loss is a mean"),
    ("cross_entropy_onehot", "cross_entropy_onehot_grad", "pred_target", "onehot", "softmax left out: −y/N"),
    ("cross_entropy", "cross_entropy_grad", "pred_target", "index", "÷N twice"),
    ("categorical_crossentropy", "categorical_crossentropy_prime", "true_pred", "prob",
     "(y_pred − y_true)/N: the softmax+CE shortcut on probabilities"),
    ("hinge", "hinge_prime", "true_pred", "pm1", "sign slip: +y inside the margin"),
    ("huber", "huber_prime", "true_pred", "real", "residual not clipped to ±delta"),
    ("kl_divergence", "kl_divergence_prime", "true_pred", "prob", "sign slip: +p/q"),
    ("mae", "mae_prime", "true_pred", "real", "no ÷N although the loss is a mean"),
    ("bce_with_logits", "bce_with_logits_grad", "pred_target", "logits_binary", "σ(1 − σ) multiplied in again"),
    ("log_cosh", "log_cosh_prime", "true_pred", "real", None),
    ("l2_loss", "l2_loss_grad", "pred_target", "real", None),
    ("rmse", "rmse_prime", "true_pred", "real", None),
]

def _loss_case(module, loss, grad, order, kind, truth, note):
    return _case(f"loss/{module}/{loss}", "loss_pairs", [f"{PKG}.{module}:{loss}"], truth, note, ("loss_pair", grad, order, kind))


LOSSES = ([_loss_case("loss_pairs", *row[:4], "correct", "") for row in _LOSSES]
          + [_loss_case("loss_slips", *row[:4], "slip", row[4]) for row in _LOSSES if row[4]])


# ------------------------------------------------------------------------------ whole networks

NETWORKS = [
    _case("network/nielsen_network", "networks", [f"{PKG}.nielsen_network:Network"], "correct", "",
          ("nielsen", "quadratic")),
    _case("network/nielsen_slip_cost_sign", "networks", [f"{PKG}.nielsen_slip_cost_sign:Network"], "slip",
          "cost_derivative returns y − a", ("nielsen", "quadratic")),
    _case("network/nielsen_slip_output_sp", "networks", [f"{PKG}.nielsen_slip_output_sp:Network"], "slip",
          "output delta without σ'(z_L)", ("nielsen", "quadratic")),
    _case("network/nielsen_slip_hidden_sp", "networks", [f"{PKG}.nielsen_slip_hidden_sp:Network"], "slip",
          "hidden deltas without σ'(z_l)", ("nielsen", "quadratic")),
    _case("network/nielsen_slip_wrong_activation", "networks", [f"{PKG}.nielsen_slip_wrong_activation:Network"],
          "slip", "hidden nabla_w paired with the layer's own activation (wrong layer)", ("nielsen", "quadratic")),
    _case("network/nielsen_network2", "networks", [f"{PKG}.nielsen_network2:Network"], "correct", "",
          ("nielsen", "cost")),
    _case("network/nielsen_network2_slip", "networks", [f"{PKG}.nielsen_network2_slip:Network"], "slip",
          "cross-entropy delta keeps σ'(z)", ("nielsen", "cost")),
    _case("network/nielsen_network2/QuadraticCost", "networks", [f"{PKG}.nielsen_network2:QuadraticCost"],
          "correct", "", ("cost",)),
    _case("network/nielsen_network2/CrossEntropyCost", "networks", [f"{PKG}.nielsen_network2:CrossEntropyCost"],
          "correct", "", ("cost",)),
    _case("network/nielsen_network2_slip/CrossEntropyCost", "networks",
          [f"{PKG}.nielsen_network2_slip:CrossEntropyCost"], "slip", "cross-entropy delta keeps σ'(z)", ("cost",)),
    _case("network/two_layer_net", "networks", [f"{PKG}.two_layer_net:TwoLayerNet"], "correct", "", ("two_layer",)),
    _case("network/two_layer_slip_b1_from_scores", "networks", [f"{PKG}.two_layer_slip_b1_from_scores:TwoLayerNet"],
          "slip", "grads['b1'] from the output layer's dscores (wrong layer)", ("two_layer",)),
    _case("network/two_layer_slip_no_relu_mask", "networks", [f"{PKG}.two_layer_slip_no_relu_mask:TwoLayerNet"],
          "slip", "relu mask not applied to dhidden", ("two_layer",)),
    _case("network/two_layer_slip_reg_factor", "networks", [f"{PKG}.two_layer_slip_reg_factor:TwoLayerNet"],
          "slip", "2·reg·W1 for ½·reg·‖W‖² (visible only with reg > 0; the default is 0)", ("two_layer",)),
    _case("network/min_char_rnn", "networks", [f"{PKG}.min_char_rnn:lossFun"], "correct", "", ("min_char_rnn",)),
    _case("network/min_char_rnn_slip_no_dhnext", "networks", [f"{PKG}.min_char_rnn_slip_no_dhnext:lossFun"],
          "slip", "BPTT without dhnext", ("min_char_rnn",)),
    _case("network/min_char_rnn_slip_whh_state", "networks", [f"{PKG}.min_char_rnn_slip_whh_state:lossFun"],
          "slip", "dWhh with hs[t] instead of hs[t − 1]", ("min_char_rnn",)),
]


# ------------------------------------------------------------------------------ layer classes

_CLASSES = [
    # (class, probe, slip note in layer_class_slips)
    ("FullyConnected", ("class_layer", (3,)), "grads['W'] transposed"),
    ("Linear", ("class_layer", (5, 3)), "bias gradient averaged over the batch"),
    ("ReLU", ("class_layer", (), True), "backward returns the mask, ignoring grad"),
    ("Sigmoid", ("class_layer", ()), "σ(1 − σ) with the input in place of the output"),
    ("Tanh", ("class_layer", ()), "1 − x² with the input"),
    ("BatchNorm1d", ("class_layer", (5,)), "dx = γ dout/σ: batch statistics treated as constants"),
    ("MSELoss", ("class_loss", "real"), "wrong sign"),
    ("SoftmaxCrossEntropy", ("class_loss", "index"), "not divided by N"),
]

_CLASSES_CORRECT_ONLY = [
    # (class, probe, extra flags): Softmax once as written, once with the --kind its refusal asks for
    ("Softmax", ("class_layer", ()), ()),
    ("Softmax", ("class_layer", ()), ("--kind", "vector")),
    ("LeakyReLU", ("class_layer", (), True), ()),
]

CLASSES = ([_case(f"class/layer_classes/{name}", "layer_classes", [f"{PKG}.layer_classes:{name}"], "correct", "",
                  probe) for name, probe, _ in _CLASSES]
           + [_case(" ".join([f"class/layer_classes/{name}", *flags]), "layer_classes",
                    [f"{PKG}.layer_classes:{name}", *flags], "correct", "", probe)
              for name, probe, flags in _CLASSES_CORRECT_ONLY]
           + [_case(f"class/layer_class_slips/{name}", "layer_classes", [f"{PKG}.layer_class_slips:{name}"], "slip",
                    note, probe) for name, probe, note in _CLASSES])


CASES = COURSE + FUNCTIONS + LOSSES + NETWORKS + CLASSES
FAMILIES = ("course_layers", "networks", "layer_classes", "function_pairs", "loss_pairs")
