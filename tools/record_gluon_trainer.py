"""Record Gluon Trainer runs of MXNet 1.9.1 as GluonCV's and GluonNLP's recipes drive them.

Run with the interpreter of MXNet's virtual environment (see record_mxnet.py),
with GluonCV and GluonNLP installed beside MXNet without their dependencies
(see record_gluoncv.py)::

    /tmp/mxnet-env/bin/python tools/record_gluon_trainer.py

It writes ``tests/fixtures/mxnet_trainer/``: ``runs.json`` and the state
file each run saved with ``Trainer.save_states``. Every case trains a small
network (Dense, LayerNorm, Dense; its Parameters named ``net_dense0_weight``
and so on) with ``gluon.Trainer`` on batches whose last one is short, and
records its data and labels and, step by step, the batch size, the
gradients (before the Trainer rescales them), the weights after the step,
``trainer.learning_rate`` and the loss:

* ``gluoncv_nag``: GluonCV's ImageNet recipe, NAG with momentum and weight
  decay under an ``LRSequential`` of a linear warmup and a cosine decay,
  no weight decay on biases, gammas and betas, ``trainer.step(batch_size)``;
* ``sgd_set_learning_rate``: momentum SGD without a scheduler, a Parameter's
  ``lr_mult`` set, and ``trainer.set_learning_rate`` at an epoch boundary;
* ``bertadam_clipped``: GluonNLP's BERT fine-tuning loop, ``bertadam`` with
  the rate set before every step (linear warmup, then linear decay), the
  loss averaged, ``trainer.allreduce_grads()``,
  ``nlp.utils.clip_grad_global_norm`` and ``trainer.update(1)`` (the
  clipped gradients and the norm are recorded too);
* ``float16_master``: the network cast to float16, ``multi_precision``
  (MXNet's CPU has no float16 Dense: each step's gradients are drawn);
* ``random-NN``: an optimizer among those, its hyperparameters, batch sizes
  and save point drawn at random;
* ``nadam_resumed``: Nadam, whose saved states include the momentum-schedule
  product MXNet keeps in its optimizer object (recorded last, so that the
  cases before it draw as they did before it was added).

Each run saves its states after ``saved_at`` steps; a second network with
those weights and a new Trainer (built as the first) calls ``load_states``
and trains on with the same data: ``resumed``.
"""

import json
import random
import shutil

import mxnet as mx
import numpy as np
import recording
from mxnet import autograd, gluon
from record_gluoncv import gluoncv_module
from record_mxnet import register_bertadam

SEED = 20261204
FEATURES, HIDDEN, CLASSES = 5, 6, 3
RANDOM_CASES = 3
NO_WD = ".*beta|.*gamma|.*bias"  # GluonCV's and GluonNLP's no_wd parameters


def network(dtype, weights=None):
    """Dense -> LayerNorm -> Dense; its Parameters named alike in every network made."""
    net = gluon.nn.HybridSequential(prefix="net_")
    with net.name_scope():
        net.add(gluon.nn.Dense(HIDDEN, activation="relu", in_units=FEATURES),
                gluon.nn.LayerNorm(in_channels=HIDDEN),
                gluon.nn.Dense(CLASSES, in_units=HIDDEN))
    net.initialize(mx.init.Xavier())
    net.cast(dtype)
    if weights is not None:
        for name, param in net.collect_params().items():
            param.set_data(mx.nd.array(weights[name], dtype=dtype))
    return net


def as_lists(arrays):
    return [a.asnumpy().astype("float64").tolist() for a in arrays]


def trainer_for(net, case, gcv):
    """The case's Trainer: its optimizer arguments, schedule and Parameter multipliers."""
    kwargs = dict(case["kwargs"])
    if "schedule" in case:
        kwargs["lr_scheduler"] = gcv.LRSequential([gcv.LRScheduler(**part)
                                                   for part in case["schedule"]])
    if case.get("no_wd"):
        net.collect_params(NO_WD).setattr("wd_mult", 0.0)
    for name, mult in case.get("lr_mult", {}).items():
        net.collect_params()[name].lr_mult = mult
    return gluon.Trainer(net.collect_params(), case["optimizer"], kwargs)


def bert_rate(case, step):
    """GluonNLP's fine-tuning rate for a step (1-based), as its finetune_classifier.py
    computes it: linear warmup, then linear decay to 0."""
    lr, warmup, total = case["bert_lr"], case["warmup_steps"], len(case["batch_sizes"])
    if step < warmup:
        return lr * step / warmup
    return lr - (step - warmup) / (total - warmup) * lr


def train(net, trainer, case, data, first, last):
    """Steps ``first`` to ``last`` (0-based) of the case, as its recipe takes them."""
    import gluonnlp as nlp

    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    params = trainer._params  # the Trainer's order: sorted by name
    x, labels = data
    trajectory = []
    for step in range(first, last):
        size = case["batch_sizes"][step]
        start = sum(case["batch_sizes"][:step])
        if case["dtype"] == "float16":  # MXNet's CPU has no float16 Dense: gradients drawn
            draw = np.random.default_rng([SEED, step])
            for p in params:
                p.grad()[:] = mx.nd.array(draw.normal(0, size, p.shape), dtype="float16")
                p.data()._fresh_grad = True
            loss = mx.nd.zeros((1,))
        else:
            xb = mx.nd.array(x[start:start + size])
            with autograd.record():
                loss = loss_fn(net(xb), mx.nd.array(labels[start:start + size]))
                if case["recipe"] == "bert":
                    loss = loss.mean()
            loss.backward()
        record = {"batch_size": size, "grads": as_lists(p.grad().copy() for p in params)}
        if case["recipe"] == "bert":
            trainer.set_learning_rate(bert_rate(case, step + 1))
            trainer.allreduce_grads()
            norm = nlp.utils.clip_grad_global_norm(params, case["max_norm"])
            record["clipped"] = as_lists(p.grad() for p in params)
            record["norm"] = float(norm.asscalar())
            trainer.update(1)
        else:
            if step == case.get("set_learning_rate_at"):
                trainer.set_learning_rate(case["new_learning_rate"])
            trainer.step(size)
        record["weights"] = as_lists(p.data() for p in params)
        record["learning_rate"] = float(trainer.learning_rate)
        record["loss"] = float(loss.mean().asscalar())
        trajectory.append(record)
    return trajectory


def record_case(case, gcv, rng, out):
    total = sum(case["batch_sizes"])
    x = rng.normal(0, 1, (total, FEATURES))
    labels = np.argmax(x @ rng.normal(0, 1, (FEATURES, CLASSES)), axis=1)
    data = (x, labels)
    net = network(case["dtype"])
    initial = {name: p.data().asnumpy() for name, p in net.collect_params().items()}
    trainer = trainer_for(net, case, gcv)
    run = train(net, trainer, case, data, 0, case["saved_at"])
    states = f"{case['id']}.states"
    trainer.save_states(str(out / states))
    saved = {name: p.data().asnumpy() for name, p in net.collect_params().items()}
    run += train(net, trainer, case, data, case["saved_at"], len(case["batch_sizes"]))
    restarted = network(case["dtype"], saved)
    trainer = trainer_for(restarted, case, gcv)
    trainer.load_states(str(out / states))
    resumed = train(restarted, trainer, case, data, case["saved_at"], len(case["batch_sizes"]))
    params = trainer._params
    return {**case, "x": x.tolist(), "labels": labels.tolist(),
            "param_names": [p.name for p in params],
            "lr_mult_of": [p.lr_mult for p in params], "wd_mult_of": [p.wd_mult for p in params],
            "initial": [initial[p.name].astype("float64").tolist() for p in params],
            "saved": [saved[p.name].astype("float64").tolist() for p in params],
            "run": run, "resumed": resumed, "states": states}


def batch_sizes(steps, size, last):
    return [size] * (steps - 1) + [last]


def handpicked():
    per_epoch = 3
    return [
        {"id": "gluoncv_nag", "recipe": "gluoncv", "optimizer": "nag", "dtype": "float32",
         "kwargs": {"wd": 1e-3, "momentum": 0.9}, "no_wd": True,
         "schedule": [{"mode": "linear", "base_lr": 0.0, "target_lr": 0.2, "nepochs": 1,
                       "iters_per_epoch": per_epoch},
                      {"mode": "cosine", "base_lr": 0.2, "target_lr": 0.0, "nepochs": 2,
                       "iters_per_epoch": per_epoch}],
         "batch_sizes": batch_sizes(10, 16, 7), "saved_at": 4},
        {"id": "sgd_set_learning_rate", "recipe": "gluoncv", "optimizer": "sgd",
         "dtype": "float32", "kwargs": {"learning_rate": 0.1, "momentum": 0.9, "wd": 5e-4},
         "lr_mult": {"net_dense1_weight": 2.0}, "set_learning_rate_at": 4,
         "new_learning_rate": 0.01, "batch_sizes": batch_sizes(8, 12, 5), "saved_at": 5},
        {"id": "bertadam_clipped", "recipe": "bert", "optimizer": "bertadam",
         "dtype": "float32", "kwargs": {"learning_rate": 5e-5, "wd": 0.01}, "no_wd": True,
         "bert_lr": 0.05, "warmup_steps": 3, "max_norm": 1.0,
         "batch_sizes": batch_sizes(9, 8, 3), "saved_at": 4},
        {"id": "float16_master", "recipe": "gluoncv", "optimizer": "sgd", "dtype": "float16",
         "kwargs": {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3,
                    "multi_precision": True}, "no_wd": True,
         "batch_sizes": batch_sizes(7, 16, 9), "saved_at": 3},
    ]


def random_case(rng, index):
    optimizer = rng.choice(["sgd", "nag", "adam", "bertadam"])
    steps = rng.randint(5, 10)
    size = rng.randint(4, 20)
    case = {"id": f"random-{index:02d}", "recipe": "gluoncv", "optimizer": optimizer,
            "dtype": rng.choice(["float32", "float32", "float16"]),
            "kwargs": {"learning_rate": rng.uniform(0.01, 0.3), "wd": rng.choice(
                [0.0, rng.uniform(1e-4, 1e-2)]), "rescale_grad": rng.choice([1.0, 0.5, 2.0])},
            "no_wd": rng.random() < 0.5,
            "lr_mult": {rng.choice(["net_dense0_weight", "net_layernorm0_gamma"]):
                        rng.choice([0.5, 2.0])},
            "batch_sizes": batch_sizes(steps, size, rng.randint(1, size)),
            "saved_at": rng.randint(1, steps - 1)}
    if case["dtype"] == "float16":
        case["kwargs"]["multi_precision"] = True
    if optimizer in ("sgd", "nag"):
        case["kwargs"]["momentum"] = rng.choice([0.0, rng.uniform(0.5, 0.95)])
    if rng.random() < 0.5:
        lr = case["kwargs"].pop("learning_rate")
        per_epoch = rng.randint(1, 3)
        case["schedule"] = [
            {"mode": "linear", "base_lr": 0.0, "target_lr": lr,
             "nepochs": rng.randint(0, 1), "iters_per_epoch": per_epoch},
            {"mode": rng.choice(["cosine", "poly", "step"]), "base_lr": lr, "target_lr": 0.0,
             "nepochs": rng.randint(2, 4), "iters_per_epoch": per_epoch}]
        if case["schedule"][1]["mode"] == "step":
            case["schedule"][1]["step_epoch"] = [1]
    elif rng.random() < 0.5:
        case["set_learning_rate_at"] = rng.randint(0, steps - 1)
        case["new_learning_rate"] = rng.uniform(0.001, 0.1)
    return case


def main():
    args = recording.arguments(__doc__, recording.FIXTURES / "mxnet_trainer")
    register_bertadam()
    mx.random.seed(SEED)
    np.random.seed(SEED)
    gcv = gluoncv_module()
    draw = random.Random(SEED)
    cases = handpicked() + [random_case(draw, i) for i in range(RANDOM_CASES)] + [
        {"id": "nadam_resumed", "recipe": "gluoncv", "optimizer": "nadam", "dtype": "float32",
         "kwargs": {"learning_rate": 0.05, "wd": 1e-3}, "no_wd": True,
         "batch_sizes": batch_sizes(8, 10, 4), "saved_at": 3}]
    shutil.rmtree(args.out, ignore_errors=True)
    args.out.mkdir(parents=True)
    rng = np.random.default_rng(SEED)
    runs = [record_case(case, gcv, rng, args.out) for case in cases]
    meta = {**recording.meta(__file__, SEED), "gluoncv_version": "0.10.5.post0",
            "gluonnlp_version": "0.10.0"}
    (args.out / "runs.json").write_text(json.dumps({"meta": meta, "cases": runs}) + "\n")
    size = sum(f.stat().st_size for f in args.out.iterdir())
    print(f"recorded {len(runs)} Trainer runs ({size / 1024:.1f} KiB in all)")


if __name__ == "__main__":
    main()
