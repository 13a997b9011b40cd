"""Reads every file in a directory with every reader of untrusted bytes, under watch.

Run as ``python hostile_reader.py DIR``. The process first caps its address
space 2 GiB above what it has mapped after its imports, so that a reader that
runs away fails here instead of taking the machine. Then it reads each file of
DIR with each reader below and prints one JSON line per file: for each
reader, the exception's class and whether it is a ValueError (or null), and
the seconds it took; finally a line with the growth of the peak resident
memory over the whole run, in MiB.
"""

import json
import pathlib
import resource
import sys
import time
import traceback

import jax.numpy as jnp

from mxopt.mxnet import files as mxnet_files
from mxopt.mxnet import importer as mxnet_import
from mxopt.optimizer import Updater, create

UPDATER = Updater(create("adam", learning_rate=0.1))
UPDATER(0, jnp.ones(3), jnp.zeros(3))


def set_states(data: bytes) -> None:
    UPDATER.set_states(data)


READERS = {"load_params": mxnet_files.load_params, "load_states": mxnet_files.load_states,
           "import_optimizer": mxnet_import.import_optimizer, "set_states": set_states}


def mapped_bytes() -> int:
    fields = pathlib.Path("/proc/self/status").read_text().split("VmSize:")[1].split()
    return int(fields[0]) * 1024


def main(directory: str) -> None:
    set_states(UPDATER.get_states(dump_optimizer=True))  # imports and allocates what it needs
    limit = mapped_bytes() + 2 * 2**30
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for path in sorted(pathlib.Path(directory).iterdir()):
        data, outcomes = path.read_bytes(), {}
        for name, reader in READERS.items():
            start = time.perf_counter()
            try:
                reader(data)
                outcome = None
            except Exception as error:  # recorded: the test decides which are allowed
                allowed = isinstance(error, ValueError)
                outcome = {"type": type(error).__name__, "value_error": allowed,
                           "trace": "" if allowed else traceback.format_exc()}
            outcomes[name] = {"raised": outcome, "seconds": time.perf_counter() - start}
        print(json.dumps({"file": path.name, "readers": outcomes}), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({"peak_growth_mib": (peak - baseline) / 1024}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
