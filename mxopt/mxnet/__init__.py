"""MXNet the framework: its object surface, its saved files, and carrying a run over.

* :mod:`mxopt.mxnet.objects`: ``Optimizer`` and its classes (``SGD``, ``Adam``,
  ...), one per optimizer declared in :mod:`mxopt.registry`;
* :mod:`mxopt.mxnet.updater`: ``Updater`` and ``get_updater``, saving and
  restoring every index's state (:mod:`mxopt.mxnet.npz`, and MXNet's own files);
* :mod:`mxopt.mxnet.files`: reading MXNet's ``.params`` and ``.states`` files
  without MXNet (:mod:`mxopt.mxnet.unpickler` for the pickles inside);
* :mod:`mxopt.mxnet.importer`: MXNet's pickled optimizer and saved states
  as mxopt's.

A port imports MXNet's names from :mod:`mxopt.optimizer`, as it imported
them from ``mxnet.optimizer``. Nothing of the core (transforms, schedules,
hyperparameters, ...) imports this package.
"""

from mxopt.mxnet import files, importer, npz, objects, tables, unpickler, updater

__all__ = ["files", "importer", "npz", "objects", "tables", "unpickler", "updater"]
