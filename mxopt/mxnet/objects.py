"""MXNet's ``mxnet.optimizer.Optimizer`` and its classes, one per declared optimizer.

A port of an MXNet training loop changes its imports
(``from mxopt import optimizer`` for ``from mxnet import optimizer``) and
one thing more: JAX arrays are immutable, so where MXNet writes the new
weight and state into the arrays it was given, mxopt returns them::

    weight, state = opt.update(index, weight, grad, state)   # MXNet: in place
    weight = updater(index, grad, weight)                    # MXNet: returns None

(the ``Updater`` is :mod:`mxopt.mxnet.updater`'s).

The objects hold no math. Each optimizer class is bound to one pure
transformation (``SGD`` to :func:`mxopt.sgd`, ...); the object keeps what
MXNet keeps beside it — the hyperparameters as attributes, the per-index
multipliers and update counts — and hands them to the compiled update as
arguments, so ``set_learning_rate`` and friends never recompile. The update
of one index is jit-compiled once per weight shape and dtype.

An optimizer is also an optax transformation over whole pytrees:
``opt.init(params)`` and ``opt.update(grads, state, params)`` (told apart
from the per-index ``update`` by its arguments) give the per-index numbers,
each leaf with the multipliers of its index (see :meth:`Optimizer.leaf_indices`).

One difference from MXNet: a scheduler sees each index's own update count,
where MXNet's sees the largest over all indices. They agree whenever every
parameter is updated at every step, as in Gluon's ``Trainer`` and Module.
"""

from __future__ import annotations

import dataclasses
import inspect
import reprlib
import warnings
from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mxopt import counting, hyperparams, optimizers, registry, schedules, validation
from mxopt.base import Optimization
from mxopt.mxnet import tables
from mxopt.mxnet.tables import Index
from mxopt.structure import check_trees, fields_named, named_leaves, with_fields


class SchedulerConflictError(ValueError, UserWarning):
    """``set_learning_rate`` under an ``lr_scheduler`` (MXNet raises UserWarning)."""

    def __init__(self):
        super().__init__("LRScheduler of the optimizer has already been defined; "
                         "set_learning_rate can change the learning rate only when the "
                         "optimizer has no lr_scheduler")


class Optimizer:
    """MXNet's ``Optimizer``: the base class; build one through a subclass or by name.

    ``Optimizer.create_optimizer("adam", learning_rate=0.01)`` or
    ``Adam(0.01)``. Arguments are MXNet's: the algorithm's own (``momentum``,
    ``beta1``, ...), by position in MXNet's order or by keyword, and the base
    ones by keyword,
    ``rescale_grad``, ``param_idx2name``, ``wd``, ``clip_gradient``,
    ``learning_rate``, ``lr_scheduler``, ``sym``, ``begin_num_update``,
    ``multi_precision``, ``param_dict``. ``sym`` is a mapping from parameter
    names to attribute dicts (``{"fc_weight": {"__lr_mult__": "2"}}``) or
    an object with MXNet Symbol's ``attr_dict()`` and ``list_arguments()``.
    ``param_dict`` maps indices to objects with ``lr_mult`` and ``wd_mult``
    (Gluon Parameters).

    Hyperparameters are attributes, as in MXNet (``opt.lr``, ``opt.wd``,
    ``opt.momentum``, ``opt.rescale_grad``, ...); setting one takes effect
    at the next update. Arguments that shape the update (``multi_precision``,
    ``lr_scheduler``, ``centered``, ...) are fixed once built.

    Every optimizer of :mod:`mxopt.registry` has its class here, named as
    MXNet's (``SGD``, ``AdaGrad``, ...) and made from its declaration. A
    subclass of one's own names its pure transformation in ``transform``: a
    function of the keyword arguments (the base ones included, see
    :class:`mxopt.optimizers.Base`) returning an optax transformation.
    :meth:`register` makes it available by name.
    """

    opt_registry: ClassVar[MutableMapping[str, type[Optimizer]]]  # set below: _ClassRegistry
    transform: ClassVar[Callable[..., optax.GradientTransformation] | None] = None

    @classmethod
    def mxnet_facts(cls) -> registry.MXNet:
        """What MXNet knows of the class's optimizer (:class:`mxopt.registry.MXNet`): its
        transform's declaration, or a class of this name without declared facts."""
        return registry.mxnet_facts(cls.transform) or registry.MXNet(cls.__name__)

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """The keyword arguments the class takes, with their defaults.

        Those of its transform and MXNet's base ones, besides ``param_idx2name``,
        ``sym`` and ``param_dict`` (and ``lr_mult``/``wd_mult``, set by methods).
        """
        base = {f.name: f.default for f in dataclasses.fields(optimizers.Base)}
        own = {name: p.default for name, p in inspect.signature(cls.transform).parameters.items()
               if p.default is not inspect.Parameter.empty}
        return {name: default for name, default in {**base, **own}.items()
                if name not in ("lr_mult", "wd_mult")}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        transform = cls.__dict__.get("transform")
        if transform is not None and not isinstance(transform, staticmethod):
            cls.transform = staticmethod(transform)
        if cls.__doc__ is None and transform is not None:
            cls.__doc__ = (f"MXNet's ``{cls.__name__}``, updating as "
                           f":func:`{transform.__module__}.{transform.__name__}`.")

    def __init__(self, *args, param_idx2name: Mapping[Index, str] | None = None,
                 sym: Any = None, param_dict: Mapping[Index, Any] | None = None, **kwargs):
        if type(self).transform is None:
            raise TypeError(f"{type(self).__name__} has no transform; build an optimizer with "
                            "Optimizer.create_optimizer(name, ...) or a subclass such as SGD")
        for arg in ("lr_mult", "wd_mult"):
            if arg in kwargs:
                raise TypeError(f"{arg} is not an argument of MXNet's Optimizer; use "
                                f"set_{arg}() (or mxopt.create(..., {arg}=...) for pytrees)")
        if param_idx2name is not None and not isinstance(param_idx2name, Mapping):
            raise ValueError(f"param_idx2name must map indices to names, got {param_idx2name!r}")
        rate = self.transform(*args, **kwargs).learning_rate  # checks them; MXNet's precedence
        kwargs = _keywords(self.transform, args, kwargs)
        scheduled = callable(rate)
        args = {**self.defaults(), **kwargs,
                "learning_rate": None if scheduled else rate,
                "lr_scheduler": rate if scheduled else None}
        # One leaf and scalar multipliers: every tunable value is a scalar in the state,
        # whose fields declare the rules their values obey.
        probe = self.transform(**args, lr_mult=1.0, wd_mult=1.0).init(jnp.zeros((1, 1)))
        held = set(hyperparams.get_hyperparams(probe))
        object.__setattr__(self, "_args", args)
        object.__setattr__(self, "_probe", probe)
        object.__setattr__(self, "_tunable", frozenset(held & set(args)))
        self._multiplied = tuple(kind for kind in ("lr", "wd") if f"{kind}_mult" in held)
        self._mxnet = self.mxnet_facts()
        self._steps: dict[tuple, Callable] = {}
        self.idx2name = dict(param_idx2name or {})
        self.param_dict = param_dict or {}  # not copied: Gluon's Trainer shares it
        self.sym_info = tables.sym_info(sym)
        self.num_update = args["begin_num_update"]
        self._index_update_count: dict[Index, int] = {}
        self._shared: dict[str, jax.Array] = {}  # see _update_one
        self.set_lr_mult({})
        self.set_wd_mult({})

    def __repr__(self) -> str:
        """The class with the arguments that differ from its defaults, and ``num_update``."""
        defaults = self.defaults()
        shown = [f"{name}={value!r}" for name, value in self._args.items()
                 if name not in defaults or value != defaults[name]]
        return f"{type(self).__name__}({', '.join(shown + [f'num_update={self.num_update}'])})"

    # -- MXNet's attributes ------------------------------------------------

    def __getattr__(self, name: str):
        args = self.__dict__.get("_args", {})
        key = "learning_rate" if name == "lr" else name
        if key in args:
            return args[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any):
        key = "learning_rate" if name == "lr" else name
        if key in self.__dict__.get("_tunable", ()):
            hyperparams.set_hyperparams(self._probe, **{key: value})  # a bad value fails here
            self._args[key] = validation.host_number(key, value)
            if self.__dict__.get("_made_pytree_state"):
                warnings.warn(
                    f"setting {key} changes this optimizer's per-index updates (update, Updater) "
                    f"only; the pytree states its init made hold their own {key}: change it "
                    f"there with mxopt.set_hyperparams(state, {key}={value!r})", UserWarning,
                    stacklevel=validation.outside_mxopt())
        elif key == "learning_rate" and self.lr_scheduler is not None:
            self.set_learning_rate(value)
        elif key in self.__dict__.get("_args", {}):
            raise AttributeError(f"{name} shapes the update and is fixed once the optimizer is "
                                 f"built; build a new {type(self).__name__} to change it")
        else:
            object.__setattr__(self, name, value)

    @property
    def learning_rate(self) -> float:
        """The current rate: the scheduler's at ``num_update``, else ``lr``."""
        if self.lr_scheduler is not None:
            return float(self.lr_scheduler(self.num_update))
        return self.lr

    def set_learning_rate(self, lr: float) -> None:
        """Sets ``lr``; an error under an ``lr_scheduler``, as in MXNet."""
        if self.lr_scheduler is not None:
            raise SchedulerConflictError
        self.lr = lr

    def set_lr_scale(self, args_lrscale: Mapping[Index, float]) -> None:
        """Deprecated since MXNet 0.x: use :meth:`set_lr_mult` (which it calls)."""
        warnings.warn("set_lr_scale is deprecated; use set_lr_mult", DeprecationWarning,
                      stacklevel=2)
        self.set_lr_mult(args_lrscale)

    def set_lr_mult(self, args_lr_mult: Mapping[Index, float]) -> None:
        """Sets learning-rate multipliers by parameter name or index.

        Replaces earlier ones; names with ``__lr_mult__`` in ``sym`` keep it
        unless ``args_lr_mult`` names them.
        """
        self.lr_mult = {**tables.sym_multipliers(self.sym_info, "__lr_mult__"),
                        **tables.checked_multipliers("args_lr_mult", args_lr_mult)}

    def set_wd_mult(self, args_wd_mult: Mapping[Index, float]) -> None:
        """Sets weight-decay multipliers by parameter name or index.

        As in MXNet, names from ``param_idx2name`` that end in none of the
        optimizer's ``decayed_suffixes`` (:class:`mxopt.registry.MXNet`:
        ``_weight`` and ``_gamma``; LARS: ``_weight`` only) get 0, so biases
        and BatchNorm's beta are not decayed; then
        ``sym``'s ``__wd_mult__`` attributes apply, then ``args_wd_mult``.
        """
        no_decay = {n: 0.0 for n in self.idx2name.values()
                    if not n.endswith(self._mxnet.decayed_suffixes)}
        self.wd_mult = {**no_decay, **tables.sym_multipliers(self.sym_info, "__wd_mult__"),
                        **tables.checked_multipliers("args_wd_mult", args_wd_mult)}

    def _multiplier(self, kind: str, index: Index, name: str | None = None) -> float:
        """MXNet's lookup of ``lr_mult`` or ``wd_mult`` for an index (or a pytree leaf's name)."""
        table = self.lr_mult if kind == "lr" else self.wd_mult
        if index in self.param_dict:
            holder = self.param_dict[index]
            return float(holder[f"{kind}_mult"] if isinstance(holder, Mapping)
                         else getattr(holder, f"{kind}_mult"))
        if index in table:
            return float(table[index])
        name = self.idx2name.get(index, name)
        return float(table.get(name, 1.0)) if name is not None else 1.0

    # -- per-index updates, as MXNet's -------------------------------------

    def _transform(self, multi_precision: bool, **overrides) -> optax.GradientTransformation:
        """The transform of the current arguments, with scalar multipliers unless overridden,
        and errors that name the leaf where weights, grads and state disagree."""
        inner = self.transform(**{**self._args, "lr_mult": 1.0, "wd_mult": 1.0, **overrides,
                                  "multi_precision": multi_precision and self.multi_precision})
        checked = Optimization(*check_trees(inner))
        checked.learning_rate = getattr(inner, "learning_rate", None)  # the rate it tells
        checked.call = getattr(inner, "call", None)
        return checked

    def _step(self, multi_precision: bool, **index_arguments) -> Callable:
        """The compiled one-index update (jit caches it per weight shape and dtype)."""
        key = (multi_precision, *sorted(index_arguments.items()))
        if key not in self._steps:
            tx = self._transform(multi_precision, **index_arguments)

            def step(weight, grad, state, hyper):
                state = hyperparams.assign(state, hyper)
                updates, state = tx.update(grad, state, weight)
                return optax.apply_updates(weight, updates), state

            self._steps[key] = jax.jit(step)
        return self._steps[key]

    def _index_arguments(self, index: Index) -> dict[str, Any]:
        """Transform arguments that differ between indices, hashable (LARS's exemption)."""
        return self._mxnet.index_arguments(self._args, self.idx2name.get(index, str(index)))

    def _hyper(self, index: Index) -> dict[str, jax.Array]:
        """The index's current hyperparameters, encoded for :func:`hyperparams.assign`."""
        values = {name: self._args[name] for name in self._tunable}
        values.update({f"{kind}_mult": self._multiplier(kind, index) for kind in self._multiplied})
        return hyperparams.encode(**values)

    def _create(self, index: Index, weight: jax.Array, multi_precision: bool) -> optax.OptState:
        tx = self._transform(multi_precision, **self._index_arguments(index))
        state = tx.init(jnp.asarray(weight))
        state = hyperparams.assign(state, self._hyper(index))
        if index in self._index_update_count:  # a new state for an index already updated
            state = counting.set_count(state, self._index_update_count[index])
        return state

    def create_state(self, index: Index, weight: jax.Array) -> optax.OptState:
        """The state of one weight, for :meth:`update` (no master copy)."""
        return self._create(index, weight, multi_precision=False)

    def create_state_multi_precision(self, index: Index, weight: jax.Array) -> optax.OptState:
        """The state of one weight for :meth:`update_multi_precision`.

        With ``multi_precision=True`` it holds a float32 master copy of a
        float16 or bfloat16 weight (MXNet: float16 only).
        """
        return self._create(index, weight, multi_precision=True)

    def _update_index(self, index, weight, grad, state, multi_precision: bool):
        if isinstance(index, (list, tuple)):
            call_start, pairs = self._shared, []
            for i, w, g, s in zip(index, weight, grad, state, strict=True):
                self._shared = call_start  # MXNet's aggregated call reads them once
                pairs.append(self._update_one(i, w, g, s, multi_precision, alone=False))
            return [w for w, _ in pairs], [s for _, s in pairs]
        return self._update_one(index, weight, grad, state, multi_precision, alone=True)

    def _update_one(self, index, weight, grad, state, multi_precision: bool, alone: bool):
        """One index's update; with ``mxnet_quirks``, MXNet's object-wide state
        (:attr:`mxopt.registry.MXNet.shared_state`) goes in and comes out, and a
        one-index call (``alone``) keeps the fields its kernel drops."""
        step = self._step(multi_precision, **self._index_arguments(index))
        given = with_fields(state, self._shared)
        new_weight, new_state = step(jnp.asarray(weight), jnp.asarray(grad), given,
                                     self._hyper(index))
        if self.mxnet_quirks:
            self._shared = fields_named(new_state, self._mxnet.shared_state)
            if alone:
                new_state = with_fields(
                    new_state, fields_named(given, self._mxnet.one_index_drops))
        count = self._index_update_count.get(index, self.begin_num_update) + 1
        self._index_update_count[index] = count
        self.num_update = max(self.num_update, count)
        return new_weight, new_state

    def update(self, *args, **kwargs):
        """MXNet's ``update(index, weight, grad, state) -> (weight, state)``, or optax's.

        With an index (or lists of indices, weights, grads and states) first:
        one MXNet update without master copies, returning the new weight and
        state (lists for lists) instead of writing them in place. Otherwise
        optax's ``update(grads, state, params)`` over a pytree.
        """
        if args and tables.is_index(args[0]):
            return self._update_index(*args, **kwargs, multi_precision=False)
        return self._transform(multi_precision=True).update(*args, **kwargs)

    def update_multi_precision(self, index, weight, grad, state):
        """As :meth:`update`, through the master copy when the state has one."""
        return self._update_index(index, weight, grad, state, multi_precision=True)

    # -- the pytree transformation -----------------------------------------

    def leaf_indices(self, params: optax.Params,
                     indices: Sequence[str] | Mapping[str, Index] | None = None) -> list[Index]:
        """The MXNet index of each leaf of ``params``, in flattening order.

        Args:
          params: a params pytree; leaves are named as :mod:`mxopt.structure`
            names them.
          indices: each leaf's index: the leaf names in index order, or a
            mapping from leaf name to index. By default a leaf whose name
            ``param_idx2name`` lists has that index, and without such names a
            leaf's index is its position.

        Raises:
          ValueError: ``indices`` or ``param_idx2name`` leave out leaves, or
            ``indices`` names leaves ``params`` lacks.
        """
        names = [name for name, _ in named_leaves(params)]
        if indices is None:
            by_name = {name: index for index, name in self.idx2name.items()}
            if not any(name in by_name for name in names):
                return list(range(len(names)))
            indices, what = by_name, "param_idx2name"
        elif not isinstance(indices, Mapping):
            indices, what = {name: i for i, name in enumerate(indices)}, "indices"
        else:
            what = "indices"
        missing = [name for name in names if name not in indices]
        unknown = sorted(set(indices) - set(names)) if what == "indices" else []
        if missing or unknown:
            raise ValueError(f"{what} must name every params leaf: missing {missing}, "
                             f"unknown {unknown}")
        return [indices[name] for name in names]

    def init(self, params: optax.Params, *,
             indices: Sequence[str] | Mapping[str, Index] | None = None) -> optax.OptState:
        """optax's ``init``: the state for a whole params pytree, made by
        :meth:`pytree_transformation` (see there for ``indices`` and the errors).

        The hyperparameters are the object's current ones, held in the state
        from then on: change them there with :func:`mxopt.set_hyperparams`.
        Once this object has made a pytree state, ``set_learning_rate`` and
        setting a hyperparameter attribute (``opt.momentum = 0.5``) warn that
        they change the per-index updates only.
        """
        state = self.pytree_transformation(params, indices=indices).init(params)
        object.__setattr__(self, "_made_pytree_state", True)  # see __setattr__
        return state

    def pytree_transformation(self, params: optax.Params, *,
                              indices: Sequence[str] | Mapping[str, Index] | None = None
                              ) -> optax.GradientTransformation:
        """The plain mxopt optimizer of the object's current arguments for ``params``.

        Each leaf gets the multipliers MXNet's lookup gives its index (see
        :meth:`leaf_indices`) or, failing that, its name. Its ``init`` is
        :meth:`init`'s; its ``learning_rate`` is the schedule or rate.

        Raises:
          ValueError: multipliers are given by index (``param_dict``, or an
            integer key of ``set_lr_mult``/``set_wd_mult``) but nothing says
            which index a leaf of a dict or other non-sequence pytree has:
            pass ``indices`` or ``param_idx2name``.
        """
        by_index = self.param_dict or any(
            isinstance(k, int) for k in (*self.lr_mult, *self.wd_mult))
        if (indices is None and by_index and not isinstance(params, (list, tuple))
                and not set(self.idx2name.values()) & {n for n, _ in named_leaves(params)}):
            raise ValueError("the multipliers are given by index, but the order of a "
                             f"{type(params).__name__}'s leaves need not be MXNet's: pass "
                             "init(params, indices=[leaf names in index order]) or "
                             "param_idx2name")
        treedef = jax.tree_util.tree_structure(params)
        leaves = list(zip(self.leaf_indices(params, indices), named_leaves(params)))

        def multipliers(kind):
            return jax.tree_util.tree_unflatten(
                treedef, [self._multiplier(kind, i, name) for i, (name, _) in leaves])

        return self._transform(True, lr_mult=multipliers("lr"), wd_mult=multipliers("wd"))

    # -- saving, for Updater.get_states(dump_optimizer=True) ----------------

    def get_config(self) -> dict[str, Any]:
        """Everything MXNet pickles of an optimizer, as JSON-able data for :meth:`from_config`.

        That is the class's registered name, its arguments, ``idx2name``, the
        multipliers, ``sym``'s attributes, the update counts and, with
        ``mxnet_quirks``, the state MXNet keeps in the object
        (:attr:`mxopt.registry.MXNet.shared_state`); not ``param_dict``, which
        MXNet does not save either.

        Raises:
          ValueError: the class is not registered, or an argument cannot be
            saved as data (a plain-function ``lr_scheduler``, say).
        """
        name = type(self).__name__.lower()
        if Optimizer.opt_registry.get(name) is not type(self):
            raise ValueError(f"{type(self).__name__} is not registered under {name!r}; register "
                             "it (Optimizer.register) so that it can be saved and rebuilt")
        arguments = {}
        for key, value in self._args.items():
            if key == "lr_scheduler" and value is not None:
                value = _scheduler_config(value)
            elif not isinstance(value, (bool, int, float, str, type(None))):
                raise ValueError(f"argument {key}={value!r} cannot be saved as data")
            arguments[key] = value.item() if isinstance(value, np.generic) else value
        return {"name": name, "arguments": arguments, "idx2name": _pairs(self.idx2name),
                "lr_mult": _pairs(self.lr_mult), "wd_mult": _pairs(self.wd_mult),
                "sym_info": list(self.sym_info), "num_update": self.num_update,
                "index_update_count": _pairs(self._index_update_count),
                "shared_state": {k: np.asarray(v).item() for k, v in self._shared.items()}}

    @staticmethod
    def from_config(config: Mapping[str, Any]) -> Optimizer:
        """The optimizer :meth:`get_config` described.

        Raises:
          ValueError: ``config`` is not what :meth:`get_config` writes (the
            message says what is wrong).
        """
        try:
            arguments = dict(config["arguments"])
            spec = arguments.get("lr_scheduler")
            if spec is not None:
                if spec.get("type") not in schedules.BY_NAME:
                    raise ValueError(f"lr_scheduler of type {spec.get('type')!r}, not one of "
                                     f"{sorted(schedules.BY_NAME)}")
                arguments["lr_scheduler"] = schedules.BY_NAME[spec["type"]](**spec["fields"])
            optimizer = Optimizer.create_optimizer(config["name"], **arguments,
                                                   param_idx2name=dict(config["idx2name"]))
            optimizer.restore_progress(
                sym_info=config["sym_info"], lr_mult=dict(config["lr_mult"]),
                wd_mult=dict(config["wd_mult"]), num_update=config["num_update"],
                index_update_count=dict(config["index_update_count"]),
                shared_state=config.get("shared_state", {}))
        except (KeyError, TypeError, AttributeError) as error:
            raise ValueError(f"not an optimizer's saved config ({type(error).__name__}: "
                             f"{error})") from None
        return optimizer

    def restore_progress(self, *, sym_info: Sequence, lr_mult: Mapping[Index, float],
                         wd_mult: Mapping[Index, float], num_update: int,
                         index_update_count: Mapping[Index, int],
                         shared_state: Mapping[str, float] | None = None) -> None:
        """Sets what MXNet saves of an optimizer besides its arguments, checking each first.

        Raises:
          ValueError: a value MXNet could not have saved (the message names
            it); nothing is changed.
        """
        if not (isinstance(sym_info, (tuple, list)) and (
                len(sym_info) == 0 or (len(sym_info) == 2 and tables.is_attributes(sym_info[0])
                                       and all(isinstance(n, str) for n in sym_info[1])))):
            raise ValueError("sym_info must be () or (attribute dicts by name, argument "
                             f"names), got {reprlib.repr(sym_info)}")
        lr_mult = tables.checked_multipliers("lr_mult", lr_mult)
        wd_mult = tables.checked_multipliers("wd_mult", wd_mult)
        num_update = validation.count("num_update", num_update)
        counts = {tables.index_key("index_update_count", i): validation.count(
            f"index_update_count[{i!r}]", n) for i, n in index_update_count.items()}
        shared = self._checked_shared(shared_state or {})
        self.sym_info, self.lr_mult, self.wd_mult = tuple(sym_info), lr_mult, wd_mult
        self.num_update = num_update
        self._index_update_count.update(counts)
        self._shared.update(shared)

    def _checked_shared(self, values: Mapping[str, Any]) -> dict[str, jax.Array]:
        """Saved object-wide state, as the arrays of the fields the probe state holds."""
        if not isinstance(values, Mapping):
            raise ValueError(f"shared_state must map field names to numbers, got "
                             f"{reprlib.repr(values)}")
        held = fields_named(self._probe, self._mxnet.shared_state)
        checked = {}
        for name, value in values.items():
            if name not in held or isinstance(value, bool) or not isinstance(
                    value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"shared_state[{name!r}] = {reprlib.repr(value)}: this "
                                 f"optimizer keeps {sorted(held)}, each a finite number")
            checked[name] = jnp.asarray(value, held[name].dtype)
        return checked

    # -- the registry ------------------------------------------------------

    @staticmethod
    def register(klass: type[Optimizer]) -> type[Optimizer]:
        """Registers an Optimizer subclass under its lower-cased name (a class decorator).

        Its ``transform`` is registered in :mod:`mxopt.registry` under that
        name, with the MXNet facts of its transform's declaration if it has
        one, so :func:`mxopt.create` finds it. Replacing a name warns, as in MXNet.
        """
        if not (isinstance(klass, type) and issubclass(klass, Optimizer)):
            raise TypeError(f"register takes an Optimizer subclass, got {klass!r}")
        if klass.transform is None:
            raise TypeError(f"{klass.__name__} has no transform to register")
        name = klass.__name__.lower()
        declared = registry.declaration(name) if name in registry.registered_names() else None
        if declared is None or not declared.builds_with(klass.transform):
            facts = dataclasses.replace(klass.mxnet_facts(), class_name=klass.__name__)
            registry.register(klass.transform, name=name, mxnet=facts)  # warns if it replaces
            declared = registry.declaration(name)
        elif _CLASSES.get(declared, klass) is not klass:
            warnings.warn(f"optimizer {name!r} is overridden by "
                          f"{klass.__module__}.{klass.__qualname__}", stacklevel=2)
        _CLASSES[declared] = klass
        return klass

    @staticmethod
    def create_optimizer(name: str, **kwargs) -> Optimizer:
        """The optimizer registered as ``name`` (case-insensitive), built from ``kwargs``.

        Names registered only as functions (:func:`mxopt.register`) work too.
        """
        return class_for(registry.declaration(name))(**kwargs)


_CLASSES: dict[registry.Declaration, type[Optimizer]] = {}


def class_for(declaration: registry.Declaration) -> type[Optimizer]:
    """The object class of a registered optimizer: the one registered with it
    (:meth:`Optimizer.register`), or one named as MXNet's, made once."""
    if declaration not in _CLASSES:
        name = declaration.mxnet.class_name
        _CLASSES[declaration] = type(name, (Optimizer,), {
            "transform": declaration.constructor, "__module__": __name__, "__qualname__": name})
    return _CLASSES[declaration]


class _ClassRegistry(MutableMapping):
    """MXNet's ``Optimizer.opt_registry``: lower-cased name -> class, a view of
    :mod:`mxopt.registry` (assigning registers, deleting unregisters)."""

    def __getitem__(self, name: str) -> type[Optimizer]:
        try:
            return class_for(registry.declaration(name))
        except ValueError:
            raise KeyError(name) from None

    def __setitem__(self, name: str, klass: type[Optimizer]) -> None:
        if name.lower() != klass.__name__.lower():
            raise ValueError(f"opt_registry[{name!r}]: MXNet registers a class under its "
                             f"lower-cased name, {klass.__name__.lower()!r}")
        Optimizer.register(klass)

    def __delitem__(self, name: str) -> None:
        _CLASSES.pop(registry.unregister(name), None)

    def __iter__(self):
        return iter(registry.registered_names())

    def __len__(self) -> int:
        return len(registry.registered_names())


Optimizer.opt_registry = _ClassRegistry()


def _keywords(function: Callable, args: tuple, kwargs: dict) -> dict[str, Any]:
    """``function``'s arguments ``args`` and ``kwargs``, all by name."""
    signature = inspect.signature(function)
    bound = signature.bind(*args, **kwargs).arguments
    for name, parameter in signature.parameters.items():
        if parameter.kind is parameter.VAR_KEYWORD:
            bound.update(bound.pop(name, {}))
    return bound


def _pairs(mapping: Mapping) -> list[list]:
    """A mapping as ``[key, value]`` pairs: JSON keeps int keys apart from str keys that way."""
    return [[k, v] for k, v in mapping.items()]


def _scheduler_config(scheduler: Any) -> dict[str, Any]:
    if not (dataclasses.is_dataclass(scheduler) and isinstance(scheduler, schedules.LRScheduler)):
        raise ValueError(f"lr_scheduler {scheduler!r} is a plain function; only mxopt's "
                         "schedulers (mxopt.schedules) can be saved with the optimizer")
    return {"type": type(scheduler).__name__,
            "fields": {f.name: getattr(scheduler, f.name) for f in dataclasses.fields(scheduler)
                       if f.init}}


register = Optimizer.register
create = Optimizer.create_optimizer


# MXNet's classes, SGD to Test, one for each declaration (mxopt.registry).
CLASSES = {d.mxnet.class_name: class_for(d) for d in registry.declarations()}
globals().update(CLASSES)
