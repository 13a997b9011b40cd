"""Gluon's ``Trainer`` for a port: its habits as pure functions of an mxopt optimizer's state.

MXNet Gluon's ``Trainer`` owns an optimizer and changes it in place; a
:class:`Trainer` here is an immutable value around an mxopt optimizer, and
each method returns what changed. Gluon's calls, and this module's:

* ``gluon.Trainer(net.collect_params(), "nag", {...})``:
  ``trainer = Trainer("nag", {...})``, ``state = trainer.init(params)``;
* ``param.lr_mult = 2`` (``wd_mult`` likewise): ``"lr_mult": {"dense0_weight": 2.0}``
  among the optimizer's arguments;
* ``trainer.step(batch_size)``: ``params, state = trainer.step(grads, state, params,
  batch_size)``;
* ``trainer.allreduce_grads()``, ``nlp.utils.clip_grad_global_norm(params, 1.0)``,
  ``trainer.update(batch_size)``: ``trainer.allreduce_grads(grads, axis_name)``,
  :func:`clip_grad_global_norm`, ``trainer.update(grads, state, params, batch_size)``;
* ``trainer.learning_rate``, ``trainer.set_learning_rate(lr)``:
  ``trainer.learning_rate(state)``, ``state = trainer.set_learning_rate(state, lr)``;
* ``trainer.save_states(f)``, ``trainer.load_states(f)``: ``trainer.save_states(f,
  state)``, ``trainer, state = trainer.load_states(f, params)`` (MXNet's files too).

Gluon numbers its parameters in sorted order of their names and gives each
its own ``lr_mult`` and ``wd_mult`` (1 unless set: every parameter decays,
biases too, unlike Module's rule by name); a dict of params keyed by Gluon's
names has the same order and takes the same multipliers by leaf name.
"""

from __future__ import annotations

import numbers
import os
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import optax

from mxopt import checkpoint, hyperparams, registry, transforms, validation
from mxopt.counting import update_count
from mxopt.mxnet import importer
from mxopt.mxnet.objects import Optimizer, SchedulerConflictError
from mxopt.structure import named_leaves

_RESCALE = "rescale_grad"


def clip_grad_global_norm(grads: optax.Updates, max_norm: float
                          ) -> tuple[optax.Updates, jax.Array]:
    """GluonNLP's ``clip_grad_global_norm``: ``g <- g * (1 / max(1, norm / max_norm))``.

    ``norm = sqrt(sum of every g**2)``, summed in float32. As GluonNLP's, a
    non-finite norm makes every gradient non-finite (GluonNLP warns on the
    host; here nothing leaves the device).

    Returns:
      The clipped gradients, in their dtypes, and the norm before clipping.
    """
    max_norm = validation.positive("max_norm", max_norm)
    norm = jnp.sqrt(sum(jnp.sum(jnp.square(g.astype(jnp.float32)))
                        for g in jax.tree.leaves(grads)))
    scale = 1 / jnp.maximum(1.0, norm / max_norm)
    return jax.tree.map(lambda g: g * scale.astype(g.dtype), grads), norm


class Trainer:
    """Gluon's ``Trainer(params, optimizer, optimizer_params)``, over an mxopt optimizer.

    Args:
      optimizer: a registered name (``"sgd"``, ``"nag"``, ``"bertadam"``,
        ...) built with ``optimizer_params`` as MXNet's keyword arguments,
        or an mxopt optimizer already built (then no ``optimizer_params``,
        as in Gluon); for MXNet's objects (:mod:`mxopt.optimizer`), its
        ``pytree_transformation(params)``.
      optimizer_params: the name's keyword arguments.

    The optimizer's ``rescale_grad`` (1 by default) is Gluon's ``_scale``:
    each update steps with ``rescale_grad / batch_size`` and leaves the
    state's value as it was.
    """

    def __init__(self, optimizer: str | optax.GradientTransformation,
                 optimizer_params: dict[str, Any] | None = None):
        if isinstance(optimizer, str):
            optimizer = registry.create(optimizer, **(optimizer_params or {}))
        elif isinstance(optimizer, Optimizer):
            raise ValueError(f"{optimizer!r} is MXNet's object: give the Trainer its name and "
                             "arguments, or its pytree_transformation(params)")
        elif optimizer_params:
            raise ValueError("optimizer_params must be None when optimizer is built already "
                             "(as in Gluon); give the arguments to the optimizer instead")
        else:
            validation.transformation("optimizer", optimizer)
        if getattr(optimizer, "learning_rate", None) is None:
            raise ValueError(f"{optimizer!r} is no mxopt optimizer with a learning rate: "
                             "build it with mxopt.create or an optimizer's function")
        self.optimizer = optimizer

    def __repr__(self) -> str:
        return f"Trainer({self.optimizer!r})"

    def init(self, params: optax.Params) -> optax.OptState:
        """The optimizer's state for ``params``."""
        state = self.optimizer.init(params)
        if _RESCALE not in hyperparams.get_hyperparams(state):
            raise ValueError(f"{self.optimizer!r} keeps no rescale_grad: build it with "
                             "mxopt.create or an optimizer's function")
        return state

    @staticmethod
    def allreduce_grads(grads: optax.Updates, axis_name: Any = None) -> optax.Updates:
        """Gluon's ``allreduce_grads``: each gradient summed over the devices of ``axis_name``
        (a ``pmap``/``shard_map`` axis). Without one, the gradients as they are: under
        ``jit`` with sharded arrays, the gradient of the whole batch is already the sum."""
        return grads if axis_name is None else jax.lax.psum(grads, axis_name)

    def update(self, grads: optax.Updates, state: optax.OptState, params: optax.Params,
               batch_size: int | jax.Array) -> tuple[optax.Params, optax.OptState]:
        """Gluon's ``update(batch_size)``: one update with ``rescale_grad / batch_size``.

        ``batch_size`` may be traced (a short last batch, padded and masked,
        counted inside the step): a jitted step is compiled once for all
        batch sizes. ``rescale_grad / batch_size`` is computed in float32,
        MXNet's value exactly where ``rescale_grad`` is a power of two (1,
        and the loss scales of AMP); within one float32 rounding otherwise.

        Returns:
          The new params and state.
        """
        if isinstance(batch_size, numbers.Number):
            validation.positive("batch_size", batch_size)
        held = hyperparams.get_hyperparams(state)
        if _RESCALE not in held:
            raise ValueError("state keeps no rescale_grad: it is not the state of an mxopt "
                             "optimizer (make it with trainer.init)")
        stored = hyperparams.stored(state, _RESCALE)
        per_batch = hyperparams.assign(state, {_RESCALE: held[_RESCALE] / batch_size})
        updates, state = self.optimizer.update(grads, per_batch, params)
        return optax.apply_updates(params, updates), hyperparams.assign(state,
                                                                        {_RESCALE: stored})

    def step(self, grads: optax.Updates, state: optax.OptState, params: optax.Params,
             batch_size: int | jax.Array, axis_name: Any = None
             ) -> tuple[optax.Params, optax.OptState]:
        """Gluon's ``step(batch_size)``: :meth:`allreduce_grads`, then :meth:`update`."""
        return self.update(self.allreduce_grads(grads, axis_name), state, params, batch_size)

    def learning_rate(self, state: optax.OptState) -> jax.Array:
        """Gluon's ``trainer.learning_rate``: ``lr_scheduler(num_update)``, the rate of the
        last update (of update 0 before any), or the rate the state holds."""
        return transforms.learning_rate_at(self.optimizer, state, update_count(state))

    def set_learning_rate(self, state: optax.OptState, lr: float) -> optax.OptState:
        """Gluon's ``set_learning_rate(lr)``: the state with ``lr``; refused under an
        ``lr_scheduler``, as MXNet refuses it (:class:`SchedulerConflictError`)."""
        if callable(self.optimizer.learning_rate):
            raise SchedulerConflictError
        return hyperparams.set_hyperparams(state, learning_rate=lr)

    @staticmethod
    def save_states(directory: str | os.PathLike, state: optax.OptState) -> pathlib.Path:
        """Gluon's ``save_states``: ``state`` to a checkpoint (:func:`mxopt.checkpoint.save`),
        replacing the one there, as Gluon overwrites its file; atomic."""
        return checkpoint.save(directory, state, overwrite=True)

    def load_states(self, source: str | os.PathLike, params: optax.Params, *,
                    indices: list[str] | None = None) -> tuple[Trainer, optax.OptState]:
        """Gluon's ``load_states``: a checkpoint of :meth:`save_states`, or MXNet's own file.

        MXNet's file (``Trainer.save_states``) holds the optimizer, which
        replaces this one as in Gluon: its class, hyperparameters, scheduler
        and update count, with MXNet's quirks, so the run continues as MXNet
        would (:mod:`mxopt.mxnet.importer`). What Gluon keeps from the trainer
        is kept: each parameter's ``lr_mult`` and ``wd_mult`` and
        ``rescale_grad`` (Gluon's ``_scale``).

        Args:
          source: a checkpoint's directory or MXNet's states file.
          params: the params the states belong to.
          indices: the leaf names in MXNet's index order; by default sorted,
            Gluon's order for leaves named as Gluon's parameters.

        Returns:
          The trainer to continue with, and its state.
        """
        own = self.init(params)
        if pathlib.Path(source).is_dir():
            return self, checkpoint.restore(source, like=own)
        indices = indices or sorted(name for name, _ in named_leaves(params))
        optimizer = importer.import_optimizer(source)
        held = hyperparams.get_hyperparams(own)
        multiplier = {kind: dict(named_leaves(held[kind])) if kind in held else {}
                      for kind in ("lr_mult", "wd_mult")}
        optimizer.param_dict = {
            index: {kind: float(multiplier[kind].get(name, 1.0)) for kind in multiplier}
            for index, name in enumerate(indices)}
        tx = optimizer.pytree_transformation(params, indices=indices)
        state = importer.import_state(source, params, optimizer, indices=indices)
        state = hyperparams.assign(state, {_RESCALE: hyperparams.stored(own, _RESCALE)})
        return Trainer(tx), state
