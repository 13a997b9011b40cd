"""mxopt: Apache MXNet's optimizers, schedulers and their exact numbers, on JAX.

Every optimizer is an ``optax.GradientTransformation``; build one by name
with :func:`create` (MXNet's keyword arguments) or call it directly.
MXNet's object surface (``Optimizer``, ``Updater``, ``get_updater``) is
:mod:`mxopt.optimizer`, MXNet.jl's optimizer module is :mod:`mxopt.julia`,
and Gluon's ``Trainer`` habits are :class:`mxopt.gluon.Trainer`;
:mod:`mxopt.checkpoint` saves and restores states, :mod:`mxopt.precision`
is mixed precision (master weights, MXNet AMP's loss scaling) and
:mod:`mxopt.sharding` sharded and ZeRO-1 training, :mod:`mxopt.packing`
one buffer per dtype for fast steps and compiles, and
:mod:`mxopt.mxnet.files` and :mod:`mxopt.mxnet.importer` carry MXNet's saved
parameters and optimizer states over. For notebooks, :func:`plot_schedule`
draws a schedule and :func:`describe` renders a state briefly, as states'
reprs do.
"""

from mxopt import (
    checkpoint,
    counting,
    gluon,
    gluoncv,
    hyperparams,
    julia,
    mxnet,
    optimizer,
    packing,
    precision,
    schedules,
    sharding,
)
from mxopt.counting import counted, update_count
from mxopt.hyperparams import get_hyperparams, set_hyperparams
from mxopt.optimizer import Optimizer, Updater, get_updater
from mxopt.optimizers.adadelta import adadelta, scale_by_adadelta
from mxopt.optimizers.adagrad import adagrad, groupadagrad, scale_by_adagrad, scale_by_group_adagrad
from mxopt.optimizers.adam import adam
from mxopt.optimizers.adamax import adamax, scale_by_adamax
from mxopt.optimizers.bertadam import bertadam, scale_by_bertadam
from mxopt.optimizers.dcasgd import add_delay_compensation, dcasgd
from mxopt.optimizers.ftml import ftml, scale_by_ftml
from mxopt.optimizers.ftrl import ftrl, ftrl_step
from mxopt.optimizers.lamb import lamb, scale_by_lamb, scale_by_trust_ratio
from mxopt.optimizers.lars import lars, record_leaf_norms, scale_by_lars
from mxopt.optimizers.lbsgd import accumulate_gradients, lbsgd, scale_by_lbsgd
from mxopt.optimizers.mxnet_test import mxnet_test
from mxopt.optimizers.nadam import nadam, scale_by_nadam, scale_by_nadam_with_momenta
from mxopt.optimizers.rmsprop import clip_new_weights, graves_momentum, rmsprop, scale_by_rmsprop
from mxopt.optimizers.sgd import ccsgd, nag, sgd
from mxopt.optimizers.sgld import scale_by_langevin, sgld
from mxopt.optimizers.signum import add_decoupled_weight_decay, scale_by_signum, signum
from mxopt.packing import Packed, pack, unpacking
from mxopt.plotting import plot_schedule, schedule_values
from mxopt.precision import apply_if_finite, dynamic_loss_scale, loss_scale, multi_precision
from mxopt.registry import create, register, registered_names
from mxopt.schedules import (
    CosineScheduler,
    FactorScheduler,
    LRScheduler,
    MultiFactorScheduler,
    PolyScheduler,
)
from mxopt.sharding import partition_states, place_state, state_bytes_per_device
from mxopt.structure import check_trees, describe
from mxopt.transforms import (
    LeafRates,
    add_decayed_weights,
    clip,
    momentum_buffer,
    next_learning_rate,
    rescale,
    scale_by_adam,
    scale_by_learning_rate,
    trace,
)

__version__ = "0.1.0"

__all__ = [
    "CosineScheduler", "FactorScheduler", "LRScheduler", "LeafRates", "MultiFactorScheduler",
    "Optimizer", "Packed", "PolyScheduler", "Updater", "accumulate_gradients", "adadelta",
    "adagrad", "adam", "adamax", "add_decayed_weights", "add_decoupled_weight_decay",
    "add_delay_compensation", "apply_if_finite", "bertadam", "ccsgd", "check_trees", "checkpoint",
    "clip", "clip_new_weights", "counted", "counting", "create", "dcasgd", "describe",
    "dynamic_loss_scale", "ftml", "ftrl", "ftrl_step", "get_hyperparams", "get_updater", "gluon",
    "gluoncv", "graves_momentum", "groupadagrad", "hyperparams", "julia", "lamb", "lars", "lbsgd",
    "loss_scale", "momentum_buffer", "multi_precision", "mxnet", "mxnet_test", "nadam", "nag",
    "next_learning_rate", "optimizer", "pack", "packing", "partition_states", "place_state",
    "plot_schedule", "precision", "record_leaf_norms", "register", "registered_names", "rescale",
    "rmsprop", "scale_by_adadelta", "scale_by_adagrad", "scale_by_adam", "scale_by_adamax",
    "scale_by_bertadam", "scale_by_ftml", "scale_by_group_adagrad", "scale_by_lamb",
    "scale_by_langevin", "scale_by_lars", "scale_by_lbsgd", "scale_by_learning_rate",
    "scale_by_nadam", "scale_by_nadam_with_momenta", "scale_by_rmsprop", "scale_by_signum",
    "scale_by_trust_ratio", "schedule_values", "schedules", "set_hyperparams", "sgd", "sgld",
    "sharding", "signum", "state_bytes_per_device", "trace", "unpacking", "update_count"
]
