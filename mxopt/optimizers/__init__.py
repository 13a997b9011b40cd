"""MXNet's optimizers, each a chain of :mod:`mxopt.transforms`."""

from mxopt.optimizers.adam import adam
from mxopt.optimizers.sgd import nag, sgd

__all__ = ["adam", "nag", "sgd"]
