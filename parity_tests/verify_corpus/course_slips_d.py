"""Course layer functions with one learner's slip in each backward (submission D). The forwards
are the correct ones from course_layers; each docstring names the slip."""
import numpy as np

from .course_layers import affine_forward, rnn_forward, rnn_step_backward  # noqa: F401


def affine_backward(dout, cache):
    """dw divided by N, as if the mean of the loss were taken again here."""
    x, w, b = cache
    N = x.shape[0]
    dx = dout.dot(w.T).reshape(x.shape)
    dw = x.reshape(N, -1).T.dot(dout) / N
    db = np.sum(dout, axis=0)
    return dx, dw, db


def rnn_backward(dh, cache):
    """dWh assigned, not accumulated, over the time steps: only t = 0 survives."""
    N, T, H = dh.shape
    D = cache[0][0].shape[1]
    dx = np.zeros((N, T, D))
    dWx = np.zeros((D, H))
    dWh = np.zeros((H, H))
    db = np.zeros(H)
    dprev_h = np.zeros((N, H))
    for t in reversed(range(T)):
        dx_t, dprev_h, dWx_t, dWh_t, db_t = rnn_step_backward(dh[:, t, :] + dprev_h, cache[t])
        dx[:, t, :] = dx_t
        dWx += dWx_t
        dWh = dWh_t
        db += db_t
    return dx, dprev_h, dWx, dWh, db
