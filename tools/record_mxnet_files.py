"""Record parameter and optimizer-state files written by Apache MXNet 1.9.1.

Run with the interpreter of a virtual environment that has MXNet (see
tools/record_mxnet.py)::

    /tmp/mxnet-env/bin/python tools/record_mxnet_files.py

It writes small files into ``tests/fixtures/mxnet_files/``: ``params/`` holds
what ``nd.save``, ``npx.save``, gluon's ``save_parameters`` and
``Module.save_checkpoint`` write; ``states/`` holds what
``Updater.get_states``, ``gluon.Trainer.save_states`` and
``Module.save_optimizer_states`` write. ``expected.json`` says what each file
holds, as MXNet itself reports it: every array with its dtype, shape, values
and raw little-endian bytes (sparse arrays densified by MXNet's ``tostype``),
and for state files the nesting of each index's state and the pickled
optimizer's class and attributes. tests/test_mxnet_files.py replays it through
mxopt.mxnet.files without MXNet.

MXNet 1.9.1 cannot make int16/uint16/uint32/uint64 arrays (its operators
reject those dtypes), and nothing in it writes ``.npz`` files (``npx.save``
writes the same container with version-3 NDArrays), so neither is recorded
here. The two ``*_protocol*.states`` files re-pickle an updater's states with
pickle protocols 0 and 2, the protocols Python 2 MXNet used.
"""

import ctypes
import json
import pickle
import shutil
import tempfile

import mxnet as mx
import numpy as np
import recording
from mxnet import gluon, npx
from mxnet._ctypes.ndarray import _imperative_invoke
from mxnet.base import _LIB, OpHandle, c_str, check_call

SEED = 20261122
# MXNet's Python front end names bfloat16 by this structured NumPy dtype.
MX_BFLOAT16 = np.dtype([("bfloat16", np.uint16)])
STATE_SHAPES = [(2, 3), (3,)]


def cast(array, dtype):
    """Run MXNet's Cast operator with a dtype name its Python front end cannot parse."""
    handle = OpHandle()
    check_call(_LIB.NNGetOpHandle(c_str("Cast"), ctypes.byref(handle)))
    return _imperative_invoke(handle.value, [array], ["dtype"], [dtype], None, False, False)


def encode_array(array):
    """What MXNet says an (NDArray or mx.np) array holds, as JSON."""
    if array.stype != "default":
        array = array.tostype("default")
    host = array.asnumpy()
    if host.dtype == MX_BFLOAT16:
        bits = host.view(np.uint16)
        widened = cast(array, "float32").asnumpy()
        return {"dtype": "bfloat16", "shape": list(host.shape), "values": widened.tolist(),
                "hex": bits.astype("<u2").tobytes().hex()}
    return {"dtype": host.dtype.name, "shape": list(host.shape), "values": host.tolist(),
            "hex": host.astype(host.dtype.newbyteorder("<")).tobytes().hex()}


def encode_value(value):
    """JSON for a pickled value: arrays, MXNet objects and containers tagged by kind."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return {"numpy_scalar": value.dtype.name, "hex": value.tobytes().hex()}
    if isinstance(value, (mx.nd.NDArray, mx.np.ndarray)):
        return {"array": encode_array(value)}
    if isinstance(value, tuple):
        return {"tuple": [encode_value(v) for v in value]}
    if isinstance(value, list):
        return {"list": [encode_value(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode_value(k), encode_value(v)] for k, v in value.items()]}
    if isinstance(value, (mx.optimizer.Optimizer, mx.lr_scheduler.LRScheduler)):
        return encode_object(value)
    raise TypeError(f"cannot encode {type(value)}")


def encode_object(obj):
    attributes = obj.__getstate__() if isinstance(obj, mx.optimizer.Optimizer) else obj.__dict__
    return {"object": type(obj).__name__, "module": type(obj).__module__,
            "attributes": encode_value(attributes)}


def sample(rng, shape, dtype):
    values = rng.standard_normal(shape) * 3
    if np.dtype(dtype).kind in "iub":
        values = np.round(values)
    if np.dtype(dtype).kind == "u":
        values = np.abs(values)
    return mx.nd.array(values.astype(dtype), dtype=dtype)


def dtype_arrays(rng):
    """One array per dtype MXNet 1.9.1 can save, in the shapes legacy semantics allow."""
    arrays = []
    shapes = [(1,), (2, 3), (2, 3, 4)]
    for i, dtype in enumerate(["float32", "float64", "float16", "uint8", "int8", "int32",
                               "int64", "bool"]):
        arrays.append(sample(rng, shapes[i % 3], dtype))
    special = mx.nd.array([np.inf, -np.inf, -0.0, np.nan, 1e-45, 3.4e38], dtype="float32")
    arrays.append(special)
    arrays.append(cast(mx.nd.array(rng.standard_normal((2, 3)), dtype="float32"), "bfloat16"))
    return arrays


def record_params(rng, out):
    """Write every parameter file; return their expected contents by file name."""
    expected = {}

    def saved(name, value):
        expected[name] = ({"kind": "dict", "names": list(value),
                           "arrays": [encode_array(a) for a in value.values()]}
                          if isinstance(value, dict) else
                          {"kind": "list", "arrays": [encode_array(a) for a in value]})

    arrays = dtype_arrays(rng)
    mx.nd.save(str(out / "nd_list.params"), arrays)
    saved("nd_list.params", arrays)

    named = {"weight": sample(rng, (2, 3), "float32"), "bias": sample(rng, (3,), "float64"),
             "step": mx.nd.array([7], dtype="int64"), "zzz_first_saved_last": arrays[2]}
    mx.nd.save(str(out / "nd_dict.params"), named)
    saved("nd_dict.params", named)

    rows = rng.standard_normal((2, 3)).astype("float32")
    sparse = {
        "row_sparse": mx.nd.sparse.row_sparse_array((rows, np.array([1, 3])), shape=(5, 3)),
        "csr": mx.nd.sparse.csr_matrix(
            (np.array([1.5, -2.0, 3.25], dtype="float32"), np.array([0, 2, 1]),
             np.array([0, 2, 2, 3])), shape=(3, 4)),
        "row_sparse_empty": mx.nd.sparse.zeros("row_sparse", (3, 2)),
        "csr_empty": mx.nd.sparse.zeros("csr", (2, 5), dtype="float64"),
    }
    mx.nd.save(str(out / "sparse.params"), sparse)
    saved("sparse.params", sparse)

    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(4, in_units=3), gluon.nn.BatchNorm(in_channels=4))
    net.initialize(mx.init.Normal(1.0))
    net(mx.nd.array(rng.standard_normal((5, 3))))
    with mx.autograd.record():
        net(mx.nd.array(rng.standard_normal((5, 3))))
    net.save_parameters(str(out / "gluon_net.params"))
    saved("gluon_net.params", {k: v.data() for k, v in net._collect_params_with_prefix().items()})

    npx.set_np()
    try:
        shaped = {f"shape{i}": mx.np.array(rng.standard_normal(s).astype("float32"))
                  for i, s in enumerate([(), (0,), (1,), (2, 3), (2, 3, 4), (2, 0)])}
        shaped["int_scalar"] = mx.np.array(5, dtype="int32")
        npx.save(str(out / "np_shapes.params"), shaped)
        saved("np_shapes.params", shaped)
        npx.save(str(out / "np_list.params"), [mx.np.ones((2,), dtype="float16")])
        saved("np_list.params", [mx.np.ones((2,), dtype="float16")])
    finally:
        npx.reset_np()
    return expected


def record_module(rng, out):
    """Write Module.save_checkpoint's params and states; return both expected entries."""

    data = mx.sym.Variable("data")
    fc = mx.sym.FullyConnected(data, num_hidden=2, name="fc")
    bn = mx.sym.BatchNorm(fc, name="bn")
    head = mx.sym.LinearRegressionOutput(bn, name="out")
    module = mx.mod.Module(head, data_names=["data"], label_names=["out_label"])
    module.bind(data_shapes=[("data", (4, 3))], label_shapes=[("out_label", (4, 2))])
    module.init_params(mx.init.Normal(1.0))
    module.init_optimizer(optimizer="sgd", optimizer_params={"learning_rate": 0.1,
                                                            "momentum": 0.9, "wd": 1e-3})
    for _ in range(2):
        batch = mx.io.DataBatch([mx.nd.array(rng.standard_normal((4, 3)))],
                                [mx.nd.array(rng.standard_normal((4, 2)))])
        module.forward_backward(batch)
        module.update()
    with tempfile.TemporaryDirectory() as tmp:
        module.save_checkpoint(f"{tmp}/module", 3, save_optimizer_states=True)
        shutil.copy(f"{tmp}/module-0003.params", out / "params" / "module-0003.params")
        shutil.copy(f"{tmp}/module-0003.states", out / "states" / "module-0003.states")
    arg_params, aux_params = module.get_params()
    params = {**{f"arg:{k}": v for k, v in arg_params.items()},
              **{f"aux:{k}": v for k, v in aux_params.items()}}
    return ({"kind": "dict", "names": list(params),
             "arrays": [encode_array(a) for a in params.values()]},
            encode_states(module._updater.states, None))


# Each case: optimizer name, create() kwargs, parameter dtype, parameter storage type.
UPDATER_CASES = {
    "sgd_momentum": ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-4}, "float32"),
    # Sparse weights get sparse states: pickled as RowSparseNDArray.
    "sgd_row_sparse": ("sgd", {"learning_rate": 0.1, "momentum": 0.9}, "float32",
                       "row_sparse"),
    "sgd_momentum_fp16_mp": ("sgd", {"learning_rate": 0.1, "momentum": 0.9,
                                     "multi_precision": True}, "float16"),
    "sgd_no_momentum": ("sgd", {"learning_rate": 0.1}, "float32"),
    "nag": ("nag", {"learning_rate": 0.05, "momentum": 0.8}, "float32"),
    "adam_factor": ("adam", {"learning_rate": 0.01, "lr_scheduler": (
        "FactorScheduler", {"step": 1, "factor": 0.5, "base_lr": 0.01})}, "float32"),
    "rmsprop": ("rmsprop", {"learning_rate": 0.01}, "float32"),
    "rmsprop_centered": ("rmsprop", {"learning_rate": 0.01, "centered": True}, "float32"),
    "adagrad": ("adagrad", {"learning_rate": 0.1}, "float32"),
    "lamb": ("lamb", {"learning_rate": 0.01, "lr_scheduler": (
        "PolyScheduler", {"max_update": 10, "base_lr": 0.01, "pwr": 2,
                          "warmup_steps": 1})}, "float32"),
    # A NumPy scalar where MXNet expects a float: it is pickled as one.
    "sgd_numpy_scalar": ("sgd", {"learning_rate": np.float32(0.25), "wd": np.float64(1e-3),
                                 "momentum": 0.5}, "float32"),
}


def trained_updater(rng, name, kwargs, dtype, stype="default"):
    kwargs = dict(kwargs)
    if "lr_scheduler" in kwargs:
        kind, scheduler_kwargs = kwargs["lr_scheduler"]
        kwargs["lr_scheduler"] = getattr(mx.lr_scheduler, kind)(**scheduler_kwargs)
    updater = mx.optimizer.get_updater(mx.optimizer.create(name, **kwargs))
    weights = [sample(rng, s, dtype).tostype(stype) for s in STATE_SHAPES]
    for _ in range(2):
        for index, weight in enumerate(weights):
            updater(index, sample(rng, weight.shape, dtype).tostype(stype), weight)
    return updater


def encode_states(states, optimizer):
    return {"states": encode_value(states),
            "optimizer": None if optimizer is None else encode_object(optimizer)}


def record_states(rng, out):
    expected = {}
    for case, spec in UPDATER_CASES.items():
        updater = trained_updater(rng, *spec)
        (out / f"{case}.states").write_bytes(updater.get_states(dump_optimizer=False))
        expected[f"{case}.states"] = encode_states(updater.states, None)
        (out / f"{case}_optimizer.states").write_bytes(updater.get_states(dump_optimizer=True))
        expected[f"{case}_optimizer.states"] = encode_states(updater.states, updater.optimizer)
        if case == "sgd_numpy_scalar":
            for protocol in (0, 2):
                file = f"{case}_protocol{protocol}.states"
                (out / file).write_bytes(
                    pickle.dumps((updater.states, updater.optimizer), protocol=protocol))
                expected[file] = encode_states(updater.states, updater.optimizer)

    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(3, in_units=2), gluon.nn.BatchNorm(in_channels=3))
    net.initialize(mx.init.Normal(1.0))
    trainer = gluon.Trainer(net.collect_params(), "adam", {
        "learning_rate": 0.01, "multi_precision": False,
        "lr_scheduler": mx.lr_scheduler.MultiFactorScheduler(step=[1, 3], factor=0.3)})
    for _ in range(2):
        with mx.autograd.record():
            loss = net(mx.nd.array(rng.standard_normal((4, 2)))).sum()
        loss.backward()
        trainer.step(4)
    trainer.save_states(str(out / "trainer.states"))
    updater = trainer._updaters[0]
    expected["trainer.states"] = encode_states(updater.states, updater.optimizer)

    npx.set_np()
    try:
        net = gluon.nn.Dense(2, in_units=3)
        net.initialize(mx.init.Normal(1.0))
        trainer = gluon.Trainer(net.collect_params(), "sgd",
                                {"learning_rate": 0.1, "momentum": 0.9})
        for _ in range(2):
            with mx.autograd.record():
                loss = net(mx.np.array(rng.standard_normal((4, 3)), dtype="float32")).sum()
            loss.backward()
            trainer.step(4)
        trainer.save_states(str(out / "trainer_np.states"))
        updater = trainer._updaters[0]
        expected["trainer_np.states"] = encode_states(updater.states, updater.optimizer)
    finally:
        npx.reset_np()
    return expected


def main():
    args = recording.arguments(__doc__, recording.FIXTURES / "mxnet_files")
    mx.random.seed(SEED)
    np.random.seed(SEED)
    rng = np.random.default_rng(SEED)
    for folder in ("params", "states"):
        shutil.rmtree(args.out / folder, ignore_errors=True)
        (args.out / folder).mkdir(parents=True)
    params = record_params(rng, args.out / "params")
    states = record_states(rng, args.out / "states")
    params["module-0003.params"], states["module-0003.states"] = record_module(rng, args.out)
    meta = recording.meta(__file__, SEED)
    (args.out / "expected.json").write_text(
        json.dumps({"meta": meta, "params": params, "states": states}) + "\n")
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"recorded {len(params)} parameter files and {len(states)} state files "
          f"({size / 1024:.1f} KiB in all)")


if __name__ == "__main__":
    main()
