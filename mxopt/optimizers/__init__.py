"""MXNet's optimizers, one module each: its declaration, its chain of :mod:`mxopt.transforms`
and the direction transform it adds (``mxopt.optimizers.adam``, ...).

Importing this package registers every one with :mod:`mxopt.registry`; the
constructors are :mod:`mxopt`'s (``mxopt.adam``, ...).
"""

from mxopt.base import Base
from mxopt.optimizers import (
    adadelta,
    adagrad,
    adam,
    adamax,
    bertadam,
    dcasgd,
    ftml,
    ftrl,
    lamb,
    lars,
    lbsgd,
    mxnet_test,
    nadam,
    rmsprop,
    sgd,
    sgld,
    signum,
)

__all__ = ["Base", "adadelta", "adagrad", "adam", "adamax", "bertadam", "dcasgd", "ftml", "ftrl",
           "lamb", "lars", "lbsgd", "mxnet_test", "nadam", "rmsprop", "sgd", "sgld", "signum"]
