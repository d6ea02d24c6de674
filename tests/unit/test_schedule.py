"""The paper's SGD schedules: exponential lr decay with a floor, momentum ramp by epoch."""

from __future__ import annotations

import numpy as np
import pytest

from advgraph.spec.gan import SGD, Adam, MomentumRamp
from advgraph.train.loop import next_minibatch
from advgraph.run.schedule import Schedule
from advgraph.run.stream import DataStream


def test_lr_decay_and_floor_as_the_original():
    s = Schedule(SGD(type="sgd", lr=0.1, lr_decay=1.000004, min_lr=1e-6))
    assert s.lr(0) == 0.1
    assert s.lr(1) == pytest.approx(0.1 / 1.000004)
    assert s.lr(250_000) == pytest.approx(0.1 * 1.000004 ** -250_000)
    # 0.1/1.000004^t reaches 1e-6 at t = ln(1e5)/ln(1.000004) ≈ 2.878M updates.
    t_floor = int(np.ceil(np.log(1e5) / np.log(1.000004)))
    assert s.lr(t_floor + 10) == 1e-6 and s.lr(t_floor - 1000) > 1e-6
    assert s.lr(10**12) == 1e-6  # no overflow however long the run
    steep = Schedule(SGD(type="sgd", lr=0.1, lr_decay=1.01))
    assert steep.lr(10**6) == 0.0


def test_momentum_ramp_like_pylearn2():
    s = Schedule(SGD(type="sgd", lr=0.1, momentum=MomentumRamp(init=0.5, final=0.7, start=1,
                                                                 saturate=250)))
    assert s.momentum(0) == 0.5 and s.momentum(1) == 0.5
    assert s.momentum(250) == pytest.approx(0.7) and s.momentum(400) == pytest.approx(0.7)
    assert s.momentum(125) == pytest.approx(0.5 + 0.2 * 124 / 249)


def test_constant_momentum_and_adam():
    assert Schedule(SGD(type="sgd", lr=0.1, momentum=0.9)).momentum(17) == 0.9
    a = Schedule(Adam(type="adam", lr=1e-3))
    assert a.lr(10_000) == 1e-3 and a.config().kind == "adam"


class _Sink:
    def __init__(self):
        self.orders = []

    def set_order(self, order):
        self.orders.append(order.copy())


def test_data_stream_visits_each_example_once_per_epoch():
    sink = _Sink()
    st = DataStream(n=103, m=10, rng=np.random.default_rng(0))
    first = st.order.copy()
    seen = [first[next_minibatch(st, sink):][:10] for _ in range(10)]
    assert st.epoch == 1 and not sink.orders
    assert len(np.unique(np.concatenate(seen))) == 100  # the partial batch of 3 is dropped
    next_minibatch(st, sink)
    assert len(sink.orders) == 1 and not np.array_equal(sink.orders[0], first)
    assert st.epoch_float == pytest.approx(1.1)


def test_data_stream_says_when_it_reshuffles_and_leaves_the_trainer_to_the_loop():
    st = DataStream(n=20, m=10, rng=np.random.default_rng(0))
    assert [st.next() for _ in range(3)] == [(0, False), (10, False), (0, True)]
