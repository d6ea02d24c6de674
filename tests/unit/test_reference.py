"""The NumPy reference ops against closed forms written out independently."""

from __future__ import annotations

import numpy as np

from advgraph import reference as R
from advgraph.ops.activation import sigmoid
from advgraph.ir import Node, Op


def node(op, **attrs):
    return Node("n", op, ("x",), (), attrs)


def test_maxout_groups_consecutive_columns():
    x = np.array([[1.0, 2.0]])
    W = np.arange(12, dtype=float).reshape(2, 6) - 5  # units=3, pieces=2
    b = np.zeros(6)
    y = R.apply(node(Op.MAXOUT, units=3, pieces=2), x, {"n.weight": W, "n.bias": b})
    a = x @ W
    assert y.tolist() == [[max(a[0, 0], a[0, 1]), max(a[0, 2], a[0, 3]), max(a[0, 4], a[0, 5])]]


def test_dense_and_activations():
    x = np.array([[-2.0, 0.5]])
    W, b = np.array([[1.0], [2.0]]), np.array([0.25])
    assert R.apply(node(Op.DENSE, units=1), x, {"n.weight": W, "n.bias": b}).tolist() == [[-0.75]]
    assert R.apply(node(Op.RELU), x, {}).tolist() == [[0.0, 0.5]]
    assert R.apply(node(Op.LEAKY_RELU, slope=0.1), x, {}).tolist() == [[-0.2, 0.5]]
    np.testing.assert_allclose(R.apply(node(Op.TANH), x, {}), np.tanh(x))
    np.testing.assert_allclose(R.apply(node(Op.SIGMOID), x, {}), 1 / (1 + np.exp(-x)))


def test_sigmoid_and_softplus_are_stable_in_the_tails():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    s = sigmoid(x)
    assert np.all(np.isfinite(s)) and s[0] == 0.0 and s[-1] == 1.0 and s[2] == 0.5
    sp = R.softplus(x)
    assert np.isfinite(sp).all() and sp[-1] == 1000.0 and abs(sp[2] - np.log(2)) < 1e-15


def test_dropout_keeps_and_scales():
    x = np.ones((200, 500))
    n = node(Op.DROPOUT, keep=0.8, scale=1.25)
    assert R.apply(n, x, {}, train=False) is x
    y = R.apply(n, x, {}, train=True, rng=np.random.default_rng(0))
    assert set(np.unique(y)) == {0.0, 1.25}
    assert abs((y > 0).mean() - 0.8) < 0.01
    assert abs(y.mean() - 1.0) < 0.02  # the scale keeps the expectation


def test_batchnorm_train_and_eval():
    rng = np.random.default_rng(1)
    x = rng.normal(3.0, 2.0, size=(64, 4))
    p = {"n.weight": np.full(4, 2.0), "n.bias": np.full(4, -1.0),
         "n.running_mean": np.zeros(4), "n.running_var": np.ones(4)}
    n = node(Op.BATCHNORM, eps=1e-5, momentum=0.1)
    y = R.apply(n, x, p, train=True)
    np.testing.assert_allclose(y.mean(0), -1.0, atol=1e-9)
    np.testing.assert_allclose(y.std(0), 2.0, rtol=1e-4)
    np.testing.assert_allclose(R.apply(n, x, p, train=False), x / np.sqrt(1 + 1e-5) * 2 - 1)


def test_reshape():
    x = np.arange(12.0).reshape(2, 6)
    assert R.apply(node(Op.RESHAPE, shape=(2, 3)), x, {}).shape == (2, 2, 3)
