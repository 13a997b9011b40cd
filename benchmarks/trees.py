"""The parameter trees the benchmarks update, built from layer shapes alone.

Only shapes matter to an optimizer's speed, so each tree is the parameters of
a well-known network with random values: no model code is needed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np


def _bottleneck(name: str, cin: int, width: int, stride_down: bool) -> dict[str, tuple]:
    cout = 4 * width
    shapes = {
        f"{name}/conv1": (width, cin, 1, 1), f"{name}/conv2": (width, width, 3, 3),
        f"{name}/conv3": (cout, width, 1, 1)}
    if stride_down:
        shapes[f"{name}/downsample"] = (cout, cin, 1, 1)
    for conv in list(shapes):
        channels = shapes[conv][0]
        shapes[f"{conv}_bn/gamma"] = (channels,)
        shapes[f"{conv}_bn/beta"] = (channels,)
    return shapes


def resnet50_shapes() -> dict[str, tuple]:
    """ResNet-50's trainable parameters: 161 leaves, 25,557,032 values."""
    shapes = {"stem/conv": (64, 3, 7, 7), "stem/bn/gamma": (64,), "stem/bn/beta": (64,)}
    cin = 64
    for stage, (blocks, width) in enumerate([(3, 64), (4, 128), (6, 256), (3, 512)]):
        for block in range(blocks):
            shapes |= _bottleneck(f"stage{stage}/block{block}", cin, width, block == 0)
            cin = 4 * width
    return shapes | {"fc/weight": (1000, 2048), "fc/bias": (1000,)}


def transformer_shapes(layers: int = 64, width: int = 256, vocab: int = 32000) -> dict[str, tuple]:
    """A GPT-style decoder: 16 leaves a layer plus 4 (1,028 leaves, 59.0M values by default)."""
    shapes = {"embed/tokens": (vocab, width), "embed/positions": (1024, width)}
    for i in range(layers):
        layer = {f"attn/{p}/kernel": (width, width) for p in "qkvo"}
        layer |= {f"attn/{p}/bias": (width,) for p in "qkvo"}
        layer |= {"mlp/up/kernel": (width, 4 * width), "mlp/up/bias": (4 * width,),
                  "mlp/down/kernel": (4 * width, width), "mlp/down/bias": (width,)}
        layer |= {f"{norm}/{p}": (width,) for norm in ("ln1", "ln2") for p in ("scale", "bias")}
        shapes |= {f"layer{i:03d}/{k}": v for k, v in layer.items()}
    return shapes | {"final_ln/scale": (width,), "final_ln/bias": (width,)}


def many_leaves_shapes(leaves: int = 3000, size: int = 1024) -> dict[str, tuple]:
    """``leaves`` small matrices, for compile time: the cost that grows with the leaf count."""
    return {f"leaf{i:05d}": (size // 32, 32) for i in range(leaves)}


SWEEP_SIZE = 2**22
SWEEP_LEAVES = (1, 30, 300, 3000)


def sweep_shapes(leaves: int, total: int = SWEEP_SIZE) -> dict[str, tuple]:
    """``total`` values cut into ``leaves`` vectors: step time against the number of leaves."""
    return {f"leaf{i:05d}": (total // leaves,) for i in range(leaves)}


def flat_shapes(total: int) -> dict[str, tuple]:
    """One leaf of ``total`` values: the roofline a tree of the same size is measured against."""
    return {"flat": (total,)}


def tiny_shapes() -> dict[str, tuple]:
    """A two-layer perceptron, for a quick check that the suite runs."""
    return {"dense0/weight": (64, 256), "dense0/bias": (256,), "dense1/weight": (256, 10),
            "dense1/bias": (10,)}


TREES = {
    "resnet50": resnet50_shapes,
    "transformer": transformer_shapes,
    "3000-leaves": many_leaves_shapes,
    "tiny": tiny_shapes,
}
DEFAULT_TREES = ("resnet50", "transformer", "3000-leaves")


def size(shapes: dict[str, tuple]) -> int:
    return sum(int(np.prod(s)) for s in shapes.values())


def materialize(shapes: dict[str, tuple], seed: int, dtype=jnp.float32,
                scale: float = 0.05) -> dict[str, jax.Array]:
    """Random values for each shape, generated on the default device."""
    keys = jax.random.split(jax.random.key(seed), len(shapes))
    return {name: (scale * jax.random.normal(k, shape)).astype(dtype)
            for k, (name, shape) in zip(keys, shapes.items())}
