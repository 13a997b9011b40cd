"""MXNet.jl's OptimizationState and schedulers, against their documented formulas."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mxopt.julia import LearningRate, Momentum, OptimizationState, get_learning_rate, get_momentum


def test_state_advances_like_mxnet_jl():
    state = OptimizationState(batch_size=32)
    seen = []
    for _ in range(2):
        state = state.next_epoch()
        for _ in range(3):
            state = state.next_batch()
            seen.append((state.curr_epoch, state.curr_batch, state.curr_iter))
    assert seen == [(1, 1, 1), (1, 2, 2), (1, 3, 3), (2, 1, 4), (2, 2, 5), (2, 3, 6)]
    assert state.batch_size == 32


@pytest.mark.parametrize("on_iteration", [False, True])
def test_exp_and_inv_follow_their_formulas(on_iteration):
    state = OptimizationState(16, curr_epoch=3, curr_batch=2, curr_iter=42)
    t = 42 if on_iteration else 3
    exp = LearningRate.Exp(0.1, gamma=0.95, decay_on_iteration=on_iteration)
    inv = LearningRate.Inv(0.1, gamma=0.2, power=0.75, decay_on_iteration=on_iteration)
    np.testing.assert_allclose(get_learning_rate(exp, state), 0.1 * 0.95**t, rtol=1e-6)
    np.testing.assert_allclose(get_learning_rate(inv, state), 0.1 * (1 + 0.2 * t) ** -0.75,
                               rtol=1e-6)
    assert float(get_learning_rate(LearningRate.Fixed(0.3), state)) == pytest.approx(0.3)


def test_schedulers_run_under_jit_on_traced_state():
    sched = LearningRate.Exp(1.0, gamma=0.5, decay_on_iteration=True)

    @jax.jit
    def lr_after(n):
        state = OptimizationState(8, curr_iter=n)
        return get_learning_rate(sched, state)

    np.testing.assert_allclose(lr_after(jnp.int32(3)), 0.125)


def test_momentum_schedulers():
    state = OptimizationState(8)
    assert float(get_momentum(Momentum.Null(), state)) == 0.0
    assert float(get_momentum(Momentum.Fixed(0.9), state)) == pytest.approx(0.9)
    with pytest.raises(ValueError, match="momentum"):
        Momentum.Fixed(1.2)
    with pytest.raises(ValueError, match="eta0"):
        LearningRate.Exp(-1.0)
