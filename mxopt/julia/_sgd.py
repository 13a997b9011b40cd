"""MXNet.jl's ``SGD``: stochastic gradient descent with scheduled momentum."""

from __future__ import annotations

import dataclasses

import optax

from mxopt import transforms, validation
from mxopt.julia._optimizer import (
    _checked,
    _descend,
    _f32,
    _normalized,
    _Optimizer,
    _Options,
    option,
)
from mxopt.julia._schedulers import (
    AbstractMomentumScheduler,
    Momentum,
    get_momentum,
    get_momentum_scheduler,
)


@dataclasses.dataclass(frozen=True, kw_only=True)
class SGDOptions(_Options):
    """:class:`SGD`'s options (MXNet.jl: ``SGDOptions``); see :class:`SGD`."""

    lr: float = 0.01
    momentum: float = option(0.0, validation.decay_rate)
    weight_decay: float = 0.0001
    momentum_scheduler: AbstractMomentumScheduler | None = None

    def __post_init__(self):
        super().__post_init__()
        get_momentum_scheduler(self.momentum_scheduler, self.momentum)


class SGD(_Optimizer):
    """Stochastic gradient descent with momentum (MXNet.jl: ``SGD``).

    ``SGD(*, lr=0.01, momentum=0.0, grad_clip=0, weight_decay=0.0001,
    lr_scheduler=None, momentum_scheduler=None)``. Per update, with ``g``
    from :func:`~mxopt.julia.normalized_gradient`, ``lr`` and ``mu`` from the
    schedulers at ``opt.state``::

        mom = mu * mom - lr * g
        w = w + mom

    With ``Momentum.Null`` (``momentum=0`` and no scheduler) there is no
    momentum buffer: the state is ``None`` and ``w = w - lr * g``. The
    learning rate sits inside the buffer, so a change of rate takes effect
    gradually. The state is an :class:`mxopt.transforms.TraceState`
    (``trace`` is MXNet.jl's ``mom``; its ``momentum`` is the value the last
    update used).

    Args:
      lr: the learning rate, > 0; ``LearningRate.Fixed(lr)`` unless
        ``lr_scheduler`` is given, which overrides it.
      momentum: in [0, 1); ``Momentum.Fixed(momentum)``, or ``Momentum.Null``
        for 0, unless ``momentum_scheduler`` is given, which overrides it.
      grad_clip: clip the batch-averaged gradient to ``[-grad_clip,
        grad_clip]`` if > 0.
      weight_decay: >= 0, added as ``weight_decay * w`` after clipping.
      lr_scheduler: an ``AbstractLearningRateScheduler``.
      momentum_scheduler: an ``AbstractMomentumScheduler`` giving values in
        [0, 1).
    """

    Options = SGDOptions

    def _resolve(self, opts):
        return dataclasses.replace(super()._resolve(opts), momentum_scheduler=(
            get_momentum_scheduler(opts.momentum_scheduler, opts.momentum)))

    @property
    def _stateful(self):
        return not isinstance(self.opts.momentum_scheduler, Momentum.Null)

    def create_state(self, index, weight):
        del index
        # The momentum in the state is replaced by the scheduler's at each update.
        return transforms.trace(0.0).init(weight) if self._stateful else None

    def _hyperparameters(self, state):
        h = super()._hyperparameters(state)
        if self._stateful:
            h["momentum"] = _f32(_checked("momentum from momentum_scheduler",
                                          get_momentum(self.opts.momentum_scheduler, state),
                                          validation.decay_rate))
        return h

    @classmethod
    def _apply(cls, plan, weight, grad, state, h):
        step = _descend(_normalized(plan, grad, weight, h), weight, h)
        if state is not None:
            step, state = transforms.trace(h["momentum"]).update(
                step, state._replace(momentum=h["momentum"]))
        return optax.apply_updates(weight, step), state
