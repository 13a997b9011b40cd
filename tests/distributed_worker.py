"""One process of test_distributed's two-process, data-parallel training run.

Run as ``python distributed_worker.py PORT PROCESS_ID OUT_DIR SPECS_JSON``: it joins a
2-process JAX cluster on 127.0.0.1:PORT with two CPU devices of its own (a 4-device global
mesh), trains the MLP below on its half of the global batch with each optimizer in
SPECS_JSON (a list of ``[name, kwargs]``), and writes ``OUT_DIR/<i>_<process_id>.npz`` with
the final params of the i-th optimizer. The pytest process imports the model, the data and
:func:`train` from here for its single-device reference run, so both run the same code.
"""

import json
import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mxopt

NUM_PROCESSES, LOCAL_DEVICES, BATCH, STEPS = 2, 2, 16, 5


def init_params() -> dict:
    """A 2-layer MLP, 8 -> 16 -> 1, with fixed numpy weights (the same in every process)."""
    rng = np.random.default_rng(0)
    return {"dense1": {"weight": rng.normal(0, 0.5, (8, 16)).astype(np.float32),
                       "bias": np.zeros(16, np.float32)},
            "dense2": {"weight": rng.normal(0, 0.5, (16, 1)).astype(np.float32),
                       "bias": np.zeros(1, np.float32)}}


def global_batch() -> tuple[np.ndarray, np.ndarray]:
    """A fixed synthetic regression batch of BATCH rows: y = sin(x @ w) plus noise."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(BATCH, 8)).astype(np.float32)
    y = np.sin(x @ rng.normal(size=(8, 1))) + 0.1 * rng.normal(size=(BATCH, 1))
    return x, y.astype(np.float32)


def loss_fn(params, x, y):
    """Mean squared error over the whole (global) batch."""
    h = jnp.tanh(x @ params["dense1"]["weight"] + params["dense1"]["bias"])
    return jnp.mean((h @ params["dense2"]["weight"] + params["dense2"]["bias"] - y) ** 2)


def train(spec, params, x, y):
    """STEPS steps of ``mxopt.create(*spec)``; the arrays' shardings say where it runs."""
    tx = mxopt.create(spec[0], **spec[1])

    @jax.jit
    def step(params, state, x, y):
        grads = jax.grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    state = jax.jit(tx.init)(params)
    for _ in range(STEPS):
        params, state = step(params, state, x, y)
    return params


def main(port: str, process_id: str, out_dir: str, specs: str) -> None:
    # Both before the backend starts. gloo is 0.10.2's default; set it so a changed
    # default or a JAX_CPU_COLLECTIVES_IMPLEMENTATION in the environment cannot bite.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.config.update("jax_num_cpu_devices", LOCAL_DEVICES)
    pid = int(process_id)
    jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}",
                               num_processes=NUM_PROCESSES, process_id=pid,
                               initialization_timeout=60)
    assert jax.process_count() == NUM_PROCESSES
    assert jax.device_count() == NUM_PROCESSES * LOCAL_DEVICES, jax.devices()

    mesh = jax.make_mesh((jax.device_count(),), ("data",))
    batch = jax.NamedSharding(mesh, jax.P("data"))  # rows split over all 4 devices
    replicated = jax.NamedSharding(mesh, jax.P())
    half = BATCH // NUM_PROCESSES
    x, y = (jax.make_array_from_process_local_data(batch, a[pid * half:(pid + 1) * half])
            for a in global_batch())
    # Each process holds the full params: its local data is the whole (replicated) array.
    params = jax.tree.map(lambda a: jax.make_array_from_process_local_data(replicated, a),
                          init_params())

    for i, spec in enumerate(json.loads(specs)):
        # make_mesh's axes are Explicit by default in jax 0.10: a jit that builds arrays like
        # the params (tx.init's zeros_like, as in plain optax) needs the mesh set around it.
        with jax.set_mesh(mesh):
            final = train(spec, params, x, y)
        leaves = {}
        for path, leaf in jax.tree_util.tree_leaves_with_path(final):
            shards = [np.asarray(s.data) for s in leaf.addressable_shards]
            assert leaf.is_fully_replicated and all(
                np.array_equal(s, shards[0]) for s in shards), path
            leaves[jax.tree_util.keystr(path, simple=True, separator="/")] = shards[0]
        np.savez(pathlib.Path(out_dir) / f"{i}_{pid}.npz", **leaves)
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(*sys.argv[1:])
