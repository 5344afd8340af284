"""scratch.data: one-hot, scaling (fit on train, apply to test), the split, the shared batch
order, the built-in datasets and load_dataset's shaping of targets for each loss."""
from __future__ import annotations

import numpy as np
import pytest

from scratch.data import (DATASETS, MinMaxScaler, Standardizer, batch_order, load_dataset, one_hot,
                          train_test_split)
from scratch.spec import SpecError, parse_spec


# A probability loss needs a probability output (the spec refuses bce or cce on any other).
OUTPUT_FOR = {"bce": "sigmoid", "cce": "softmax"}


def data_spec(name, inputs, outputs, loss="mse", dtype="float64", seed=0, **data):
    return parse_spec({"seed": seed, "dtype": dtype,
                       "layers": [{"inputs": inputs, "units": 5, "activation": "tanh"},
                                  {"units": outputs, "activation": OUTPUT_FOR.get(loss, "identity")}],
                       "loss": {"name": loss}, "data": {"name": name, **data}})


# ------------------------------------------------------------------------------- one-hot


def test_one_hot_rows():
    got = one_hot([2, 0, 1, 2], 3)
    expected = np.array([[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=float)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == np.float64


@pytest.mark.parametrize("labels", [[0, 3], [-1, 0], [[0, 1]], [0.5, 1.0]])
def test_one_hot_rejects_bad_labels(labels):
    with pytest.raises(ValueError, match="labels"):
        one_hot(labels, 3)


# ------------------------------------------------------------------------------- scaling


def split_columns():
    rng = np.random.default_rng(3)
    train = np.column_stack([rng.normal(5.0, 2.0, 50), rng.uniform(-3, 7, 50), np.full(50, 4.0)])
    test = np.column_stack([rng.normal(5.0, 2.0, 20), rng.uniform(-3, 7, 20), np.full(20, 9.0)])
    return train, test


def test_standardizer_fits_on_train_and_applies_train_statistics_to_test():
    train, test = split_columns()
    scaler = Standardizer().fit(train)
    scaled = scaler.transform(train)
    np.testing.assert_allclose(scaled[:, :2].mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled[:, :2].std(axis=0), 1.0, rtol=1e-12)
    # the test rows move by the *training* mean and std, computed here by hand
    for j in range(2):
        mean = sum(train[:, j]) / len(train)
        std = (sum((v - mean) ** 2 for v in train[:, j]) / len(train)) ** 0.5
        np.testing.assert_allclose(scaler.transform(test)[:, j], (test[:, j] - mean) / std, rtol=1e-12)
    # a constant column keeps std 1: shifted, not divided by zero
    np.testing.assert_array_equal(scaled[:, 2], 0.0)
    np.testing.assert_array_equal(scaler.transform(test)[:, 2], 5.0)


def test_minmax_maps_train_onto_unit_interval_and_test_by_train_range():
    train, test = split_columns()
    scaler = MinMaxScaler().fit(train)
    scaled = scaler.transform(train)
    np.testing.assert_array_equal(scaled[:, :2].min(axis=0), 0.0)
    np.testing.assert_allclose(scaled[:, :2].max(axis=0), 1.0, rtol=1e-15)
    low, high = train[:, 1].min(), train[:, 1].max()
    np.testing.assert_allclose(scaler.transform(test)[:, 1], (test[:, 1] - low) / (high - low), rtol=1e-12)
    np.testing.assert_array_equal(scaler.transform(test)[:, 2], 5.0)


# --------------------------------------------------------------------------------- split


def test_train_test_split_partitions_rows_and_is_seeded():
    x = np.arange(40, dtype=float).reshape(20, 2)
    y = np.arange(20)
    x_tr, y_tr, x_te, y_te = train_test_split(x, y, 0.25, seed=7)
    assert (len(x_tr), len(x_te)) == (15, 5)
    # rows travel with their labels, and every row lands in exactly one part
    np.testing.assert_array_equal(x_tr[:, 0], 2 * y_tr)
    np.testing.assert_array_equal(x_te[:, 0], 2 * y_te)
    assert sorted(np.concatenate([y_tr, y_te]).tolist()) == list(range(20))
    again = train_test_split(x, y, 0.25, seed=7)
    np.testing.assert_array_equal(again[3], y_te)
    other = train_test_split(x, y, 0.25, seed=8)
    assert not np.array_equal(other[3], y_te)


# ---------------------------------------------------------------------------- batch order


@pytest.mark.parametrize("n, size, shuffle", [(10, 3, False), (10, 3, True), (7, None, True),
                                              (7, 7, False), (5, 9, False), (1, 1, True)])
def test_batch_order_visits_every_row_once_per_epoch(n, size, shuffle):
    for epoch in range(3):
        batches = batch_order(n, size, shuffle, seed=4, epoch=epoch)
        full = n if size is None else min(size, n)
        assert [len(b) for b in batches[:-1]] == [full] * (len(batches) - 1)
        assert 1 <= len(batches[-1]) <= full
        assert len(batches) == -(-n // full)
        assert sorted(np.concatenate(batches).tolist()) == list(range(n))


def test_batch_order_unshuffled_is_in_order_and_shuffled_is_seeded_per_epoch():
    np.testing.assert_array_equal(np.concatenate(batch_order(10, 4, False, 0, 5)), np.arange(10))
    e0 = np.concatenate(batch_order(50, 8, True, seed=1, epoch=0))
    e1 = np.concatenate(batch_order(50, 8, True, seed=1, epoch=1))
    assert not np.array_equal(e0, e1)
    np.testing.assert_array_equal(np.concatenate(batch_order(50, 8, True, seed=1, epoch=1)), e1)
    # epoch e's order needs no replay of earlier epochs: it is default_rng((seed, e)).permutation(n)
    np.testing.assert_array_equal(e1, np.random.default_rng((1, 1)).permutation(50))
    assert not np.array_equal(np.concatenate(batch_order(50, 8, True, seed=2, epoch=1)), e1)


# ------------------------------------------------------------------------------ datasets


def test_xor_is_the_truth_table():
    ds = load_dataset(data_spec("xor", 2, 1))
    np.testing.assert_array_equal(ds.x_train, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.y_train, [[0], [1], [1], [0]])
    assert ds.x_test is None


def test_linear_is_z_equals_2x_on_minus_one_to_one():
    ds = load_dataset(data_spec("linear", 1, 1))
    x = ds.x_train[:, 0]
    assert (x.min(), x.max(), len(x)) == (-1.0, 1.0, 32)
    np.testing.assert_array_equal(ds.y_train[:, 0], 2 * x)


def test_square_is_x_squared_on_minus_one_to_one_with_optional_noise():
    ds = load_dataset(data_spec("square", 1, 1, samples=21))
    x = ds.x_train[:, 0]
    np.testing.assert_allclose(x, np.linspace(-1, 1, 21), rtol=0, atol=0)
    np.testing.assert_array_equal(ds.y_train[:, 0], x * x)
    noisy = load_dataset(data_spec("square", 1, 1, samples=21, noise=0.1))
    residual = noisy.y_train[:, 0] - x * x
    assert 0.02 < residual.std() < 0.3


@pytest.mark.parametrize("name", ["moons", "circles"])
def test_two_class_sets_are_balanced_and_seeded(name):
    ds = load_dataset(data_spec(name, 2, 1, loss="bce_logits", samples=100))
    assert ds.x_train.shape == (100, 2) and ds.y_train.shape == (100, 1)
    assert sorted(np.unique(ds.y_train).tolist()) == [0.0, 1.0]
    assert ds.y_train.sum() == 50
    np.testing.assert_array_equal(load_dataset(data_spec(name, 2, 1, loss="bce_logits", samples=100)).x_train,
                                  ds.x_train)
    assert not np.array_equal(load_dataset(data_spec(name, 2, 1, loss="bce_logits", samples=100, seed=1)).x_train,
                              ds.x_train)


def test_circles_have_two_radii():
    ds = load_dataset(data_spec("circles", 2, 1, noise=0.0))
    radius = np.hypot(ds.x_train[:, 0], ds.x_train[:, 1])
    np.testing.assert_allclose(radius[ds.y_train[:, 0] == 0], 1.0, rtol=1e-12)
    np.testing.assert_allclose(radius[ds.y_train[:, 0] == 1], 0.5, rtol=1e-12)


def test_digits_shapes_range_and_classes():
    ds = load_dataset(data_spec("digits", 64, 10, loss="softmax_cce"))
    assert ds.x_train.shape == (1797, 64) and ds.y_train.shape == (1797,)
    assert ds.y_train.dtype == np.int64
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0
    assert np.bincount(ds.y_train).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


# -------------------------------------------------------------------------- load_dataset


def test_labels_take_the_shape_the_loss_needs():
    indices = load_dataset(data_spec("digits", 64, 10, loss="softmax_cce", samples=50)).y_train
    onehot = load_dataset(data_spec("digits", 64, 10, loss="mse", samples=50)).y_train
    assert indices.shape == (50,) and onehot.shape == (50, 10)
    np.testing.assert_array_equal(onehot.argmax(axis=1), indices)
    np.testing.assert_array_equal(onehot.sum(axis=1), 1.0)
    two_class = load_dataset(data_spec("moons", 2, 2, loss="softmax_cce", samples=40)).y_train
    one_column = load_dataset(data_spec("moons", 2, 1, loss="bce", samples=40)).y_train
    np.testing.assert_array_equal(one_column[:, 0], two_class)


def test_split_then_scale_with_training_statistics_only():
    spec = data_spec("digits", 64, 10, loss="softmax_cce", test_fraction=0.2, scale="standard")
    ds = load_dataset(spec)
    assert (len(ds.x_train), len(ds.x_test)) == (1438, 359)
    raw = load_dataset(data_spec("digits", 64, 10, loss="softmax_cce", test_fraction=0.2))
    np.testing.assert_array_equal(ds.y_test, raw.y_test)
    mean = raw.x_train.mean(axis=0)
    std = raw.x_train.std(axis=0)
    std[std == 0] = 1.0
    np.testing.assert_allclose(ds.x_test, (raw.x_test - mean) / std, rtol=1e-12, atol=1e-12)
    moving = raw.x_train.std(axis=0) > 0
    np.testing.assert_allclose(ds.x_train[:, moving].mean(axis=0), 0.0, atol=1e-12)
    assert np.abs(ds.x_test[:, moving].mean(axis=0)).max() > 1e-3   # test rows were not refitted


def test_minmax_scaling_through_the_spec():
    ds = load_dataset(data_spec("moons", 2, 1, loss="bce", test_fraction=0.25, scale="minmax"))
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == 1.0


def test_float32_spec_casts_features_not_labels():
    ds = load_dataset(data_spec("digits", 64, 10, loss="softmax_cce", dtype="float32", test_fraction=0.1))
    assert ds.x_train.dtype == np.float32 and ds.x_test.dtype == np.float32
    assert ds.y_train.dtype == np.int64
    ds = load_dataset(data_spec("square", 1, 1, dtype="float32"))
    assert ds.y_train.dtype == np.float32


def test_inline_data():
    spec = parse_spec({"layers": [{"inputs": 2, "units": 1, "activation": "sigmoid"}], "loss": {"name": "bce"},
                       "data": {"x": [[0, 1], [1, 0], [1, 1]], "y": [[1], [0], [1]]}})
    ds = load_dataset(spec)
    np.testing.assert_array_equal(ds.x_train, [[0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(ds.y_train, [[1], [0], [1]])


@pytest.mark.parametrize("spec_args, field", [
    (("moons", 3, 1), "layers[0].inputs"),
    (("digits", 64, 3, "softmax_cce"), "layers[1].units"),
    (("digits", 64, 1, "bce"), "layers[1].units"),
    (("square", 1, 2), "layers[1].units"),
    (("xor", 2, 1, "mse", "float64", 0, {"samples": 8}), "data.samples"),
    (("digits", 64, 10, "softmax_cce", "float64", 0, {"samples": 5000}), "data.samples"),
    (("digits", 64, 10, "softmax_cce", "float64", 0, {"noise": 0.1}), "data.noise"),
    (("xor", 2, 1, "mse", "float64", 0, {"test_fraction": 0.1}), "data.test_fraction"),
    (("xor", 2, 1, "mse", "float64", 0, {"test_fraction": 0.9}), "data.test_fraction"),
])
def test_bad_data_names_the_field(spec_args, field):
    *args, data = spec_args if isinstance(spec_args[-1], dict) else (*spec_args, {})
    with pytest.raises(SpecError) as err:
        load_dataset(data_spec(*args, **data))
    assert err.value.field == field
    assert str(err.value).startswith(field + ":") and "\n" not in str(err.value)


def test_spec_without_data_is_refused():
    spec = parse_spec({"layers": [{"inputs": 2, "units": 1}]})
    with pytest.raises(SpecError, match="^data: the spec has no data"):
        load_dataset(spec)


def test_every_dataset_loads_with_its_widths():
    for name, info in DATASETS.items():
        outputs = info.classes if info.classes and info.classes > 2 else 1
        loss = "softmax_cce" if outputs > 1 else ("bce" if info.classes else "mse")
        ds = load_dataset(data_spec(name, info.inputs, outputs, loss=loss))
        assert ds.x_train.shape[1] == info.inputs
        assert np.all(np.isfinite(ds.x_train))
