"""Record MXNet 1.9.1 training runs, their saved files, and how they continue after a restart.

Run with the interpreter of a virtual environment that has MXNet (see
tools/record_mxnet.py)::

    /tmp/mxnet-env/bin/python tools/record_mxnet_runs.py

It writes ``tests/fixtures/mxnet_runs/``: ``runs.json`` and the files the
runs saved. Every number comes from MXNet; tests/test_mxnet_runs.py replays
them through mxopt without MXNet.

* ``resume``: for each optimizer whose states mxopt imports (GluonNLP
  0.10.0's ``bertadam`` among them, registered as tools/record_mxnet.py
  registers it), MXNet's own defaults, a float16 case with master weights,
  and random cases drawn as tools/record_mxnet.py draws them
  (hyperparameters, schedulers, multipliers, begin_num_update). An
  ``mx.optimizer.Updater`` takes ``SAVED_AT`` steps; the weights are saved
  with ``nd.save`` and the states with ``Updater.get_states``, with and
  without the optimizer. Then a new process would restart: a fresh Updater
  loads each file with ``set_states`` (with a freshly built optimizer, which
  the file's own replaces where it has one), the weights with ``nd.load``,
  and takes ``RESUMED`` more steps with the recorded gradients. Cases where
  MXNet raises are left out.
* ``gluon``: a two-layer network trained by ``gluon.Trainer`` (with a
  Parameter's ``lr_mult`` and another's ``wd_mult`` set), for SGD with
  momentum and a FactorScheduler, and for Adam. The initial parameters are
  saved with ``save_parameters``; at ``SAVED_AT`` the run saves its
  parameters and ``Trainer.save_states``, and a second network and trainer
  load them and train on. Each step's data, labels, loss, gradients (before
  rescaling) and weights are recorded.
* ``module``: the same network as a Symbol (one weight with ``lr_mult`` 2),
  trained by ``mx.mod.Module`` with SGD, momentum, weight decay (which
  Module's names keep off the biases) and a FactorScheduler. At
  ``SAVED_AT``, ``save_checkpoint(..., save_optimizer_states=True)``; then
  ``Module.load`` and training on, as MXNet resumes a Module (its optimizer
  is built anew, so its update counts start again).
"""

import json
import random
import shutil
import tempfile
from importlib import metadata

import mxnet as mx
import numpy as np
import recording
from mxnet import autograd, gluon
from record_mxnet import (
    PARAM_SHAPES,
    SHAPES,
    _ZeroNoise,
    handpicked_cases,
    make_scheduler,
    random_case,
    register_bertadam,
)

SEED = 20261201
SAVED_AT, RESUMED = 3, 4
RANDOM_CASES = 3
# The optimizers whose states mxopt.mxnet.importer reads.
IMPORTED = ["adadelta", "adagrad", "adam", "adamax", "bertadam", "ccsgd", "dcasgd", "ftml",
            "ftrl", "groupadagrad", "lamb", "nag", "rmsprop", "sgd", "signum", "test", "nadam"]
BATCH, STEPS, FEATURES, HIDDEN, CLASSES = 16, 8, 4, 8, 3


def as_lists(arrays):
    return [a.asnumpy().tolist() for a in arrays]


def build_optimizer(case):
    kwargs = dict(case["kwargs"])
    if "lr_scheduler" in kwargs:
        kwargs["lr_scheduler"] = make_scheduler(kwargs["lr_scheduler"])
    names = sorted(SHAPES.get(case["optimizer"], PARAM_SHAPES))
    opt = mx.optimizer.create(case["optimizer"], param_idx2name=dict(enumerate(names)), **kwargs)
    opt.set_lr_mult(case["set_lr_mult"])
    opt.set_wd_mult(case["set_wd_mult"])
    return opt


def steps(updater, weights, grads):
    """One Updater call per index per step, as Module's update does.

    Returns the weights and the learning rate after each step.
    """
    trajectory, rates = [], []
    for step_grads in grads:
        for i, (w, g) in enumerate(zip(weights, step_grads)):
            updater(i, g.copy(), w)  # a copy: AdaDelta rescales the gradient in place
        trajectory.append(as_lists(weights))
        rates.append(updater.optimizer.learning_rate)
    return trajectory, rates


def record_resume(case, out):
    """Train, save, restart from the files; return the case's record."""
    rng = np.random.RandomState(case["seed"])
    shapes = SHAPES.get(case["optimizer"], PARAM_SHAPES)
    names = sorted(shapes)
    dtype = np.dtype(case["dtype"])

    def draw_grads(count):
        return [[mx.nd.array(rng.normal(0, case["grad_scale"], shapes[n]), dtype=dtype)
                 for n in names] for _ in range(count)]

    opt = build_optimizer(case)
    updater = mx.optimizer.get_updater(opt)
    weights = [mx.nd.array(rng.uniform(-1, 1, shapes[n]), dtype=dtype) for n in names]
    record = dict(case, initial=as_lists(weights), names=names)
    record["lr_mult"] = {n: opt.lr_mult.get(n, 1.0) for n in names}
    record["wd_mult"] = {n: opt.wd_mult.get(n, 1.0) for n in names}
    before, after = draw_grads(SAVED_AT), draw_grads(RESUMED)
    record["grads"] = [as_lists(g) for g in before + after]
    record["weights"], record["learning_rates"] = steps(updater, weights, before)
    files = {"params": f"{case['id']}.params", "states": f"{case['id']}.states",
             "states_with_optimizer": f"{case['id']}_optimizer.states"}
    mx.nd.save(str(out / files["params"]), dict(zip(names, weights)))
    (out / files["states"]).write_bytes(updater.get_states(dump_optimizer=False))
    (out / files["states_with_optimizer"]).write_bytes(updater.get_states(dump_optimizer=True))
    record["files"] = files
    for key in ("states", "states_with_optimizer"):
        resumed = mx.optimizer.get_updater(build_optimizer(case))
        resumed.set_states((out / files[key]).read_bytes())
        loaded = mx.nd.load(str(out / files["params"]))
        record[f"resumed_from_{key}"], rates = steps(resumed, [loaded[n] for n in names], after)
        if key == "states_with_optimizer":  # the run as if never interrupted
            record["learning_rates"] += rates
    return record


def resume_cases(seed):
    cases = []
    for name in IMPORTED:
        rng = random.Random(f"{seed}-resume-{name}")
        drawn = [c for c in handpicked_cases(name) if "mxnet-raises" not in c["id"]]
        drawn += [dict(random_case(rng, name, i), id=f"{name}-resume-{i:02d}")
                  for i in range(RANDOM_CASES)]
        cases += drawn
    return cases


def dataset(rng):
    """Inputs and labels a linear rule assigns, so that the loss falls as the nets learn."""
    x = rng.normal(0, 1, (BATCH * STEPS, FEATURES)).astype("float32")
    labels = np.argmax(x @ rng.normal(0, 1, (FEATURES, CLASSES)), axis=1).astype("float32")
    return x, labels


GLUON_CASES = {
    "gluon_sgd": ("sgd", {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3,
                          "lr_scheduler": ("FactorScheduler", {"step": 3, "factor": 0.5})}),
    "gluon_adam": ("adam", {"learning_rate": 0.05, "wd": 1e-4, "beta2": 0.99}),
}


def gluon_net(params_file=None):
    net = gluon.nn.Sequential()
    net.add(gluon.nn.Dense(HIDDEN, activation="relu", in_units=FEATURES),
            gluon.nn.Dense(CLASSES, in_units=HIDDEN))
    if params_file is None:
        net.initialize(mx.init.Xavier())
    else:
        net.load_parameters(str(params_file))
    net[0].weight.lr_mult = 2.0
    net[1].bias.wd_mult = 0.0
    return net


def gluon_trainer(net, name, kwargs):
    kwargs = dict(kwargs)
    if "lr_scheduler" in kwargs:
        kind, scheduler_kwargs = kwargs["lr_scheduler"]
        kwargs["lr_scheduler"] = getattr(mx.lr_scheduler, kind)(
            base_lr=kwargs["learning_rate"], **scheduler_kwargs)
    return gluon.Trainer(net.collect_params(), name, kwargs)


def gluon_steps(net, trainer, x, labels, first, last):
    """Train; gradients and weights are listed by the Trainer's index (sorted by name)."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    params = trainer._params
    trajectory = []
    for step in range(first, last):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        with autograd.record():
            loss = loss_fn(net(mx.nd.array(x[batch])), mx.nd.array(labels[batch]))
        loss.backward()
        grads = [p.grad().copy() for p in params]
        trainer.step(BATCH)
        trajectory.append({"loss": float(loss.mean().asscalar()), "grads": as_lists(grads),
                           "weights": as_lists(p.data() for p in params)})
    return trajectory


def record_gluon(out, rng):
    x, labels = dataset(rng)
    gluon_net().save_parameters(str(out / "gluon-0000.params"))
    records = {}
    for case, (name, kwargs) in GLUON_CASES.items():
        net = gluon_net(out / "gluon-0000.params")
        trainer = gluon_trainer(net, name, kwargs)
        run = gluon_steps(net, trainer, x, labels, 0, SAVED_AT)
        net.save_parameters(str(out / f"{case}-{SAVED_AT:04d}.params"))
        trainer.save_states(str(out / f"{case}-{SAVED_AT:04d}.states"))
        run += gluon_steps(net, trainer, x, labels, SAVED_AT, STEPS)
        restarted = gluon_net(out / f"{case}-{SAVED_AT:04d}.params")
        trainer = gluon_trainer(restarted, name, kwargs)
        trainer.load_states(str(out / f"{case}-{SAVED_AT:04d}.states"))
        # save_parameters names each Parameter by its place in the network.
        saved_as = {id(p): n for n, p in restarted._collect_params_with_prefix().items()}
        records[case] = {
            "optimizer": name, "kwargs": kwargs, "run": run,
            "resumed": gluon_steps(restarted, trainer, x, labels, SAVED_AT, STEPS),
            "param_names": [saved_as[id(p)] for p in trainer._params],
            "lr_mult": [p.lr_mult for p in trainer._params],
            "wd_mult": [p.wd_mult for p in trainer._params],
            "files": {"initial": "gluon-0000.params",
                      "params": f"{case}-{SAVED_AT:04d}.params",
                      "states": f"{case}-{SAVED_AT:04d}.states"}}
    return {"x": x.tolist(), "labels": labels.tolist(), "batch_size": BATCH,
            "saved_at": SAVED_AT, "cases": records}


MODULE_OPTIMIZER = {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3}
MODULE_SCHEDULER = {"step": 2, "factor": 0.7}


def module_symbol():
    data = mx.sym.Variable("data")
    fc1 = mx.sym.FullyConnected(data, weight=mx.sym.Variable("fc1_weight", lr_mult=2.0),
                                num_hidden=HIDDEN, name="fc1")
    fc2 = mx.sym.FullyConnected(mx.sym.Activation(fc1, act_type="relu"), num_hidden=CLASSES,
                                name="fc2")
    return mx.sym.SoftmaxOutput(fc2, name="softmax")


def module_bind(module):
    module.bind(data_shapes=[("data", (BATCH, FEATURES))],
                label_shapes=[("softmax_label", (BATCH,))])


def module_init_optimizer(module):
    module.init_optimizer(optimizer="sgd", optimizer_params={
        **MODULE_OPTIMIZER, "lr_scheduler": mx.lr_scheduler.FactorScheduler(
            base_lr=MODULE_OPTIMIZER["learning_rate"], **MODULE_SCHEDULER)})


def module_steps(module, x, labels, first, last):
    names = module._exec_group.param_names
    trajectory = []
    for step in range(first, last):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        module.forward_backward(mx.io.DataBatch([mx.nd.array(x[batch])],
                                                [mx.nd.array(labels[batch])]))
        grads = [g[0].copy() for g in module._exec_group.grad_arrays]
        module.update()
        arg_params, _ = module.get_params()
        trajectory.append({"grads": as_lists(grads),
                           "weights": as_lists(arg_params[n] for n in names)})
    return trajectory


def record_module(out, rng):
    x, labels = dataset(rng)
    module = mx.mod.Module(module_symbol(), data_names=["data"], label_names=["softmax_label"])
    module_bind(module)
    module.init_params(mx.init.Xavier())
    names = module._exec_group.param_names
    arg_params, _ = module.get_params()
    initial = as_lists(arg_params[n] for n in names)
    module_init_optimizer(module)
    run = module_steps(module, x, labels, 0, SAVED_AT)
    with tempfile.TemporaryDirectory() as tmp:
        module.save_checkpoint(f"{tmp}/module", SAVED_AT, save_optimizer_states=True)
        for suffix in ("params", "states"):
            shutil.copy(f"{tmp}/module-{SAVED_AT:04d}.{suffix}", out)
        run += module_steps(module, x, labels, SAVED_AT, STEPS)
        restarted = mx.mod.Module.load(f"{tmp}/module", SAVED_AT, load_optimizer_states=True,
                                       data_names=["data"], label_names=["softmax_label"])
        module_bind(restarted)
        module_init_optimizer(restarted)
        resumed = module_steps(restarted, x, labels, SAVED_AT, STEPS)
    return {"x": x.tolist(), "labels": labels.tolist(), "batch_size": BATCH,
            "saved_at": SAVED_AT, "optimizer": "sgd", "kwargs": MODULE_OPTIMIZER,
            "scheduler": MODULE_SCHEDULER, "param_names": names, "initial": initial,
            "symbol_attributes": module_symbol().attr_dict(), "run": run, "resumed": resumed,
            "files": {"params": f"module-{SAVED_AT:04d}.params",
                      "states": f"module-{SAVED_AT:04d}.states"}}


def main():
    args = recording.arguments(__doc__, recording.FIXTURES / "mxnet_runs")
    mx.optimizer.optimizer.normal = _ZeroNoise()
    register_bertadam()
    mx.random.seed(SEED)
    np.random.seed(SEED)
    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "resume").mkdir(parents=True)
    resumes = []
    for case in resume_cases(SEED):
        try:
            resumes.append(record_resume(case, args.out / "resume"))
        except mx.base.MXNetError as error:
            print(f"{case['id']}: MXNet raises ({str(error).splitlines()[0][:80]}); left out")
    rng = np.random.default_rng(SEED)
    meta = {**recording.meta(__file__, SEED), "gluonnlp_version": metadata.version("gluonnlp")}
    runs = {"meta": meta, "resume": resumes, "gluon": record_gluon(args.out, rng),
            "module": record_module(args.out, rng)}
    (args.out / "runs.json").write_text(json.dumps(runs) + "\n")
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"recorded {len(resumes)} resumed runs, {len(runs['gluon']['cases'])} Gluon runs and "
          f"a Module run ({size / 1024:.1f} KiB in all)")


if __name__ == "__main__":
    main()
