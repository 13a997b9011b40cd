"""Carrying a half-trained MXNet run over to mxopt: its optimizer and its states.

MXNet saves the optimizer's state of each parameter with
``Updater.get_states`` (what ``gluon.Trainer.save_states`` and
``Module.save_optimizer_states`` write): a dict from parameter index to the
state the optimizer's ``create_state`` made, and, with ``dump_optimizer``,
the optimizer itself. :mod:`mxopt.mxnet.files` reads those files without
MXNet; this module turns what they hold into mxopt's:

* :func:`import_optimizer` rebuilds the pickled optimizer as an
  :class:`mxopt.optimizer.Optimizer`: class, hyperparameters, scheduler,
  multipliers, ``idx2name`` and the update counts;
* :func:`import_state` puts the states into the optax state of a params
  pytree, so that training continues along the trajectory MXNet would have
  taken; :func:`index_state` does it for one index, and
  :class:`mxopt.optimizer.Updater` uses it for ``set_states``.

How MXNet's ``create_state`` nests the state of one parameter is part of
each optimizer's declaration (:attr:`mxopt.registry.MXNet.state`): Adam's is
``(mean, var)``, and ``(weight32, (mean, var))`` with ``multi_precision``
for a float16 weight; SGD's is ``mom`` (None at momentum 0), and
``(mom, weight32)``. An optimizer whose saved states have no mxopt
equivalent says why there (``nadam``, ``lars``, ``lbsgd``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mxopt import counting, gluoncv, registry, schedules
from mxopt.mxnet.files import MXNetObject, MXNetStates, load_states
from mxopt.mxnet.objects import Optimizer, class_for
from mxopt.mxnet.tables import Index
from mxopt.structure import map_states, named_leaves, with_fields

Source = str | os.PathLike | bytes | MXNetStates

# MXNet's base-class attributes that mxopt's constructors call by another name
# (an optimizer's own are in its declaration: mxopt.registry.MXNet.renamed).
_RENAMED = {"lr": "learning_rate", "idx2name": "param_idx2name"}
_SCHEDULERS = {
    "FactorScheduler": ("step", "factor", "stop_factor_lr"),
    "MultiFactorScheduler": ("step", "factor"),
    "PolyScheduler": ("max_update", "final_lr", "pwr"),
    "CosineScheduler": ("max_update", "final_lr"),
}


class MXNetImportError(ValueError):
    """MXNet's saved states do not fit the optimizer or params they are imported into."""


def _states(source: Source) -> MXNetStates:
    return source if isinstance(source, MXNetStates) else load_states(source)


def _plain(value: Any) -> Any:
    """NumPy scalars (MXNet pickles whatever the user passed) as Python numbers, exactly; so
    too a one-element float array, as GluonNLP's BERTAdam keeps ``rescale_grad`` for its
    kernel once it has updated."""
    if isinstance(value, np.ndarray) and value.shape == (1,) and value.dtype.kind == "f":
        return value.item()
    return value.item() if isinstance(value, np.generic) else value


def import_scheduler(scheduler: MXNetObject, num_update: int = 0
                     ) -> schedules.LRScheduler | gluoncv.LRScheduler | gluoncv.LRSequential:
    """The pure mxopt scheduler equal to a pickled ``mx.lr_scheduler`` object, or to a
    GluonCV ``LRScheduler`` or ``LRSequential`` (:func:`import_gluoncv_scheduler`).

    MXNet's schedulers mutate their ``base_lr`` as they decay; the rate
    given at construction survives as ``warmup_final_lr``, and the pure
    scheduler computes any count's rate from it. A Poly or Cosine scheduler
    saved at ``num_update >= max_update`` returns the ``base_lr`` it holds
    from then on (``final_lr``, or a stale rate; see ``stale_rate``).
    """
    if scheduler.module == "gluoncv.utils.lr_scheduler":
        return import_gluoncv_scheduler(scheduler)
    if scheduler.name not in _SCHEDULERS:
        raise MXNetImportError(f"no mxopt scheduler for MXNet's {scheduler.name}; mxopt has "
                               f"{', '.join(_SCHEDULERS)} and GluonCV's LRScheduler and "
                               "LRSequential")
    a = {("pwr" if k == "power" else k): _plain(v) for k, v in scheduler.attributes.items()}
    missing = sorted({*_SCHEDULERS[scheduler.name], "warmup_final_lr", "warmup_steps",
                      "warmup_begin_lr", "warmup_mode"} - set(a))
    if missing:
        raise MXNetImportError(f"MXNet's {scheduler.name} was saved without {missing}")
    kwargs = {name: a[name] for name in _SCHEDULERS[scheduler.name]}
    if ("max_update" in kwargs and num_update >= kwargs["max_update"]
            and a.get("base_lr", kwargs["final_lr"]) != kwargs["final_lr"]):
        kwargs["stale_rate"] = a["base_lr"]
    return schedules.BY_NAME[scheduler.name](
        base_lr=a["warmup_final_lr"], warmup_steps=a["warmup_steps"],
        warmup_begin_lr=a["warmup_begin_lr"], warmup_mode=a["warmup_mode"], **kwargs)


def import_gluoncv_scheduler(scheduler: MXNetObject
                             ) -> gluoncv.LRScheduler | gluoncv.LRSequential:
    """The pure scheduler equal to a pickled GluonCV ``LRScheduler`` or ``LRSequential``.

    GluonCV's schedulers compute each rate from the count and the arguments
    they keep (``niters`` and ``step`` in iterations, as ``nepochs`` and
    ``step_epoch`` made them); only ``learning_rate``, the last rate, changes.
    """
    a = {k: _plain(v) for k, v in scheduler.attributes.items()}
    if scheduler.name == "LRSequential":
        members = a.get("schedulers")
        if not (isinstance(members, list) and members
                and all(isinstance(m, MXNetObject) and m.name == "LRScheduler" for m in members)):
            raise MXNetImportError("GluonCV's LRSequential was saved without its list of "
                                   "LRSchedulers")
        return gluoncv.LRSequential([import_gluoncv_scheduler(m) for m in members])
    if scheduler.name != "LRScheduler":
        raise MXNetImportError(f"no mxopt scheduler for GluonCV's {scheduler.name}")
    kept = ("mode", "base_lr", "target_lr", "niters", "offset", "power", "step", "step_factor")
    missing = sorted(set(kept) - set(a))
    if missing:
        raise MXNetImportError(f"GluonCV's LRScheduler was saved without {missing}")
    step = a.pop("step")
    try:
        return gluoncv.LRScheduler(**{k: a[k] for k in kept if k != "step"},
                                   step_iter=None if step is None else list(step))
    except (ValueError, TypeError) as error:
        raise MXNetImportError(f"GluonCV's LRScheduler does not rebuild: {error}") from None


def import_optimizer(source: Source | MXNetObject) -> Optimizer:
    """The mxopt optimizer equal to the one pickled in an MXNet ``.states`` file.

    Args:
      source: a file written with ``dump_optimizer=True`` (Gluon's
        ``Trainer.save_states`` writes one): its path or bytes, what
        :func:`mxopt.mxnet.files.load_states` read from it, or its optimizer.

    Returns:
      An :class:`mxopt.optimizer.Optimizer` of the same class with MXNet's
      hyperparameters, scheduler, ``idx2name``, multipliers, ``sym`` info and
      per-index update counts and object-wide state (Nadam's momentum-schedule
      product; :attr:`mxopt.registry.MXNet.saved_shared_state`) (Gluon's
      ``param_dict`` is not saved by MXNet: set it again, as
      ``Trainer.load_states`` does), built with
      ``mxnet_quirks=True``, so that it continues the run as MXNet would.
    """
    pickled = source if isinstance(source, MXNetObject) else _states(source).optimizer
    if pickled is None:
        raise MXNetImportError("the states file holds no optimizer (it was saved without "
                               "dump_optimizer, as Module.save_optimizer_states does); build "
                               "the optimizer with mxopt.optimizer.create(...) instead")
    klass = _class_named(pickled.name)
    renamed = {**_RENAMED, **klass.mxnet_facts().renamed}
    a = {renamed.get(k, k): _plain(v) for k, v in pickled.attributes.items()}
    missing = sorted({"sym_info", "lr_mult", "wd_mult", "num_update", "_index_update_count"}
                     - set(a))
    if missing:
        raise MXNetImportError(f"MXNet's {pickled.name} was saved without {missing}: not a "
                               "file MXNet 1.x writes")
    try:
        if a.get("lr_scheduler") is not None:
            if not isinstance(a["lr_scheduler"], MXNetObject):
                raise MXNetImportError(f"the lr_scheduler is a {type(a['lr_scheduler']).__name__}")
            a["lr_scheduler"] = import_scheduler(a["lr_scheduler"], a["num_update"])
            if klass.mxnet_facts().scheduler_ignores_learning_rate:
                a.pop("learning_rate", None)
        accepted = {*klass.defaults(), "param_idx2name"}
        # MXNet computed the run it continues: with its quirks.
        optimizer = klass(**{k: v for k, v in a.items() if k in accepted}, mxnet_quirks=True)
        shared = klass.mxnet_facts().saved_shared_state
        optimizer.restore_progress(
            sym_info=a["sym_info"], lr_mult=a["lr_mult"], wd_mult=a["wd_mult"],
            num_update=a["num_update"], index_update_count=a["_index_update_count"],
            shared_state=shared(a) if shared else None)
    except MXNetImportError:
        raise
    except (ValueError, TypeError, KeyError, AttributeError) as error:
        raise MXNetImportError(f"MXNet's {pickled.name} does not rebuild: {error}") from None
    return optimizer


def _class_named(mxnet_class: str) -> type[Optimizer]:
    """The object class of the declaration of MXNet's class ``mxnet_class``."""
    for declaration in registry.declarations():
        if declaration.mxnet.class_name == mxnet_class:
            return class_for(declaration)
    raise MXNetImportError(f"no mxopt optimizer for MXNet's {mxnet_class}")


def _layout(optimizer: Optimizer, dtype: np.dtype) -> Any:
    """How MXNet nests the state of a weight of ``dtype``, from the optimizer's declaration."""
    facts = optimizer.mxnet_facts()
    if isinstance(facts.state, registry.Unimportable):
        raise MXNetImportError(f"importing MXNet's {facts.class_name} states is not supported: "
                               f"{facts.state.reason}")
    inner = facts.layout(optimizer._args)
    if not (optimizer.multi_precision and dtype == np.float16):
        return inner
    return (inner, "master") if facts.master_last else ("master", inner)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"an array {value.dtype}{list(value.shape)}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)}"
    return repr(value)


def _slots(layout: Any, state: Any, where: str) -> dict[str, np.ndarray]:
    """MXNet's state of one parameter, as mxopt field name -> array, checked against the layout."""
    if layout is None:
        if state is not None:
            raise MXNetImportError(f"{where}: the optimizer keeps no state, but MXNet saved "
                                   f"{_describe(state)}")
        return {}
    if isinstance(layout, str):
        if not isinstance(state, np.ndarray):
            raise MXNetImportError(f"{where}: expected an array ({layout}), MXNet saved "
                                   f"{_describe(state)}")
        return {layout: -state if isinstance(layout, registry.Negated) else state}
    if not isinstance(state, (tuple, list)) or len(state) != len(layout):
        raise MXNetImportError(f"{where}: expected a tuple of {len(layout)} ({layout}), MXNet "
                               f"saved {_describe(state)}; was it saved by this optimizer, "
                               "with the same momentum, centered and multi_precision?")
    found = {}
    for part_layout, part in zip(layout, state):
        found.update(_slots(part_layout, part, where))
    return found


def _fill(state: optax.OptState, params: optax.Params,
          slots: Sequence[dict[str, np.ndarray]], where: Sequence[str]) -> optax.OptState:
    """``state`` with the fields named in ``slots`` (one dict per leaf of ``params``) replaced."""
    treedef = jax.tree_util.tree_structure(params)
    wanted = {field for leaf in slots for field in leaf}
    placed: set[str] = set()

    def leaf_value(field, i, old):
        new = slots[i].get(field)
        if new is None:
            if old is None or field == "master":  # a master copy MXNet keeps for float16 only
                return old
            raise MXNetImportError(f"{where[i]}: the optimizer keeps {field}, which MXNet's "
                                   "state does not have")
        if old is None or jnp.shape(old) != new.shape or jnp.result_type(old) != new.dtype:
            expected = "nothing" if old is None else f"{jnp.result_type(old)}{list(old.shape)}"
            raise MXNetImportError(f"{where[i]}: MXNet's {field} is {_describe(new)}, the "
                                   f"optimizer's is {expected}")
        return jnp.asarray(new)

    def visit(node):
        changes = {}
        for field, value in zip(node._fields, node):
            if field in wanted:
                old = treedef.flatten_up_to(value)
                changes[field] = treedef.unflatten(
                    [leaf_value(field, i, o) for i, o in enumerate(old)])
                placed.add(field)
        return node._replace(**changes) if changes else node

    state = map_states(visit, state)
    if wanted - placed:
        raise MXNetImportError(f"MXNet's states hold {sorted(wanted - placed)}, which this "
                               "optimizer's state has no place for")
    return state


def index_state(optimizer: Optimizer, index: Index, weight: jax.Array,
                mxnet_state: Any) -> optax.OptState:
    """The state of one index for ``optimizer.update_multi_precision``, from MXNet's.

    Its update count is the optimizer's count for ``index`` (restored by
    :func:`import_optimizer`), as MXNet's ``Updater.set_states`` leaves it.
    """
    weight = jnp.asarray(weight)
    slots = _slots(_layout(optimizer, weight.dtype), mxnet_state, f"index {index!r}")
    template = optimizer.create_state_multi_precision(index, weight)
    return _fill(template, weight, [slots], [f"index {index!r}"])


def import_state(source: Source, params: optax.Params, optimizer: Optimizer, *,
                 indices: Sequence[str] | Mapping[str, Index] | None = None) -> optax.OptState:
    """The optax state of ``optimizer`` over ``params``, holding MXNet's saved states.

    ``optimizer.update(grads, state, params)`` then continues where MXNet
    stopped. Every leaf needs a saved state and every saved state a leaf.

    Args:
      source: an MXNet ``.states`` file (path, bytes, or what
        :func:`mxopt.mxnet.files.load_states` read).
      params: the weights MXNet saved with it (``mxopt.mxnet.files.load_params``).
      optimizer: the optimizer to continue with: :func:`import_optimizer`'s,
        or one built with MXNet's arguments. Its per-index update counts give
        the state's count (all indices must agree); none gives
        ``begin_num_update``, as MXNet's ``Updater.set_states`` without an
        optimizer does.
      indices: the MXNet index of each leaf: the leaf names in index order, or
        a mapping from leaf name to index. By default, ``param_idx2name``'s
        (names as leaf names), or the order of a list or tuple of params.

    Raises:
      MXNetImportError: the states do not fit the params or the optimizer (the
        message names the index and the field).
    """
    saved = _states(source).states
    names = {name for name, _ in named_leaves(params)}
    if indices is None and not (set(optimizer.idx2name.values()) & names
                                or isinstance(params, (list, tuple))):
        raise MXNetImportError(
            "say which MXNet index each params leaf has: indices=[leaf names in MXNet's "
            "order] or {leaf name: index} (the optimizer's param_idx2name does not name the "
            f"leaves, and a {type(params).__name__}'s flattening order need not be MXNet's)")
    leaf_indices = optimizer.leaf_indices(params, indices)
    unused = sorted(set(saved) - set(leaf_indices), key=repr)
    absent = [i for i in leaf_indices if i not in saved]
    if unused or absent:
        raise MXNetImportError(f"the states file and the params differ: indices {absent} have "
                               f"no saved state, saved indices {unused} no params leaf")
    counts = {optimizer._index_update_count.get(i, optimizer.begin_num_update)
              for i in leaf_indices}
    if len(counts) > 1:
        raise MXNetImportError(f"the indices were updated different numbers of times "
                               f"({sorted(counts)}); a pytree state has one count: use "
                               "mxopt.optimizer.Updater, which keeps one per index")
    where = [f"index {i!r} (leaf {name!r})" for i, (name, _) in zip(leaf_indices,
                                                                   named_leaves(params))]
    slots = [_slots(_layout(optimizer, jnp.result_type(leaf)), saved[i], w)
             for i, (_, leaf), w in zip(leaf_indices, named_leaves(params), where)]
    state = _fill(optimizer.init(params, indices=indices), params, slots, where)
    state = with_fields(state, optimizer._shared)  # what import_optimizer restored, if any
    return counting.set_count(state, counts.pop())
