"""MXNet's ``mxnet.optimizer``: ``from mxopt import optimizer`` for ``from mxnet import optimizer``.

The objects are :mod:`mxopt.mxnet.objects`' (``Optimizer`` and one class
per declared optimizer, ``SGD`` to ``Test``) and :mod:`mxopt.mxnet.updater`'s
(``Updater``, ``get_updater``); this module gathers them under MXNet's names.
"""

from mxopt.mxnet import objects
from mxopt.mxnet.objects import (
    Optimizer,
    SchedulerConflictError,
    class_for,
    create,
    register,
)
from mxopt.mxnet.updater import Updater, get_updater

# MXNet's classes, SGD to Test: one for each declared optimizer.
CLASSES = objects.CLASSES
globals().update(CLASSES)

__all__ = ["Optimizer", "SchedulerConflictError", "Updater", "class_for", "create",
           "get_updater", "register", *CLASSES]
