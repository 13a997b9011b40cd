"""MXNet.jl's optimizers against a NumPy transliteration of MXNet.jl's code.

The reference below follows MXNet.jl's ``src/optimizers/*.jl`` line by line:
scalars (learning rate, bias corrections, Nadam's momentum schedule) are
Julia ``Float64`` here Python floats, and each NDArray operation is float32,
with the scalar cast to float32 as MXNet's scalar kernels do. One deliberate
difference, documented in :class:`mxopt.julia.ADAM`: the learning-rate
scheduler is read at every update (MXNet.jl's code reads it once per weight).
"""

import math

import chex
import hypothesis.strategies as st
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from strategies import floats

from mxopt import julia as jl

F32 = np.float32
SHAPES = {0: (3, 4), 1: (5,)}

# Each optimizer's options and defaults, from MXNet.jl's @defstruct declarations.
DEFAULTS = {
    "SGD": dict(lr=0.01, momentum=0.0, grad_clip=0, weight_decay=0.0001, lr_scheduler=None,
                momentum_scheduler=None),
    "ADAM": dict(lr=0.001, grad_clip=0, weight_decay=0.00001, beta1=0.9, beta2=0.999,
                 epsilon=1e-8, lr_scheduler=None),
    "AdaGrad": dict(lr=0.1, epsilon=1e-6, grad_clip=0, weight_decay=0.00001, lr_scheduler=None),
    "AdaDelta": dict(lr=1.0, rho=0.95, epsilon=1e-6, grad_clip=0, weight_decay=0.00001,
                     lr_scheduler=None),
    "AdaMax": dict(lr=0.002, beta1=0.9, beta2=0.999, epsilon=1e-8, grad_clip=0,
                   weight_decay=0.00001, lr_scheduler=None),
    "RMSProp": dict(lr=0.001, rho=0.9, epsilon=1e-6, grad_clip=0, weight_decay=0.00001,
                    lr_scheduler=None),
    "Nadam": dict(lr=0.001, beta1=0.99, beta2=0.999, epsilon=1e-8, grad_clip=0,
                  weight_decay=0.00001, lr_scheduler=None, momentum_scheduler=None),
}


# ---------------------------------------------------------------------------
# The reference: MXNet.jl's schedulers and optimizers in NumPy.

def lr_value(spec, s):
    kind, kw = spec
    if kind == "Fixed":
        return kw["eta"]
    t = s.curr_iter if kw.get("decay_on_iteration") else s.curr_epoch
    if kind == "Exp":
        return kw["eta0"] * kw.get("gamma", 0.9) ** t
    return kw["eta0"] * (1 + kw.get("gamma", 0.9) * t) ** -kw.get("power", 0.5)


def momentum_value(spec, s):
    kind, kw = spec
    if kind == "Null":
        return 0.0
    if kind == "Fixed":
        return kw["momentum"]
    mu0, delta = kw.get("mu0", 0.99), kw.get("delta", 0.004)
    gamma, alpha = kw.get("gamma", 0.5), kw.get("alpha", 0.96)
    return (mu0 * (1.0 - gamma * alpha ** (s.curr_iter * delta)),
            mu0 * (1.0 - gamma * alpha ** ((s.curr_iter + 1) * delta)))


def build_scheduler(spec):
    if spec is None:
        return None
    kind, kw = spec
    if kind in ("Fixed", "Exp", "Inv") and "momentum" not in kw:
        return getattr(jl.LearningRate, kind)(**kw)
    return getattr(jl.Momentum, kind)(**kw)


class Reference:
    """MXNet.jl's optimizer ``name`` with options ``kw`` (scheduler specs, not objects)."""

    def __init__(self, name, kw):
        self.name, self.o = name, {**DEFAULTS[name], **kw}
        o = self.o
        self.lr_spec = o["lr_scheduler"] or ("Fixed", {"eta": o["lr"]})
        if name == "SGD":
            self.mom_spec = o["momentum_scheduler"] or (
                ("Null", {}) if o["momentum"] == 0 else ("Fixed", {"momentum": o["momentum"]}))
        if name == "Nadam":
            self.mom_spec = o["momentum_scheduler"] or ("NadamScheduler", {"mu0": o["beta1"]})
        self.states = {}

    def create_state(self, w):
        z = np.zeros_like(w)
        o = self.o
        return {
            "SGD": lambda: None if self.mom_spec[0] == "Null" else {"mom": z},
            "ADAM": lambda: {"mt": z, "vt": z, "b1p": o["beta1"], "b2p": o["beta2"]},
            "AdaGrad": lambda: {"h": z},
            "AdaDelta": lambda: {"acc": z, "dacc": z},
            "AdaMax": lambda: {"mt": z, "ut": z, "b1p": o["beta1"]},
            "RMSProp": lambda: {"r": z},
            "Nadam": lambda: {"mt": z, "nt": z, "momentum": 1.0, "b2p": o["beta2"]},
        }[self.name]()

    def normalized(self, s, w, g):
        g = F32(1.0 / s.batch_size) * g
        if self.o["grad_clip"] > 0:
            g = np.clip(g, -F32(self.o["grad_clip"]), F32(self.o["grad_clip"]))
        if self.o["weight_decay"] > 0:
            g = g + F32(self.o["weight_decay"]) * w
        return g

    def update(self, index, w, g, s):
        if index not in self.states:
            self.states[index] = self.create_state(w)
        st_, o, name = self.states[index], self.o, self.name
        lr = lr_value(self.lr_spec, s)
        g = self.normalized(s, w, np.asarray(g, F32))
        eps = F32(o.get("epsilon", 0.0))
        if name == "SGD":
            if st_ is None:
                return w + F32(-lr) * g
            st_["mom"] = F32(momentum_value(self.mom_spec, s)) * st_["mom"] + F32(-lr) * g
            return w + st_["mom"]
        if name == "ADAM":
            b1, b2 = o["beta1"], o["beta2"]
            st_["mt"] = F32(b1) * st_["mt"] + F32(1 - b1) * g
            st_["vt"] = F32(b2) * st_["vt"] + F32(1 - b2) * (g * g)
            at = math.sqrt(1.0 - st_["b2p"]) / (1.0 - st_["b1p"])
            st_["b1p"] *= b1
            st_["b2p"] *= b2
            return w + F32(-lr * at) * st_["mt"] / (np.sqrt(st_["vt"]) + eps)
        if name == "AdaGrad":
            st_["h"] = st_["h"] + g * g
            return w + F32(-lr) * g / np.sqrt(st_["h"] + eps)
        if name == "AdaDelta":
            rho = o["rho"]
            st_["acc"] = st_["acc"] * F32(rho) + F32(1 - rho) * (g * g)
            upd = g * np.sqrt(st_["dacc"] + eps) / np.sqrt(st_["acc"] + eps)
            w = w + F32(-lr) * upd
            st_["dacc"] = st_["dacc"] * F32(rho) + F32(1 - rho) * (upd * upd)
            return w
        if name == "AdaMax":
            b1, b2 = o["beta1"], o["beta2"]
            st_["mt"] = st_["mt"] * F32(b1) + F32(1 - b1) * g
            st_["ut"] = np.maximum(F32(b2) * st_["ut"], np.abs(g))
            w = w + F32(-lr / (1 - st_["b1p"])) * st_["mt"] / (st_["ut"] + eps)
            st_["b1p"] *= b1
            return w
        if name == "RMSProp":
            rho = o["rho"]
            st_["r"] = st_["r"] * F32(rho) + F32(1 - rho) * (g * g)
            return w + F32(-lr) * g / np.sqrt(st_["r"] + eps)
        # Nadam
        b1, b2 = o["beta1"], o["beta2"]
        mu_t, mu_t1 = momentum_value(self.mom_spec, s)
        st_["momentum"] *= mu_t
        momentum_next = st_["momentum"] * mu_t1
        grad_prime = g / F32(1.0 - st_["momentum"])
        st_["mt"] = st_["mt"] * F32(b1) + F32(1.0 - b1) * g
        mt = st_["mt"] / F32(1.0 - momentum_next)
        st_["nt"] = st_["nt"] * F32(b2) + F32(1.0 - b2) * (g * g)
        nt = st_["nt"] / F32(1.0 - st_["b2p"])
        st_["b2p"] *= b2
        mt_prime = F32(1.0 - mu_t) * grad_prime + F32(mu_t1) * mt
        return w + F32(-lr) * mt_prime / (np.sqrt(nt) + eps)


# ---------------------------------------------------------------------------
# Random options.

@st.composite
def lr_schedulers(draw):
    kind = draw(st.sampled_from(["Fixed", "Exp", "Inv"]))
    if kind == "Fixed":
        return kind, {"eta": draw(floats(1e-3, 0.5))}
    kw = {"eta0": draw(floats(1e-3, 0.5)), "gamma": draw(floats(0.05, 0.99)),
          "decay_on_iteration": draw(st.booleans())}
    if kind == "Inv":
        kw["power"] = draw(floats(0, 2))
    return kind, kw


@st.composite
def options(draw, name):
    kw = {}
    if draw(st.booleans()):
        kw["lr"] = draw(floats(1e-3, 0.5))
    if draw(st.booleans()):
        kw["lr_scheduler"] = draw(lr_schedulers())
    if draw(st.booleans()):
        kw["grad_clip"] = draw(floats(0.05, 2.0))
    if draw(st.booleans()):
        kw["weight_decay"] = draw(st.sampled_from([0.0]) | floats(0, 0.1))
    if name in ("ADAM", "AdaMax", "Nadam"):
        kw["beta1"] = draw(floats(0.05, 0.99))
        kw["beta2"] = draw(floats(0.5, 0.9999))
    if name in ("AdaDelta", "RMSProp"):
        kw["rho"] = draw(floats(0.05, 0.99))
    if name != "SGD" and draw(st.booleans()):
        kw["epsilon"] = draw(floats(1e-8, 1e-3))
    if name == "SGD":
        kw["momentum"] = draw(st.sampled_from([0.0, 0.9]) | floats(0, 0.95))
        choice = draw(st.sampled_from([None, "Null", "Fixed"]))
        if choice == "Null":
            kw["momentum_scheduler"] = ("Null", {})
        elif choice == "Fixed":
            kw["momentum_scheduler"] = ("Fixed", {"momentum": draw(floats(0, 0.95))})
    if name == "Nadam" and draw(st.booleans()):
        kw["momentum_scheduler"] = ("NadamScheduler", {
            "mu0": draw(floats(0, 0.999)), "delta": draw(floats(0, 0.1)),
            "gamma": draw(floats(0, 1)), "alpha": draw(floats(0, 1))})
    return kw


def build(name, kw):
    kw = {k: build_scheduler(v) if k.endswith("scheduler") else v for k, v in kw.items()}
    return getattr(jl, name)(**kw)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
@settings(max_examples=6, deadline=None)
@given(data=st.data(), batch_size=st.integers(1, 64), seed=st.integers(0, 2**31 - 1))
def test_matches_mxnet_jl_reference(name, data, batch_size, seed):
    kw = data.draw(options(name))
    rng = np.random.default_rng(seed)
    expected = {i: rng.uniform(-1, 1, shape).astype(F32) for i, shape in SHAPES.items()}
    weights = {i: jnp.asarray(w) for i, w in expected.items()}
    opt, ref = build(name, kw), Reference(name, kw)
    updater = jl.get_updater(opt)
    opt.state = jl.OptimizationState(batch_size)
    for _ in range(2):
        opt.state = opt.state.next_epoch()
        for _ in range(3):
            opt.state = opt.state.next_batch()
            for i, shape in SHAPES.items():
                g = (rng.normal(0, 1, shape) * batch_size).astype(F32)
                weights[i] = updater(i, jnp.asarray(g), weights[i])
                expected[i] = ref.update(i, expected[i], g, opt.state)
                # atol: steps of up to lr = 0.5, float32 rounding of a few ulp of them.
                np.testing.assert_allclose(weights[i], expected[i], rtol=2e-5, atol=1e-5,
                                           err_msg=f"{name} {kw} weight {i} at {opt.state}")


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_defaults_are_mxnet_jl_defaults(name):
    opts = getattr(jl, name)().opts
    for field, default in DEFAULTS[name].items():
        if not field.endswith("scheduler"):
            assert getattr(opts, field) == default, field
    assert opts.lr_scheduler == jl.LearningRate.Fixed(DEFAULTS[name]["lr"])


def test_schedulers_override_lr_and_momentum():
    sgd = jl.SGD(lr=0.5, momentum=0.5, lr_scheduler=jl.LearningRate.Fixed(0.1),
                 momentum_scheduler=jl.Momentum.Fixed(0.2))
    assert sgd.opts.lr_scheduler == jl.LearningRate.Fixed(0.1)
    assert sgd.opts.momentum_scheduler == jl.Momentum.Fixed(0.2)
    assert jl.SGD().opts.momentum_scheduler == jl.Momentum.Null()
    assert jl.SGD(momentum=0.9).opts.momentum_scheduler == jl.Momentum.Fixed(0.9)
    assert jl.Nadam(beta1=0.95).opts.momentum_scheduler == jl.Momentum.NadamScheduler(mu0=0.95)


def test_null_momentum_keeps_no_state():
    w = jnp.ones(3)
    assert jl.create_state(jl.SGD(), 0, w) is None
    assert jl.create_state(jl.SGD(momentum=0.9, momentum_scheduler=jl.Momentum.Null()), 0,
                           w) is None
    state = jl.create_state(jl.SGD(momentum_scheduler=jl.Momentum.Fixed(0.0)), 0, w)
    chex.assert_trees_all_equal(state.trace, jnp.zeros(3))
    opt = jl.SGD(lr=0.1, weight_decay=0.0)
    opt.state = jl.OptimizationState(2)
    new, state = jl.update(opt, 0, w, jnp.full(3, 4.0), None)
    assert state is None
    np.testing.assert_allclose(new, 1 - 0.1 * 4.0 / 2)


def test_scheduled_lr_steps():
    # Exp on the epoch: every update within an epoch uses eta0 * gamma^epoch.
    opt = jl.SGD(lr_scheduler=jl.LearningRate.Exp(1.0, gamma=0.5), weight_decay=0.0)
    opt.state = jl.OptimizationState(1)
    w, steps = jnp.zeros(2), []
    for _ in range(3):
        opt.state = opt.state.next_epoch()
        for _ in range(2):
            opt.state = opt.state.next_batch()
            new, _ = jl.update(opt, 0, w, jnp.ones(2), None)
            steps.append(float(w[0] - new[0]))
            w = new
    np.testing.assert_allclose(steps, [0.5, 0.5, 0.25, 0.25, 0.125, 0.125])


def test_adam_reads_its_scheduler_at_every_update():
    # MXNet.jl's code would keep the rate create_state saw (0.05) for ever; its docs, followed
    # here, call the scheduler dynamic. With a constant gradient each Adam step is lr.
    opt = jl.ADAM(lr_scheduler=jl.LearningRate.Exp(0.1, gamma=0.5), weight_decay=0.0,
                  epsilon=1e-12)
    opt.state = jl.OptimizationState(1).next_epoch()
    w = jnp.zeros(2)
    state, steps = jl.create_state(opt, 0, w), []
    for _ in range(2):
        for _ in range(2):
            opt.state = opt.state.next_batch()
            new, state = jl.update(opt, 0, w, jnp.ones(2), state)
            steps.append(float(w[0] - new[0]))
            w = new
        opt.state = opt.state.next_epoch()
    np.testing.assert_allclose(steps, [0.05, 0.05, 0.025, 0.025], rtol=1e-5)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_one_compile_per_kind_and_shape(name):
    # Schedules, options and new instances of one kind reuse the compiled step.
    shape = (7, len(name))  # a shape no other test uses
    compiles = jl._optimizer._jitted_step._cache_size
    before = compiles()
    for lr, eps in ((0.1, 1e-6), (0.01, 1e-3)):
        kw = {"momentum": 0.5} if name == "SGD" else {"epsilon": eps}
        opt = getattr(jl, name)(lr_scheduler=jl.LearningRate.Inv(lr, decay_on_iteration=True),
                                grad_clip=1.0, **kw)
        opt.state = jl.OptimizationState(4)
        w = jnp.ones(shape)
        state = jl.create_state(opt, 0, w)
        for _ in range(3):
            opt.state = opt.state.next_batch()
            w, state = jl.update(opt, 0, w, jnp.full(shape, 0.5), state)
    assert compiles() == before + 1


def test_momentum_schedule_enters_the_buffer():
    # mom = mu * mom - lr * g with mu from the schedule at each update.
    class Doubling(jl.AbstractMomentumScheduler):
        def get_momentum(self, state):
            return 0.1 * state.curr_iter

    opt = jl.SGD(lr=1.0, weight_decay=0.0, momentum_scheduler=Doubling())
    opt.state = jl.OptimizationState(1)
    w = jnp.zeros(1)
    state = jl.create_state(opt, 0, w)
    mom = 0.0
    for i in range(1, 5):
        opt.state = opt.state.next_batch()
        w, state = jl.update(opt, 0, w, jnp.ones(1), state)
        mom = 0.1 * i * mom - 1.0
        np.testing.assert_allclose(state.trace, [mom], rtol=1e-6)
        assert float(state.momentum) == pytest.approx(0.1 * i)


def test_nadam_schedule_near_one_keeps_precision():
    # mu = 0.9999: 1 - prod(mu) is small and must not lose float32 precision.
    class Constant(jl.AbstractMomentumScheduler):
        def get_momentum(self, state):
            return 0.9999, 0.9999

    opt = jl.Nadam(momentum_scheduler=Constant())
    opt.state = jl.OptimizationState(1)
    w = jnp.ones(4)
    state = jl.create_state(opt, 0, w)
    mu_product = 1.0
    for _ in range(200):
        opt.state = opt.state.next_batch()
        w, state = jl.update(opt, 0, w, jnp.ones(4), state)
        mu_product *= 0.9999
        assert float(state.schedule) == pytest.approx(1 - mu_product, rel=1e-6)


class VariantTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_states_and_weights_keep_shapes_and_dtypes(self):
        for name in sorted(DEFAULTS):
            for dtype in (jnp.float32, jnp.float16):
                opt = build(name, {"momentum": 0.9} if name == "SGD" else {})
                opt.state = jl.OptimizationState(4).next_epoch().next_batch()
                w = jnp.linspace(-1, 1, 6, dtype=dtype).reshape(2, 3)
                state = jl.create_state(opt, 0, w)
                step = self.variant(lambda w, g, s, opt=opt: jl.update(opt, 0, w, g, s))
                new, new_state = step(w, jnp.full((2, 3), 0.5, dtype), state)
                chex.assert_shape(new, (2, 3))
                chex.assert_type(new, dtype)
                chex.assert_trees_all_equal_shapes_and_dtypes(new_state, state)
                assert bool(jnp.all(jnp.isfinite(new))), name
                assert not np.array_equal(np.asarray(new), np.asarray(w)), name

    @chex.variants(with_jit=True, without_jit=True)
    def test_traced_optimization_state(self):
        # The schedulers also run on traced counters, as inside a jitted training loop.
        opt = jl.Nadam(lr_scheduler=jl.LearningRate.Exp(0.1, decay_on_iteration=True))
        w, g = jnp.linspace(-1, 1, 4), jnp.linspace(2, -2, 4)

        def run(curr_iter, w, state):
            opt.state = jl.OptimizationState(8, curr_epoch=1, curr_batch=curr_iter,
                                             curr_iter=curr_iter)
            return jl.update(opt, 0, w, g, state)

        got_w, got = self.variant(run)(jnp.int32(3), w, jl.create_state(opt, 0, w))
        want_w, want = run(3, w, jl.create_state(opt, 0, w))
        # Traced, the schedule's float32 residuals are unknown (0): equal to float32 precision.
        chex.assert_trees_all_close((got_w, got.mean, got.var, got.schedule),
                                    (want_w, want.mean, want.var, want.schedule), rtol=1e-6)
