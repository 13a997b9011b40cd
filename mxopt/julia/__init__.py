"""MXNet.jl's optimizer API on JAX: ``OptimizationState``, schedulers and optimizers.

This mirrors the optimizer module of MXNet.jl (the Julia binding of MXNet,
releases 0.3-0.4, before its Unicode-keyword rewrite): the training loop
sets an :class:`OptimizationState` on the optimizer (``opt.state``), the
schedulers read the learning rate and momentum from it, and for each weight
:func:`create_state` makes a state and :func:`update` returns the new weight
and state (JAX arrays are immutable; MXNet.jl updates in place).
:func:`get_updater` keeps the states per weight index for you.

Schedulers::

    LearningRate.Fixed(eta)                      eta
    LearningRate.Exp(eta0, gamma=0.9)            eta0 * gamma^t
    LearningRate.Inv(eta0, gamma=0.9, power=0.5) eta0 * (1 + gamma*t)^(-power)
    Momentum.Null()                              0, and no momentum buffer
    Momentum.Fixed(mu)                           mu
    Momentum.NadamScheduler(mu0=0.99, delta=0.004, gamma=0.5, alpha=0.96)
                                                 mu0 * (1 - gamma * alpha^(t*delta)), at t, t+1

where ``t`` is ``curr_epoch``, or ``curr_iter`` with ``decay_on_iteration=True``
(the Nadam schedule always uses ``curr_iter``).

Optimizers (keyword arguments and defaults as MXNet.jl's), each stepping with
:func:`normalized_gradient` (``grad / batch_size``, clipped, plus weight decay):
:class:`SGD`, :class:`ADAM`, :class:`AdaGrad`, :class:`AdaDelta`,
:class:`AdaMax`, :class:`RMSProp`, :class:`Nadam`.
"""

from mxopt.julia._adadelta import AdaDelta, AdaDeltaOptions
from mxopt.julia._adagrad import AdaGrad, AdaGradOptions
from mxopt.julia._adam import ADAM, ADAMOptions
from mxopt.julia._adamax import AdaMax, AdaMaxOptions
from mxopt.julia._nadam import Nadam, NadamOptions
from mxopt.julia._optimizer import (
    AbstractOptimizer,
    AbstractOptimizerOptions,
    Updater,
    create_state,
    get_updater,
    normalized_gradient,
    update,
)
from mxopt.julia._rmsprop import RMSProp, RMSPropOptions
from mxopt.julia._schedulers import (
    AbstractLearningRateScheduler,
    AbstractMomentumScheduler,
    LearningRate,
    Momentum,
    OptimizationState,
    get_learning_rate,
    get_lr_scheduler,
    get_momentum,
    get_momentum_scheduler,
)
from mxopt.julia._sgd import SGD, SGDOptions

__all__ = [
    "ADAM", "ADAMOptions", "AbstractLearningRateScheduler", "AbstractMomentumScheduler",
    "AbstractOptimizer", "AbstractOptimizerOptions", "AdaDelta", "AdaDeltaOptions", "AdaGrad",
    "AdaGradOptions", "AdaMax", "AdaMaxOptions", "LearningRate", "Momentum", "Nadam",
    "NadamOptions", "OptimizationState", "RMSProp", "RMSPropOptions", "SGD", "SGDOptions",
    "Updater", "create_state", "get_learning_rate", "get_lr_scheduler",
    "get_momentum", "get_momentum_scheduler", "get_updater", "normalized_gradient",
    "update",
]
