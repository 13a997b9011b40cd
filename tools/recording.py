"""What the recorders in tools/ share: their command line and the metadata they record."""

import argparse
import importlib.util
import logging
import pathlib
import sys
import warnings

import mxnet as mx
import numpy as np

FIXTURES = pathlib.Path(__file__).resolve().parent.parent / "tests" / "fixtures"


def arguments(doc: str, out: pathlib.Path, *extra: tuple[str, dict]) -> argparse.Namespace:
    """Parses a recorder's command line: ``--out`` (default ``out``) and ``extra``
    (``(flag, add_argument keywords)``). MXNet's logging and warnings are silenced
    from then on, so that the recorder's own report can be read."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--out", type=pathlib.Path, default=out)
    for flag, options in extra:
        parser.add_argument(flag, **options)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.simplefilter("ignore")
    return args


def meta(script: str, seed: int) -> dict:
    """Which MXNet and numpy recorded a fixture, with which script and seed."""
    return {"mxnet_version": mx.__version__, "numpy_version": np.__version__,
            "recorded_by": f"tools/{pathlib.Path(script).name}", "seed": seed}


def module_file(package: str, relative: str):
    """The module at ``relative`` inside the installed ``package``, loaded by its file path,
    so that the package's ``__init__`` (GluonCV's and GluonNLP's import their whole data
    stacks) does not run. It is loaded under its own name (``gluonnlp.optimizer.bert_adam``)
    and put in ``sys.modules``: what pickles its classes names them as the package does, and
    a later import of it finds it loaded."""
    name = ".".join([package, *pathlib.PurePosixPath(relative).with_suffix("").parts])
    spec = importlib.util.find_spec(package)
    path = pathlib.Path(spec.submodule_search_locations[0]) / relative
    loader = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    sys.modules[name] = module
    return module
