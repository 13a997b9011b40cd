"""mxopt: Apache MXNet's optimizers, schedulers and their exact numbers, on JAX.

Every optimizer is an ``optax.GradientTransformation``; build one by name
with :func:`create` (MXNet's keyword arguments) or call it directly.
"""

from mxopt import julia, schedules
from mxopt.hyperparams import get_hyperparams, set_hyperparams
from mxopt.optimizers import adam, nag, sgd
from mxopt.precision import multi_precision
from mxopt.registry import create, register, registered_names
from mxopt.schedules import (
                             CosineScheduler,
                             FactorScheduler,
                             LRScheduler,
                             MultiFactorScheduler,
                             PolyScheduler,
)
from mxopt.structure import check_trees
from mxopt.transforms import (
                             add_decayed_weights,
                             clip,
                             rescale,
                             scale_by_adam,
                             scale_by_learning_rate,
                             trace,
)

__version__ = "0.1.0"

__all__ = [
    "CosineScheduler", "FactorScheduler", "LRScheduler", "MultiFactorScheduler",
    "PolyScheduler", "adam", "add_decayed_weights", "check_trees", "clip", "create",
    "get_hyperparams", "julia", "multi_precision", "nag", "register", "registered_names",
    "rescale", "scale_by_adam", "scale_by_learning_rate", "schedules", "set_hyperparams", "sgd",
    "trace",
]
