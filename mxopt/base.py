"""The arguments every MXNet optimizer takes, and how they become transforms.

MXNet's ``Optimizer`` base class gives every optimizer ``learning_rate``,
``lr_scheduler``, ``rescale_grad``, ``wd``, ``clip_gradient``,
``begin_num_update``, ``multi_precision`` and per-parameter ``lr_mult`` /
``wd_mult``. :class:`Base` holds them, checked, and builds the transforms
each optimizer's chain puts in its own order; :func:`optimizer` gives an
optimizer's constructor MXNet's signature: its own arguments in MXNet's
order, then the base ones by keyword.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable

import optax

from mxopt import multipliers, transforms, validation
from mxopt.counting import counted
from mxopt.multipliers import MultiplierSpec
from mxopt.precision import multi_precision
from mxopt.schedules import Schedule
from mxopt.sharding import place_state
from mxopt.structure import check_float_leaves

BASE_ARGS_DOC = """
    Every optimizer also takes MXNet's base arguments, by keyword:

    * ``learning_rate``: the step size; ``None`` takes the scheduler's
      ``base_lr``, or 0.01 without a scheduler. Given with a scheduler, it
      overrides the scheduler's ``base_lr`` as MXNet does.
    * ``lr_scheduler``: a schedule of the update count
      (:mod:`mxopt.schedules`, or any callable).
    * ``rescale_grad`` (1.0): gradients are multiplied by it first.
    * ``wd`` (0.0): weight decay, ``g + wd * wd_mult * w``.
    * ``clip_gradient`` (None): clip to ``[-clip_gradient, clip_gradient]``.
    * ``begin_num_update`` (0): the update count a run starts from.
    * ``multi_precision`` (False): float32 master copies of float16/bfloat16
      weights (:func:`mxopt.multi_precision`).
    * ``lr_mult``, ``wd_mult`` (None): per-leaf multipliers
      (:mod:`mxopt.multipliers`).
    * ``mxnet_quirks`` (False): compute what MXNet 1.9.1 computes where its
      code contradicts its documentation (docs/mxnet_differences.md), instead
      of the documented formula.

    A hyperparameter given as a JAX array (``optax.inject_hyperparams``
    gives them so) is the transformation's own: its updates use that array,
    not the state's copy (see :mod:`mxopt.hyperparams`).
"""


SCHEDULER_OVERRIDDEN = ("learning rate from ``lr_scheduler`` has been overwritten by "
                        "``learning_rate`` in optimizer.")  # MXNet 1.9.1's text


def _is_plain_callable(schedule: object) -> bool:
    """A schedule given as a function rather than an MXNet-style scheduler."""
    return schedule is not None and not hasattr(schedule, "overridden_by")


@dataclasses.dataclass(frozen=True)
class Base:
    """MXNet's base-class arguments; bad values raise ValueError naming the argument."""

    learning_rate: float | None = None
    lr_scheduler: Schedule | None = None
    rescale_grad: float = 1.0
    wd: float = 0.0
    clip_gradient: float | None = None
    begin_num_update: int = 0
    multi_precision: bool = False
    lr_mult: MultiplierSpec = None
    wd_mult: MultiplierSpec = None
    mxnet_quirks: bool = False

    def __post_init__(self):
        # ``learning_rate`` is checked here because it may only reach a
        # scheduler's ``base_lr``, whose error would not name it; the base
        # transforms check theirs when made, here too, so that an optimizer
        # that ignores one (MXNet's ``test``) still refuses a bad value.
        if self.learning_rate is not None:
            validation.non_negative("learning_rate", self.learning_rate)
        if self.lr_scheduler is not None and not callable(self.lr_scheduler):
            raise ValueError(f"lr_scheduler must be callable, got {self.lr_scheduler!r}")
        for flag in ("multi_precision", "mxnet_quirks"):
            if not isinstance(getattr(self, flag), bool):
                raise ValueError(f"{flag} must be a bool, got {getattr(self, flag)!r}")
        validation.count("begin_num_update", self.begin_num_update)
        multipliers.check(self.lr_mult, "lr_mult")
        multipliers.check(self.wd_mult, "wd_mult")
        self.rescale(), self.clip(), self.weight_decay()

    def rescale(self) -> optax.GradientTransformation:
        return transforms.rescale(self.rescale_grad)

    def clip(self) -> optax.GradientTransformation:
        return transforms.clip(self.clip_gradient)

    def weight_decay(self) -> optax.GradientTransformation:
        return transforms.add_decayed_weights(self.wd, self.wd_mult)

    def schedule(self) -> float | Schedule:
        """The learning rate or schedule, with MXNet's precedence between them; with
        ``mxnet_quirks``, the schedule as MXNet's stateful scheduler runs from
        ``begin_num_update`` (:meth:`mxopt.schedules.LRScheduler.as_mxnet_runs_it`)."""
        if self.lr_scheduler is None:
            return 0.01 if self.learning_rate is None else self.learning_rate
        if self.learning_rate is None:
            scheduler, held = self.lr_scheduler, getattr(self.lr_scheduler, "base_lr", None)
        elif _is_plain_callable(self.lr_scheduler):
            raise ValueError("learning_rate cannot override the base rate of a plain callable "
                             "lr_scheduler; give one or the other")
        else:
            scheduler, held = self.lr_scheduler.overridden_by(self.learning_rate), \
                self.learning_rate
        if self.mxnet_quirks and hasattr(scheduler, "as_mxnet_runs_it"):
            return scheduler.as_mxnet_runs_it(self.begin_num_update, held)
        return scheduler

    def warn_if_overriding(self) -> None:
        """MXNet's warning where ``learning_rate`` (given, or the optimizer's own default)
        replaces a scheduler's other ``base_lr``: a ``UserWarning`` with MXNet's text."""
        scheduler, rate = self.lr_scheduler, self.learning_rate
        if scheduler is not None and rate is not None and not _is_plain_callable(scheduler) \
                and scheduler.base_lr != rate:
            warnings.warn(SCHEDULER_OVERRIDDEN, UserWarning, stacklevel=validation.outside_mxopt())

    def rate(self) -> transforms.LeafRates:
        """Each leaf's learning rate, for transforms that use it inside their formula."""
        return transforms.LeafRates(self.schedule(), self.lr_mult, self.begin_num_update)

    def scale_by_learning_rate(self) -> optax.GradientTransformation:
        return transforms.scale_by_learning_rate(
            self.schedule(), lr_mult=self.lr_mult, begin_num_update=self.begin_num_update)

    def chain(self, *transforms: optax.GradientTransformation) -> optax.GradientTransformation:
        """The transforms behind the optimizer's update counter (:func:`mxopt.counted`)."""
        return counted(*transforms, begin_num_update=self.begin_num_update)

    def build(self, *chain: optax.GradientTransformation) -> Optimization:
        """Chains the transforms, adds master weights if asked, and :meth:`finish`\\ es."""
        tx = self.chain(*chain)
        return self.finish(multi_precision(tx) if self.multi_precision else tx)

    def finish(self, tx: optax.GradientTransformation) -> Optimization:
        """Refuses non-float params at ``init``, places the state, and tells the rate."""
        placed = place_state(tx)

        def init_fn(params):
            check_float_leaves(params)
            return placed.init(params)

        built = Optimization(init_fn, placed.update)
        built.learning_rate = self.schedule()
        return built


BASE_ARGS = tuple(field.name for field in dataclasses.fields(Base))


class Optimization(optax.GradientTransformationExtraArgs):
    """An optimizer's transformation, which also tells the rate it steps with.

    ``learning_rate`` is the number or schedule of the update count that the
    optimizer uses, after MXNet's precedence between ``learning_rate``,
    ``lr_scheduler`` and the optimizer's own default (Adam's 0.001 overrides
    a scheduler's ``base_lr``, say).
    """

    learning_rate: float | Schedule
    call: str | None = None  # the constructor call that built it, its repr (see ``described``)

    def __repr__(self) -> str:
        return self.call or super().__repr__()


def optimizer(constructor: Callable[..., optax.GradientTransformation]):
    """Makes ``constructor`` an MXNet optimizer's, with MXNet's base arguments.

    ``constructor`` lists the optimizer's own arguments, in the order of
    MXNet 1.9.1's constructor, then takes ``base``, a :class:`Base`, by
    keyword. Its parameters named like a base argument (Adam's
    ``learning_rate``, LBSGD's ``multi_precision``) say where MXNet's
    signature has them and the optimizer's default for them; their values
    reach ``constructor`` in ``base`` only. An optimizer's default
    ``learning_rate`` overrides a scheduler's ``base_lr``, as in MXNet,
    unless the scheduler is a plain callable.

    The optimizer returned takes its own arguments by position or keyword
    and the other base arguments by keyword, all listed in its signature
    (``inspect.signature``, help, IDEs, ``optax.inject_hyperparams``); its
    docstring gains the base arguments' (``BASE_ARGS_DOC``).
    """
    own = inspect.signature(constructor).parameters
    visible = [p for name, p in own.items() if name != "base"]
    visible += [inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY,
                                  default=field.default, annotation=field.type)
                for field in dataclasses.fields(Base) if field.name not in own]
    signature = inspect.signature(constructor).replace(parameters=visible)
    own_defaults = {name: own[name].default for name in BASE_ARGS if name in own}

    @functools.wraps(constructor)
    def build(*args, **kwargs):
        unknown = validation.unknown_names(kwargs, signature.parameters)
        if unknown:
            raise TypeError(f"{constructor.__name__}(): {unknown}")
        try:
            given = signature.bind(*args, **kwargs).arguments
        except TypeError as error:
            raise TypeError(f"{constructor.__name__}(): {error}; it takes "
                            f"{list(signature.parameters)}") from None
        base = {name: given.pop(name) for name in BASE_ARGS if name in given}
        if not _is_plain_callable(base.get("lr_scheduler")):
            base = {**own_defaults, **base}
        built = Base(**base)
        built.warn_if_overriding()
        return constructor(**given, base=built)

    build.__signature__ = signature
    del build.__wrapped__  # its signature is this one, not the constructor's
    build.__doc__ = (constructor.__doc__ or "") + BASE_ARGS_DOC
    return build

