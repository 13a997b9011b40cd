"""MXNet's optimizers, each a chain of :mod:`mxopt.transforms`.

Importing this package registers every one with :mod:`mxopt.registry`.
"""

from mxopt.base import Base
from mxopt.optimizers.adadelta import adadelta
from mxopt.optimizers.adagrad import adagrad, groupadagrad
from mxopt.optimizers.adam import adam
from mxopt.optimizers.adamax import adamax
from mxopt.optimizers.dcasgd import dcasgd
from mxopt.optimizers.ftml import ftml
from mxopt.optimizers.ftrl import ftrl
from mxopt.optimizers.lamb import lamb
from mxopt.optimizers.lars import lars
from mxopt.optimizers.lbsgd import lbsgd
from mxopt.optimizers.mxnet_test import mxnet_test
from mxopt.optimizers.nadam import nadam
from mxopt.optimizers.rmsprop import rmsprop
from mxopt.optimizers.sgd import ccsgd, nag, sgd
from mxopt.optimizers.sgld import sgld
from mxopt.optimizers.signum import signum

__all__ = ["Base", "adadelta", "adagrad", "adam", "adamax", "ccsgd", "dcasgd", "ftml", "ftrl",
           "groupadagrad", "lamb", "lars", "lbsgd", "mxnet_test", "nadam", "nag", "rmsprop",
           "sgd", "sgld", "signum"]
