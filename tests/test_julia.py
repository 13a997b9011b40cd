"""MXNet.jl's OptimizationState, schedulers, normalized_gradient, updater and errors."""

import chex
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from strategies import floats

import mxopt
from mxopt import julia as jl
from mxopt.julia import (
    LearningRate,
    Momentum,
    OptimizationState,
    get_learning_rate,
    get_momentum,
)


def test_state_advances_like_mxnet_jl():
    state = OptimizationState(batch_size=32)
    assert state == OptimizationState(32, 0, 0, 0)
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
    assert get_learning_rate(exp, state) == pytest.approx(0.1 * 0.95**t, rel=1e-15)
    assert get_learning_rate(inv, state) == pytest.approx(0.1 * (1 + 0.2 * t) ** -0.75,
                                                          rel=1e-15)
    assert get_learning_rate(LearningRate.Fixed(0.3), state) == 0.3


def test_nadam_scheduler_gives_this_and_next_momentum():
    sched = Momentum.NadamScheduler(mu0=0.9, delta=0.01, gamma=0.4, alpha=0.8)
    mu_t, mu_next = get_momentum(sched, OptimizationState(8, curr_iter=5))
    assert mu_t == pytest.approx(0.9 * (1 - 0.4 * 0.8 ** (5 * 0.01)), rel=1e-15)
    assert mu_next == pytest.approx(0.9 * (1 - 0.4 * 0.8 ** (6 * 0.01)), rel=1e-15)
    default = get_momentum(Momentum.NadamScheduler(), OptimizationState(8))
    assert default == pytest.approx((0.99 * 0.5, 0.99 * (1 - 0.5 * 0.96**0.004)))


def test_schedulers_run_under_jit_on_traced_state():
    exp = LearningRate.Exp(1.0, gamma=0.5, decay_on_iteration=True)
    nadam = Momentum.NadamScheduler()

    @jax.jit
    def at(n):
        state = OptimizationState(8, curr_iter=n)
        return get_learning_rate(exp, state), get_momentum(nadam, state)

    lr, (mu_t, mu_next) = at(jnp.int32(3))
    np.testing.assert_allclose(lr, 0.125)
    want = get_momentum(nadam, OptimizationState(8, curr_iter=3))
    np.testing.assert_allclose((mu_t, mu_next), want, rtol=1e-6)


def test_momentum_schedulers():
    state = OptimizationState(8)
    assert get_momentum(Momentum.Null(), state) == 0.0
    assert get_momentum(Momentum.Fixed(0.9), state) == 0.9


def test_scheduler_resolution_follows_mxnet_jl():
    assert jl.get_lr_scheduler(None, 0.1) == LearningRate.Fixed(0.1)
    exp = LearningRate.Exp(0.5)
    assert jl.get_lr_scheduler(exp, 0.1) is exp
    assert jl.get_momentum_scheduler(None, 0.0) == Momentum.Null()
    assert jl.get_momentum_scheduler(None, 0.9) == Momentum.Fixed(0.9)
    assert jl.get_momentum_scheduler(Momentum.Fixed(0.5), 0.9) == Momentum.Fixed(0.5)
    nadam = Momentum.NadamScheduler(mu0=0.9)
    assert jl.get_momentum_scheduler(None, nadam) is nadam


@pytest.mark.parametrize("make,arg", [
    (lambda: LearningRate.Fixed(-0.1), "eta"),
    (lambda: LearningRate.Exp(-1.0), "eta0"),
    (lambda: LearningRate.Exp(0.1, gamma=1.0), "gamma"),
    (lambda: LearningRate.Inv(0.1, gamma=0.0), "gamma"),
    (lambda: LearningRate.Inv(0.1, power=-1.0), "power"),
    (lambda: Momentum.Fixed(1.2), "momentum"),
    (lambda: Momentum.NadamScheduler(mu0=1.5), "mu0"),
    (lambda: Momentum.NadamScheduler(delta=-0.1), "delta"),
    (lambda: Momentum.NadamScheduler(gamma=2.0), "gamma"),
    (lambda: Momentum.NadamScheduler(alpha=float("nan")), "alpha"),
    (lambda: jl.get_lr_scheduler(0.5, 0.1), "lr_scheduler"),
    (lambda: jl.get_momentum_scheduler(0.5, 0.1), "momentum_scheduler"),
])
def test_bad_scheduler_arguments_name_the_argument(make, arg):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        make()


# ---------------------------------------------------------------------------
# normalized_gradient

@settings(max_examples=25, deadline=None)
@given(batch_size=st.integers(1, 128), grad_clip=st.sampled_from([0, 0.0]) | floats(0.01, 2),
       weight_decay=st.sampled_from([0.0]) | floats(0, 0.5),
       seed=st.integers(0, 2**31 - 1))
def test_normalized_gradient_matches_formula(batch_size, grad_clip, weight_decay, seed):
    rng = np.random.default_rng(seed)
    w = rng.uniform(-2, 2, (3, 5)).astype(np.float32)
    g = (rng.normal(0, 1, (3, 5)) * batch_size).astype(np.float32)
    opts = jl.SGDOptions(grad_clip=grad_clip, weight_decay=weight_decay)
    got = jl.normalized_gradient(opts, OptimizationState(batch_size), jnp.asarray(w),
                                 jnp.asarray(g))
    want = np.float32(1.0 / batch_size) * g
    if grad_clip > 0:
        want = np.clip(want, -np.float32(grad_clip), np.float32(grad_clip))
    if weight_decay > 0:
        want = want + np.float32(weight_decay) * w
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    chex.assert_type(got, jnp.float32)


def test_normalized_gradient_reads_any_options():
    class Options(jl.AbstractOptimizerOptions):
        grad_clip, weight_decay = 0.5, 0.0

    got = jl.normalized_gradient(Options(), OptimizationState(2), jnp.zeros(3),
                                 jnp.array([-4.0, 0.5, 4.0]))
    np.testing.assert_array_equal(got, [-0.5, 0.25, 0.5])


# ---------------------------------------------------------------------------
# get_updater and the AbstractOptimizer protocol

def test_updater_keeps_a_state_per_index():
    opt = jl.ADAM(lr=0.1, weight_decay=0.0)
    opt.state = OptimizationState(1).next_epoch().next_batch()
    updater = jl.get_updater(opt)
    a, b = jnp.ones(3), jnp.ones((2, 2))
    a = updater("a", jnp.ones(3), a)
    a = updater("a", jnp.ones(3), a)
    b = updater(7, jnp.ones((2, 2)), b)
    assert set(updater.states) == {"a", 7}
    assert int(mxopt.update_count(updater.states["a"])) == 2
    assert int(mxopt.update_count(updater.states[7])) == 1
    # Adam's first steps are -lr * sign(g) (up to epsilon): two for a, one for b.
    np.testing.assert_allclose(a, 0.8, rtol=1e-5)
    np.testing.assert_allclose(b, 0.9, rtol=1e-5)


def test_custom_optimizer_works_with_get_updater():
    class Halve(jl.AbstractOptimizer):
        def create_state(self, index, weight):
            return 0

        def update(self, index, weight, grad, state):
            return weight / 2, state + 1

    updater = jl.get_updater(Halve())
    w = updater(0, None, jnp.ones(2))
    w = updater(0, None, w)
    np.testing.assert_array_equal(w, [0.25, 0.25])
    assert updater.states == {0: 2}


def test_update_needs_an_optimization_state():
    opt = jl.SGD()
    with pytest.raises(ValueError, match="OptimizationState"):
        jl.update(opt, 0, jnp.ones(2), jnp.ones(2), None)
    opt.state = OptimizationState(0)
    with pytest.raises(ValueError, match="batch_size"):
        jl.update(opt, 0, jnp.ones(2), jnp.ones(2), None)


def test_update_checks_state_and_grad():
    opt = jl.ADAM()
    opt.state = OptimizationState(4)
    w = jnp.ones(3)
    with pytest.raises(ValueError, match="state.*create_state"):
        jl.update(opt, 0, w, w, None)
    sgd = jl.SGD()
    sgd.state = opt.state
    with pytest.raises(ValueError, match="state.*None"):
        jl.update(sgd, 0, w, w, jl.create_state(opt, 0, w))
    with pytest.raises(ValueError, match="grad"):
        jl.update(opt, 0, w, jnp.ones(4), jl.create_state(opt, 0, w))
    with pytest.raises(TypeError, match="weight"):
        jl.update(sgd, 0, jnp.ones(3, jnp.int32), w, None)
    with pytest.raises(ValueError, match="optimizer"):
        jl.get_updater(jl.SGDOptions())


@pytest.mark.parametrize("name,kwargs,arg", [
    ("SGD", {"lr": 0.0}, "lr"),
    ("SGD", {"momentum": 1.0}, "momentum"),
    ("SGD", {"grad_clip": -1.0}, "grad_clip"),
    ("SGD", {"weight_decay": -1e-4}, "weight_decay"),
    ("SGD", {"lr_scheduler": 0.1}, "lr_scheduler"),
    ("SGD", {"momentum_scheduler": 0.9}, "momentum_scheduler"),
    ("ADAM", {"beta1": 0.0}, "beta1"),
    ("ADAM", {"beta2": 1.0}, "beta2"),
    ("ADAM", {"epsilon": 0.0}, "epsilon"),
    ("AdaGrad", {"epsilon": -1e-6}, "epsilon"),
    ("AdaDelta", {"rho": 1.0}, "rho"),
    ("AdaDelta", {"lr": float("inf")}, "lr"),
    ("AdaMax", {"beta1": 1.5}, "beta1"),
    ("RMSProp", {"rho": 0.0}, "rho"),
    ("Nadam", {"beta2": -0.5}, "beta2"),
    ("Nadam", {"momentum_scheduler": LearningRate.Fixed(0.1)}, "momentum_scheduler"),
])
def test_bad_options_name_the_argument(name, kwargs, arg):
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        getattr(jl, name)(**kwargs)


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError, match="rescale_grad"):
        jl.ADAM(rescale_grad=0.5)


def test_bad_scheduled_values_name_the_scheduler():
    class Negative(jl.AbstractLearningRateScheduler):
        def get_learning_rate(self, state):
            return -0.1

    w = jnp.ones(2)
    cases = [
        (jl.SGD(lr_scheduler=Negative()), "lr_scheduler"),
        (jl.SGD(momentum_scheduler=Momentum.NadamScheduler()), "momentum_scheduler"),
        (jl.Nadam(momentum_scheduler=Momentum.Fixed(0.9)), "momentum_scheduler"),
    ]
    for opt, arg in cases:
        opt.state = OptimizationState(1)
        with pytest.raises(ValueError, match=arg):
            jl.update(opt, 0, w, w, jl.create_state(opt, 0, w))


@pytest.mark.parametrize("name", jl.__all__)
def test_public_name_documents_what_it_mirrors(name):
    doc = getattr(jl, name).__doc__
    assert doc and "MXNet.jl" in doc, name
