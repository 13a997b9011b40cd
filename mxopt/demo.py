"""mxopt's demo: MXNet recipes training a classifier of handwritten digits.

A two-layer network learns scikit-learn's 8x8 digits (1,797 images that ship
inside scikit-learn: no download) with five recipes written as MXNet users
write them: SGD with momentum and a FactorScheduler, NAG, Adam, LAMB and
RMSProp. The loss is summed over the batch and ``rescale_grad`` is
``1 / batch_size``, as Gluon's ``trainer.step(batch_size)`` does, and biases
have no weight decay, as ``set_wd_mult`` gives by default. Each training step
is one jit-compiled function. The demo prints a table of final loss, test
accuracy and step time per recipe, and saves a PNG of the loss curves and
learning-rate schedules.

It needs the ``demo`` extra: ``pip install -e ".[demo]"`` in a clone of mxopt.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax

import mxopt
from mxopt.plotting import plot_schedule

BATCH_SIZE = 64
NO_DECAY = {"dense0/bias": 0.0, "dense1/bias": 0.0}
RESCALE = 1.0 / BATCH_SIZE

# Each recipe is mx.optimizer.create(name, **kwargs) as an MXNet script writes it.
RECIPES = {
    "sgd": dict(momentum=0.9, wd=1e-4, rescale_grad=RESCALE, wd_mult=NO_DECAY,
                lr_scheduler=mxopt.FactorScheduler(step=500, factor=0.5, base_lr=0.1)),
    "nag": dict(learning_rate=0.05, momentum=0.9, wd=1e-4, rescale_grad=RESCALE,
                wd_mult=NO_DECAY),
    "adam": dict(learning_rate=0.002, wd=1e-4, clip_gradient=5.0, rescale_grad=RESCALE,
                 wd_mult=NO_DECAY),
    "lamb": dict(learning_rate=0.01, wd=0.01, rescale_grad=RESCALE, wd_mult=NO_DECAY,
                 lr_scheduler=mxopt.PolyScheduler(max_update=1500, base_lr=0.01, pwr=1,
                                                  warmup_steps=100)),
    "rmsprop": dict(learning_rate=0.001, gamma1=0.9, rescale_grad=RESCALE, wd_mult=NO_DECAY,
                    lr_scheduler=mxopt.CosineScheduler(max_update=1500, base_lr=0.001,
                                                       final_lr=1e-5)),
}


@dataclass
class Result:
    """One recipe's run: the loss of every step, the test accuracy and the timings."""

    name: str
    optimizer: optax.GradientTransformation
    losses: np.ndarray  # mean loss over each step's batch
    accuracy: float  # on the held-out images
    step_ms: float  # median over steps after the first
    compile_s: float  # the first step: tracing, compiling and running it


def load_digits(seed: int = 0) -> tuple[tuple[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]:
    """scikit-learn's digits, pixels scaled to [0, 1], split 80/20 (train, test)."""
    from sklearn.datasets import load_digits as sklearn_digits

    x, y = sklearn_digits(return_X_y=True)
    order = np.random.default_rng(seed).permutation(len(y))
    x, y = jnp.asarray(x[order] / 16.0, jnp.float32), jnp.asarray(y[order], jnp.int32)
    cut = int(0.8 * len(y))
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def init_params(key: jax.Array, features: int = 64, hidden: int = 128, classes: int = 10):
    """A two-layer perceptron, weights drawn as Gluon's Xavier initializer draws them."""
    def xavier(key, fan_in, fan_out):
        bound = jnp.sqrt(6.0 / (fan_in + fan_out))
        return jax.random.uniform(key, (fan_in, fan_out), minval=-bound, maxval=bound)

    k0, k1 = jax.random.split(key)
    return {"dense0": {"weight": xavier(k0, features, hidden), "bias": jnp.zeros(hidden)},
            "dense1": {"weight": xavier(k1, hidden, classes), "bias": jnp.zeros(classes)}}


def logits_fn(params, x):
    h = jax.nn.relu(x @ params["dense0"]["weight"] + params["dense0"]["bias"])
    return h @ params["dense1"]["weight"] + params["dense1"]["bias"]


def summed_loss(params, x, y):
    """Softmax cross-entropy summed over the batch, as a Gluon loss before backward()."""
    return optax.softmax_cross_entropy_with_integer_labels(logits_fn(params, x), y).sum()


def train(name: str, steps: int, seed: int = 0, progress: bool = True) -> Result:
    """Trains with recipe ``name`` for ``steps`` steps of ``BATCH_SIZE`` images."""
    from tqdm.auto import tqdm

    (x, y), (x_test, y_test) = load_digits(seed)
    params = init_params(jax.random.PRNGKey(seed))
    tx = mxopt.create(name, **RECIPES[name])
    state = tx.init(params)

    @jax.jit
    def step(params, state, xb, yb):
        loss, grads = jax.value_and_grad(summed_loss)(params, xb, yb)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss / len(yb)

    batches_per_epoch = len(y) // BATCH_SIZE
    losses, times = [], []
    for i in tqdm(range(steps), desc=f"{name:8s}", disable=not progress, leave=False):
        if i % batches_per_epoch == 0:  # each epoch in a new order
            order = jax.random.permutation(jax.random.PRNGKey(seed + 1 + i), len(y))
        batch = order[(i % batches_per_epoch) * BATCH_SIZE:][:BATCH_SIZE]
        start = time.perf_counter()
        params, state, loss = step(params, state, x[batch], y[batch])
        loss.block_until_ready()
        times.append(time.perf_counter() - start)
        losses.append(loss)
    accuracy = float((logits_fn(params, x_test).argmax(-1) == y_test).mean())
    return Result(name, tx, np.asarray(jnp.stack(losses)), accuracy,
                  step_ms=1e3 * float(np.median(times[1:] or times)), compile_s=times[0])


def table(results: list[Result]) -> str:
    """The results as a text table, one row per recipe."""
    lines = [f"{'recipe':9s}{'final loss':>11s}{'test accuracy':>15s}{'ms/step':>9s}"
             f"{'compile s':>11s}"]
    for r in results:
        final = r.losses[-min(50, len(r.losses)):].mean()  # the last 50 steps' batches
        lines.append(f"{r.name:9s}{final:11.4f}{r.accuracy:15.3f}{r.step_ms:9.3f}"
                     f"{r.compile_s:11.2f}")
    return "\n".join(lines)


def plot(results: list[Result], path: str) -> None:
    """Saves the loss curves (labelled with each recipe's test accuracy) and learning-rate
    schedules side by side as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # a file, no window
    import matplotlib.pyplot as plt

    fig, (losses, rates) = plt.subplots(1, 2, figsize=(12, 4.5))
    for r in results:
        smoothed = np.convolve(r.losses, np.ones(20) / 20, mode="valid")
        losses.plot(np.arange(len(smoothed)) + 20, smoothed,
                    label=f"{r.name}: test accuracy {r.accuracy:.1%}")
        plot_schedule(r.optimizer.learning_rate, len(r.losses), ax=rates, label=r.name)
    losses.set(title="training loss (mean of 20 steps)", xlabel="step", ylabel="loss",
               yscale="log")
    losses.legend()
    rates.set(title="learning rate", yscale="log")
    for ax in (losses, rates):
        ax.grid(alpha=0.3)
    fig.suptitle("mxopt demo: MXNet recipes on scikit-learn's digits")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _check_extras() -> None:
    missing = []
    for module, package in (("sklearn", "scikit-learn"), ("tqdm", "tqdm"),
                            ("matplotlib", "matplotlib")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        raise SystemExit(f"the demo needs {', '.join(missing)}: pip install {' '.join(missing)}")


def main(argv: list[str] | None = None) -> list[Result]:
    parser = argparse.ArgumentParser(prog="mxopt demo", description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500,
                        help="training steps per recipe (default: %(default)s)")
    parser.add_argument("--optimizers", nargs="+", default=list(RECIPES), choices=list(RECIPES),
                        metavar="NAME", help=f"recipes to run (default: {' '.join(RECIPES)})")
    parser.add_argument("--output", default="mxopt-demo.png",
                        help="where to save the plot (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0,
                        help="for the split, the initial weights and the batches (default: 0)")
    args = parser.parse_args(argv)
    if args.steps < 1:
        parser.error(f"--steps must be >= 1, got {args.steps}")
    _check_extras()
    print(f"mxopt {mxopt.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}: "
          f"{args.steps} steps of {BATCH_SIZE} digits per recipe")
    results = []
    for name in args.optimizers:
        results.append(train(name, args.steps, args.seed))
        print(f"  {results[-1].optimizer!r}")
    print("\n" + table(results))
    plot(results, args.output)
    print(f"\nloss curves and learning rates: {args.output}")
    return results
