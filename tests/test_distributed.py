"""Data-parallel training across two JAX processes gives the single-process numbers.

Two worker processes (tests/distributed_worker.py) form a JAX cluster on localhost over gloo,
two CPU devices each, and train the same MLP with each optimizer below on their halves of one
global batch. Their final params must agree bit for bit, and match a run on the whole batch
on one device here up to float32 rounding: the cross-device all-reduce sums the batch
in a different order, so the two differ by about 1e-7.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys
import time

import distributed_worker as worker
import jax
import numpy as np
import pytest

SPECS = {
    "sgd": ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4}),
    "adam": ("adam", {"learning_rate": 1e-2}),
    "lamb": ("lamb", {"learning_rate": 1e-2, "wd": 1e-2}),  # its trust ratio takes norms
}
TIMEOUT_S = 120
ROOT = pathlib.Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def worker_dir(tmp_path_factory) -> pathlib.Path:
    """Runs both workers once, for all optimizers (one start-up and cluster, not three)."""
    out = tmp_path_factory.mktemp("distributed")
    # No inherited XLA_FLAGS (device counts: the workers set their own) and no *_proxy
    # variables, which gRPC would route the coordinator's 127.0.0.1 connections through.
    env = {k: v for k, v in os.environ.items()
           if k != "XLA_FLAGS" and not k.lower().endswith("_proxy")}
    env.update(JAX_PLATFORMS="cpu", CUDA_VISIBLE_DEVICES="",
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])))
    port, specs = str(_free_port()), json.dumps(list(SPECS.values()))
    logs = [open(out / f"worker_{i}.log", "w+") for i in range(2)]  # files: no pipe deadlock
    procs = []
    try:
        for i, log in enumerate(logs):
            procs.append(subprocess.Popen(
                [sys.executable, str(ROOT / "tests" / "distributed_worker.py"), port, str(i),
                 str(out), specs], env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + TIMEOUT_S
        codes = [None, None]
        # Done when both exit 0, or as soon as one fails: the other would wait for it.
        while codes != [0, 0] and not any(codes) and time.monotonic() < deadline:
            time.sleep(0.1)
            codes = [p.poll() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
        for log in logs:
            log.close()
    if codes != [0, 0]:
        output = "\n".join(f"--- worker {i}, exit code {c} (None: killed), output:\n"
                           f"{(out / f'worker_{i}.log').read_text()}" for i, c in enumerate(codes))
        pytest.fail(f"workers failed or ran past {TIMEOUT_S} s\n{output}")
    return out


@pytest.mark.parametrize("name", SPECS)
def test_two_processes_match_one(worker_dir, name):
    index = list(SPECS).index(name)
    p0, p1 = (dict(np.load(worker_dir / f"{index}_{i}.npz")) for i in range(2))
    reference = worker.train(SPECS[name], worker.init_params(), *worker.global_batch())
    reference = {jax.tree_util.keystr(path, simple=True, separator="/"): np.asarray(leaf)
                 for path, leaf in jax.tree_util.tree_leaves_with_path(reference)}
    assert p0.keys() == p1.keys() == reference.keys()
    for key, value in reference.items():
        assert p0[key].dtype == value.dtype == np.float32, key
        np.testing.assert_array_equal(p0[key], p1[key], err_msg=f"processes differ: {key}")
        np.testing.assert_allclose(p0[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
        # The optimizer moved the params, so agreeing with the reference means something.
        initial = worker.init_params()[key.split("/")[0]][key.split("/")[1]]
        assert not np.allclose(value, initial, rtol=0, atol=1e-3), key
