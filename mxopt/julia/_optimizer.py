"""MXNet.jl's optimizer protocol: options, ``normalized_gradient``, ``create_state``,
``update`` and ``get_updater``.

An MXNet.jl optimizer holds its options (``opt.opts``) and the
:class:`~mxopt.julia.OptimizationState` its training loop sets on it
(``opt.state``). For each weight, ``create_state(opt, index, weight)`` makes
the per-weight state and ``update(opt, index, weight, grad, state)`` applies
one step. JAX arrays are immutable, so ``update`` returns the new weight and
state instead of writing them in place::

    opt = mxopt.julia.SGD(lr=0.1, momentum=0.9)
    opt.state = mxopt.julia.OptimizationState(batch_size=32)
    state = mxopt.julia.create_state(opt, 0, weight)
    for epoch in range(epochs):
        opt.state = opt.state.next_epoch()
        for grad in batches:
            opt.state = opt.state.next_batch()
            weight, state = mxopt.julia.update(opt, 0, weight, grad, state)

The learning rate and momentum are read from ``opt.state`` by the
schedulers on the host at each update and passed to a jitted step as float32
scalars, so a changing schedule does not recompile it. The step is compiled
once per optimizer kind, weight shape and dtype (and whether the options
clip, decay or keep a momentum buffer), and shared by every instance.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable, Hashable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mxopt import transforms, validation
from mxopt.julia._schedulers import (
    AbstractLearningRateScheduler,
    OptimizationState,
    get_learning_rate,
    get_lr_scheduler,
)
from mxopt.structure import TreeSignature, check_float_leaves

Hyperparameters = dict[str, Any]  # name -> f32 scalar (numpy, or a JAX array when traced)


class AbstractOptimizerOptions:
    """Base type of optimizer options (MXNet.jl: ``AbstractOptimizerOptions``).

    :func:`normalized_gradient` reads ``grad_clip`` and ``weight_decay`` from
    any subclass.
    """


class AbstractOptimizer:
    """Base type of optimizers (MXNet.jl: ``AbstractOptimizer``).

    A subclass has ``opts`` (its options) and ``state``, the
    :class:`~mxopt.julia.OptimizationState` the training loop sets and
    replaces as it advances (``None`` until then), and implements
    ``create_state(index, weight)`` and
    ``update(index, weight, grad, state) -> (weight, state)``, which
    :func:`create_state`, :func:`update` and :func:`get_updater` call.
    """

    opts: AbstractOptimizerOptions
    state: OptimizationState | None = None

    def create_state(self, index: Hashable, weight: chex.ArrayTree) -> chex.ArrayTree:
        raise NotImplementedError

    def update(self, index: Hashable, weight: chex.ArrayTree, grad: chex.ArrayTree,
               state: chex.ArrayTree) -> tuple[chex.ArrayTree, chex.ArrayTree]:
        raise NotImplementedError


def _f32(value: Any) -> Any:
    """A hyperparameter as a float32 scalar: numpy on the host, JAX when traced."""
    if isinstance(value, jax.Array):
        return jnp.asarray(value, jnp.float32)
    return np.float32(value)


def _checked(name: str, value: Any, check: Callable[[str, Any], Any]) -> Any:
    """A scheduled value, checked by ``check`` when known on the host (not traced), as
    float32 holds it: one decayed below float32's normal numbers is checked as the 0 it
    becomes.

    Returns it as a Python number, or unchanged when traced.
    """
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, jax.Array | np.ndarray | np.generic) and np.ndim(value) == 0:
        value = value.item()
    check(name, validation.flushed(value))
    return value


def _check_batch_size(batch_size: Any) -> None:
    _checked("batch_size", batch_size, lambda n, v: validation.count(n, v, minimum=1))


def _apply_once(tx: optax.GradientTransformation, updates: chex.ArrayTree,
           weight: chex.ArrayTree) -> chex.ArrayTree:
    """Applies a transform whose state holds only hyperparameters, built afresh."""
    return tx.update(updates, tx.init(weight), weight)[0]


def _normalize(grad: chex.ArrayTree, weight: chex.ArrayTree, h: Hyperparameters,
               clipping: bool, decaying: bool) -> chex.ArrayTree:
    chain = [transforms.rescale(h["rescale_grad"])]
    if clipping:
        chain.append(transforms.clip(h["clip_gradient"]))
    if decaying:
        chain.append(transforms.add_decayed_weights(h["wd"]))
    return _apply_once(optax.chain(*chain), grad, weight)


_normalize_jit = jax.jit(_normalize, static_argnames=("clipping", "decaying"))


def _normalizing_hyperparameters(opts: AbstractOptimizerOptions,
                                 state: OptimizationState) -> Hyperparameters:
    _check_batch_size(state.batch_size)
    return {"rescale_grad": _f32(1.0 / state.batch_size), "clip_gradient": _f32(opts.grad_clip),
            "wd": _f32(opts.weight_decay)}


def normalized_gradient(opts: AbstractOptimizerOptions, state: OptimizationState,
                        weight: chex.ArrayTree, grad: chex.ArrayTree) -> chex.ArrayTree:
    """The gradient every MXNet.jl optimizer steps with (MXNet.jl: ``normalized_gradient``).

    Elementwise::

        g = grad / batch_size
        g = clip(g, -grad_clip, grad_clip)      # only if grad_clip > 0
        g = g + weight_decay * weight           # only if weight_decay > 0

    MXNet.jl's ``grad_scale`` is ``1 / state.batch_size``: gradients summed
    over a mini-batch become its mean. Clipping comes before weight decay.

    Args:
      opts: options with ``grad_clip`` and ``weight_decay``.
      state: the :class:`~mxopt.julia.OptimizationState` (its ``batch_size``).
      weight: the weight (an array, or a pytree of arrays).
      grad: its gradient, shaped like ``weight``.

    Returns:
      The normalized gradient, in ``grad``'s dtype.
    """
    h = _normalizing_hyperparameters(opts, state)
    return _normalize_jit(grad, weight, h, clipping=opts.grad_clip > 0,
                          decaying=opts.weight_decay > 0)


def _descend(direction: chex.ArrayTree, weight: chex.ArrayTree,
             h: Hyperparameters) -> chex.ArrayTree:
    """``-lr * direction``, the step MXNet.jl adds to the weight."""
    return _apply_once(transforms.scale_by_learning_rate(h["learning_rate"]), direction, weight)


def option(default: object, rule: Callable[[str, object], object]) -> Any:
    """An options field with the check MXNet.jl asserts of it, ``rule(name, value)``
    (one of :mod:`mxopt.validation`'s), run when the options are made."""
    return dataclasses.field(default=default, metadata={"rule": rule})


@dataclasses.dataclass(frozen=True, kw_only=True)
class _Options(AbstractOptimizerOptions):
    """The options every MXNet.jl optimizer has, checked as MXNet.jl asserts them; a
    subclass declares the checks of its own with :func:`option`."""

    lr: float
    grad_clip: float = 0
    weight_decay: float
    lr_scheduler: AbstractLearningRateScheduler | None = None

    def __post_init__(self):
        validation.positive("lr", self.lr)
        validation.non_negative("grad_clip", self.grad_clip)
        validation.non_negative("weight_decay", self.weight_decay)
        get_lr_scheduler(self.lr_scheduler, self.lr)
        for field in dataclasses.fields(self):
            if "rule" in field.metadata:
                field.metadata["rule"](field.name, getattr(self, field.name))


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a jitted step computes, apart from its arguments' shapes and dtypes.

    Hyperparameter values are not part of it: they reach the step as float32
    scalars (``h``) and inside the per-weight state, from which mxopt's
    transforms read them. So optimizers of one kind with equal plans share
    one compile per weight shape and dtype, whatever their options.
    """

    kind: type[_Optimizer]
    clipping: bool  # grad_clip > 0
    decaying: bool  # weight_decay > 0
    stateful: bool  # False only for SGD with Momentum.Null


@functools.partial(jax.jit, static_argnums=0)
def _jitted_step(plan: _Plan, weight: chex.ArrayTree, grad: chex.ArrayTree,
                 state: chex.ArrayTree, h: Hyperparameters):
    return plan.kind._apply(plan, weight, grad, state, h)


def _normalized(plan: _Plan, grad: chex.ArrayTree, weight: chex.ArrayTree,
                h: Hyperparameters) -> chex.ArrayTree:
    """:func:`normalized_gradient` inside a step, after checking ``grad`` fits ``weight``."""
    TreeSignature(weight, "weight").check(grad, "grad")
    check_float_leaves(weight, "weight")
    check_float_leaves(grad, "grad")
    return _normalize(grad, weight, h, clipping=plan.clipping, decaying=plan.decaying)


class _Optimizer(AbstractOptimizer):
    """An MXNet.jl optimizer whose update is a jitted pure step.

    Subclasses set ``Options`` and implement :meth:`_direction`: the
    optimizer is then ``w <- w - lr * direction(normalized_gradient)``, and
    the per-weight state is the direction's. SGD, whose learning rate sits
    inside its momentum, overrides ``create_state`` and ``_apply`` instead.
    """

    Options: type[_Options]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # help(SGD) shows SGDOptions' keyword arguments and defaults.
        cls.__signature__ = inspect.signature(cls.Options)

    def __init__(self, **kwargs):
        self.opts = self._resolve(self.Options(**kwargs))
        self.state = None

    def __repr__(self):
        return f"{type(self).__name__}({self.opts!r})"

    def _resolve(self, opts: _Options) -> _Options:
        """The options with their schedulers resolved, as MXNet.jl's constructors do."""
        return dataclasses.replace(opts, lr_scheduler=get_lr_scheduler(opts.lr_scheduler,
                                                                        opts.lr))

    @classmethod
    def _direction(cls, opts: _Options) -> optax.GradientTransformation:
        """The transform from the normalized gradient to the step, before ``-lr``."""
        raise NotImplementedError

    @property
    def _stateful(self) -> bool:
        return True

    @property
    def _plan(self) -> _Plan:
        return _Plan(type(self), clipping=self.opts.grad_clip > 0,
                     decaying=self.opts.weight_decay > 0, stateful=self._stateful)

    def _optimization_state(self) -> OptimizationState:
        if not isinstance(self.state, OptimizationState):
            raise ValueError(f"{type(self).__name__}.state must be an OptimizationState: set "
                             "opt.state = mxopt.julia.OptimizationState(batch_size) before "
                             f"updating, got {self.state!r}")
        return self.state

    def _hyperparameters(self, state: OptimizationState) -> Hyperparameters:
        """This update's hyperparameters, from the options and the schedulers at ``state``."""
        lr = _checked("learning rate from lr_scheduler",
                      get_learning_rate(self.opts.lr_scheduler, state), validation.non_negative)
        return {**_normalizing_hyperparameters(self.opts, state), "learning_rate": _f32(lr)}

    @classmethod
    def _scheduled(cls, state: chex.ArrayTree, h: Hyperparameters) -> chex.ArrayTree:
        """The direction's state with this update's scheduled values put in."""
        del h
        return state

    def create_state(self, index, weight):
        del index
        return self._direction(self.opts).init(weight)

    @classmethod
    def _apply(cls, plan: _Plan, weight, grad, state, h):
        # Any instance's transform will do: its update reads the hyperparameters from ``state``.
        transform = cls._direction(cls.Options())
        direction, state = transform.update(_normalized(plan, grad, weight, h),
                                            cls._scheduled(state, h))
        return optax.apply_updates(weight, _descend(direction, weight, h)), state

    def update(self, index, weight, grad, state):
        del index
        if (state is None) == self._stateful:
            want = "its state from create_state(opt, index, weight)" if self._stateful else "None"
            raise ValueError(f"state: {type(self).__name__} with these options takes {want}, "
                             f"got {type(state).__name__}")
        return _jitted_step(self._plan, weight, grad, state,
                            self._hyperparameters(self._optimization_state()))


def create_state(optimizer: AbstractOptimizer, index: Hashable,
                 weight: chex.ArrayTree) -> chex.ArrayTree:
    """The state ``optimizer`` keeps for one weight (MXNet.jl: ``create_state``).

    Args:
      optimizer: the optimizer.
      index: the weight's index (MXNet.jl's ``Int``; any hashable key).
      weight: the weight.

    Returns:
      Zero-initialised state (moments, ...) shaped like ``weight``, or
      ``None`` where the optimizer keeps none (SGD with ``Momentum.Null``).
    """
    return optimizer.create_state(index, weight)


def update(optimizer: AbstractOptimizer, index: Hashable, weight: chex.ArrayTree,
           grad: chex.ArrayTree,
           state: chex.ArrayTree) -> tuple[chex.ArrayTree, chex.ArrayTree]:
    """One step of ``optimizer`` on one weight (MXNet.jl: ``update``).

    MXNet.jl updates ``weight`` and ``state`` in place; JAX arrays are
    immutable, so the new ones are returned. The schedulers read
    ``optimizer.state``, the :class:`~mxopt.julia.OptimizationState`.

    Returns:
      ``(new_weight, new_state)``.
    """
    return optimizer.update(index, weight, grad, state)


class Updater:
    """A callable ``updater(index, grad, weight) -> new weight`` holding per-index states.

    MXNet.jl's ``get_updater`` returns such a closure; :func:`get_updater`
    builds this one. The state of weight ``index`` is made by
    :func:`create_state` at its first update and kept in ``states``.
    """

    def __init__(self, optimizer: AbstractOptimizer):
        self.optimizer = optimizer
        self.states: dict[Hashable, chex.ArrayTree] = {}

    def __call__(self, index: Hashable, grad: chex.ArrayTree,
                 weight: chex.ArrayTree) -> chex.ArrayTree:
        if index not in self.states:
            self.states[index] = create_state(self.optimizer, index, weight)
        weight, self.states[index] = update(self.optimizer, index, weight, grad,
                                            self.states[index])
        return weight


def get_updater(optimizer: AbstractOptimizer) -> Callable[..., chex.ArrayTree]:
    """An updater function keeping each weight's state (MXNet.jl: ``get_updater``).

    ``updater(index, grad, weight)`` creates the state of ``index`` on first
    use, applies :func:`update` and returns the new weight (MXNet.jl updates
    it in place); the states are in ``updater.states``. Set
    ``optimizer.state`` to an :class:`~mxopt.julia.OptimizationState` first.
    """
    if not isinstance(optimizer, AbstractOptimizer):
        raise ValueError(f"optimizer must be an AbstractOptimizer, got {optimizer!r}")
    return Updater(optimizer)
