"""Record a custom MXNet 1.9.1 optimizer's run, for docs/writing_an_optimizer.md.

Run with the interpreter of a virtual environment that has MXNet (see
tools/record_mxnet.py)::

    /tmp/mxnet-env/bin/python tools/record_mxnet_custom.py

An MXNet user's own optimizer, ``HeavyBall`` (momentum outside the learning
rate: ``mom = momentum * mom + g``, ``w = w - lr * mom``), registered with
``mx.optimizer.register``, trains two weights through ``mx.optimizer.Updater``
with weight decay, gradient rescaling and clipping. After ``SAVED_AT`` steps
it writes what a port starts from into ``tests/fixtures/mxnet_custom/``:
``heavyball.params`` (``nd.save`` of the weights) and ``heavyball.states``
(``Updater.get_states()``, as ``Module.save_optimizer_states`` writes it);
then it takes ``CONTINUED`` more steps. ``heavyball.json`` holds the
arguments, every step's gradients and the weights MXNet computed after each
of the continued steps.
"""

import json

import mxnet as mx
import numpy as np
import recording

SEED = 20261203
SAVED_AT, CONTINUED = 3, 3
NAMES = ["dense_weight", "dense_bias"]
SHAPES = [(3, 4), (4,)]
ARGUMENTS = {"learning_rate": 0.1, "momentum": 0.9, "wd": 1e-3, "rescale_grad": 0.5,
             "clip_gradient": 1.0}


@mx.optimizer.register
class HeavyBall(mx.optimizer.Optimizer):
    """SGD with heavy-ball momentum outside the learning rate (a user's own optimizer)."""

    def __init__(self, momentum=0.9, **kwargs):
        super().__init__(**kwargs)
        self.momentum = momentum

    def create_state(self, index, weight):
        return mx.nd.zeros(weight.shape, weight.context, dtype=weight.dtype)

    def update(self, index, weight, grad, state):
        self._update_count(index)
        lr, wd = self._get_lr(index), self._get_wd(index)
        grad = grad * self.rescale_grad
        if self.clip_gradient is not None:
            grad = mx.nd.clip(grad, -self.clip_gradient, self.clip_gradient)
        grad = grad + wd * weight
        state[:] = self.momentum * state + grad
        weight[:] = weight - lr * state


def main():
    args = recording.arguments(__doc__, recording.FIXTURES / "mxnet_custom")
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)
    optimizer = mx.optimizer.create("heavyball", **ARGUMENTS,
                                    param_idx2name=dict(enumerate(NAMES)))
    updater = mx.optimizer.get_updater(optimizer)
    weights = [mx.nd.array(rng.normal(size=s), dtype="float32") for s in SHAPES]
    grads, after = [], []
    for step in range(SAVED_AT + CONTINUED):
        if step == SAVED_AT:
            mx.nd.save(str(args.out / "heavyball.params"), dict(zip(NAMES, weights)))
            (args.out / "heavyball.states").write_bytes(updater.get_states())
        grads.append([rng.normal(scale=2.0, size=s).astype(np.float32) for s in SHAPES])
        for index, (weight, grad) in enumerate(zip(weights, grads[-1])):
            updater(index, mx.nd.array(grad, dtype="float32"), weight)
        if step >= SAVED_AT:
            after.append({n: w.asnumpy().tolist() for n, w in zip(NAMES, weights)})
    record = {"meta": recording.meta(__file__, SEED), "arguments": ARGUMENTS, "names": NAMES,
              "saved_at": SAVED_AT,
              "grads": [{n: g.tolist() for n, g in zip(NAMES, step)} for step in grads],
              "weights_after": after}
    (args.out / "heavyball.json").write_text(json.dumps(record) + "\n")
    print(f"recorded {SAVED_AT} + {CONTINUED} steps of HeavyBall into {args.out}")


if __name__ == "__main__":
    main()
