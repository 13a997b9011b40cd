"""Packed mode: every leaf of one dtype in one contiguous buffer.

An optimizer step over a pytree runs a few loops per leaf, so its cost and
its compile time grow with the number of leaves, and XLA's CPU loops over
leaves shaped like convolution kernels (``(out, in, 3, 3)``) are slow.
:func:`pack` lays the params out as one ``(blocks, BLOCK)`` buffer per
dtype, each leaf starting on a block of its own (the rest of its last block
is zeros). Every mxopt optimizer takes the :class:`Packed` params as it
takes a pytree: the state it builds is packed alike, each formula runs once
over each whole buffer, and per-leaf values (``lr_mult``, ``wd_mult``,
LAMB's norms) are held or computed per block. The numbers are those of the
unpacked optimizer (norms are summed in another order).

A loss function takes the leaves back with :meth:`Packed.unpack`, slices
that XLA fuses into their uses, so the gradient with respect to the packed
params comes out packed::

    params = mxopt.pack(params)            # once, before the training loop
    loss_fn = mxopt.unpacking(loss_fn)     # loss_fn(tree, ...) -> loss_fn(packed, ...)

A buffer has one sharding: shard it along its blocks (data-parallel
replicas, ZeRO-1), not per leaf. LARS, LBSGD and GroupAdaGrad, which need
each leaf's name or shape, refuse packed params.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mxopt.structure import TreeSignature, check_float_leaves, named_leaves

__all__ = ["BLOCK", "Layout", "Packed", "leaf_sums", "pack", "refuse_packed", "unpacking"]

BLOCK = 128  # values per block: a multiple of the vector widths of CPUs, GPUs and TPUs


@dataclasses.dataclass(frozen=True)
class Segment:
    """Where one leaf lies: blocks ``[start, start + blocks)`` of its dtype's buffer."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    start: int
    blocks: int

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclasses.dataclass(frozen=True)
class Layout:
    """The leaves of a params tree laid out in one ``(blocks, block)`` buffer per dtype.

    Static (hashable, no arrays): it is the pytree metadata of :class:`Packed`.
    """

    treedef: Any  # jax PyTreeDef of the unpacked tree
    segments: tuple[Segment, ...]  # one per leaf, in flattening order
    block: int = BLOCK

    @classmethod
    def of(cls, tree: chex.ArrayTree, block: int = BLOCK) -> Layout:
        """The layout of ``tree``'s leaves, grouped by dtype in order of first appearance."""
        if isinstance(tree, Packed):
            raise ValueError("these params are packed already")
        if not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a positive int, got {block!r}")
        check_float_leaves(tree)
        used: dict[str, int] = {}
        segments = []
        for name, leaf in named_leaves(tree):
            dtype = jnp.result_type(leaf).name
            blocks = max(1, -(-math.prod(jnp.shape(leaf)) // block))
            segments.append(Segment(name, tuple(jnp.shape(leaf)), dtype, used.get(dtype, 0),
                                    blocks))
            used[dtype] = used.get(dtype, 0) + blocks
        return cls(jax.tree_util.tree_structure(tree), tuple(segments), block)

    @functools.cached_property
    def _hash(self) -> int:
        return hash((self.treedef, self.segments, self.block))

    def __hash__(self):
        return self._hash

    @functools.cached_property
    def blocks(self) -> dict[str, int]:
        """The number of blocks of each dtype's buffer."""
        total: dict[str, int] = {}
        for s in self.segments:
            total[s.dtype] = total.get(s.dtype, 0) + s.blocks
        return total

    def in_buffer(self, dtype: str) -> list[tuple[int, Segment]]:
        """``(leaf index, segment)`` of the leaves in ``dtype``'s buffer, in block order."""
        return [(i, s) for i, s in enumerate(self.segments) if s.dtype == dtype]

    def leaves(self) -> chex.ArrayTree:
        """The unpacked tree with a ``jax.ShapeDtypeStruct`` for each leaf."""
        return jax.tree_util.tree_unflatten(
            self.treedef, [jax.ShapeDtypeStruct(s.shape, s.dtype) for s in self.segments])

    def pack(self, tree: chex.ArrayTree) -> Packed:
        """``tree`` (of this layout's structure, shapes and dtypes) packed."""
        TreeSignature(self.leaves(), "leaves packed").check(tree, "tree to pack")
        leaves = jax.tree_util.tree_leaves(tree)
        buffers = {}
        for dtype, blocks in self.blocks.items():
            pieces = []
            for i, s in self.in_buffer(dtype):
                leaf = jnp.asarray(leaves[i])
                if leaf.dtype != s.dtype:
                    raise ValueError(f"tree to pack: leaf {s.name!r} has dtype {leaf.dtype}, "
                                     f"but the layout holds it as {s.dtype}")
                pieces.append(jnp.pad(leaf.reshape(-1), (0, s.blocks * self.block - s.size)))
            buffers[dtype] = jnp.concatenate(pieces).reshape(blocks, self.block)
        return Packed(buffers, self)

    def unpack(self, buffers: dict[str, jax.Array]) -> chex.ArrayTree:
        """The tree whose leaves are the segments of ``buffers``, sliced and reshaped."""
        flat = {dtype: buffer.reshape(-1) for dtype, buffer in buffers.items()}
        leaves = [jax.lax.slice(flat[s.dtype], (s.start * self.block,),
                                (s.start * self.block + s.size,)).reshape(s.shape)
                  for s in self.segments]
        return jax.tree_util.tree_unflatten(self.treedef, leaves)

    def per_block(self, values: list[float]) -> Packed:
        """One float32 value per leaf, repeated over its blocks: ``(blocks, 1)`` per buffer."""
        buffers = {}
        for dtype in self.blocks:
            inside = self.in_buffer(dtype)
            repeated = np.repeat([values[i] for i, _ in inside], [s.blocks for _, s in inside])
            buffers[dtype] = jnp.asarray(repeated, jnp.float32)[:, None]
        return Packed(buffers, self)

    def segment_ids(self, dtype: str) -> np.ndarray:
        """For each block of ``dtype``'s buffer, the index of its leaf within the buffer."""
        inside = self.in_buffer(dtype)
        return np.repeat(np.arange(len(inside), dtype=np.int32), [s.blocks for _, s in inside])


@jax.tree_util.register_pytree_with_keys_class
class Packed:
    """A params tree packed by :func:`pack`: a pytree whose leaves are its buffers.

    Grads, updates and optimizer state built from packed params are
    ``Packed`` alike. :meth:`unpack` gives the tree back.
    """

    def __init__(self, buffers: dict[str, Any], layout: Layout):
        self.buffers = dict(buffers)
        self.layout = layout

    def tree_flatten_with_keys(self):
        return ([(jax.tree_util.DictKey(d), self.buffers[d]) for d in self.layout.blocks],
                self.layout)

    @classmethod
    def tree_unflatten(cls, layout: Layout, children) -> Packed:
        return cls(dict(zip(layout.blocks, children)), layout)

    def unpack(self) -> chex.ArrayTree:
        """The unpacked tree: each leaf a slice of its buffer, reshaped."""
        return self.layout.unpack(self.buffers)

    def __repr__(self):
        buffers = ", ".join(f"{d}[{n}, {self.layout.block}]" for d, n in self.layout.blocks.items())
        return f"Packed({len(self.layout.segments)} leaves in {buffers})"


def pack(params: chex.ArrayTree, block: int = BLOCK) -> Packed:
    """``params`` packed: one ``(blocks, block)`` buffer per dtype (see the module docstring).

    Raises:
      TypeError: a leaf that is not floating point (named).
    """
    return Layout.of(params, block).pack(params)


def unpacking(loss_fn: Callable) -> Callable:
    """``loss_fn(tree, *args)`` as a function of packed params: ``loss_fn(packed.unpack(), *args)``.

    Its gradient with respect to the packed params is packed, ready for the
    optimizer built from them.
    """

    @functools.wraps(loss_fn)
    def packed_loss(packed: Packed, *args, **kwargs):
        if not isinstance(packed, Packed):
            raise TypeError(f"{getattr(loss_fn, '__name__', 'loss_fn')} is unpacking: pass it "
                            f"mxopt.pack(params), got {type(packed).__name__}")
        return loss_fn(packed.unpack(), *args, **kwargs)

    return packed_loss


def _whole_leaf_sum(x: jax.Array) -> jax.Array:
    return jnp.sum(x)


@dataclasses.dataclass(frozen=True, eq=False)
class _SegmentSum:
    """Sums a packed buffer over each leaf's blocks; broadcast back, ``(blocks, 1)``."""

    ids: np.ndarray  # (blocks,) int32: each block's leaf within the buffer

    def __call__(self, x: jax.Array) -> jax.Array:
        per_block = jnp.sum(x, axis=1)
        if any(jax.typeof(per_block).sharding.spec):  # split over explicit mesh axes
            per_block = jax.sharding.reshard(per_block, jax.sharding.PartitionSpec(None))
        per_leaf = jax.ops.segment_sum(per_block, self.ids, num_segments=int(self.ids[-1]) + 1,
                                       indices_are_sorted=True)
        return per_leaf[self.ids][:, None]


def leaf_sums(tree: chex.ArrayTree) -> chex.ArrayTree:
    """For each leaf of ``tree``, a function summing an array like it over each params leaf.

    A plain leaf's function is ``jnp.sum``, a scalar; a packed buffer's sums
    over each leaf's blocks and returns ``(blocks, 1)``, so both broadcast
    against the leaf. Zeros fill each leaf's last block, so they add nothing.
    Use with ``jax.tree.map`` beside the updates: norms per
    leaf, whatever the layout.
    """
    if isinstance(tree, Packed):
        return Packed({d: _SegmentSum(tree.layout.segment_ids(d)) for d in tree.layout.blocks},
                      tree.layout)
    return jax.tree.map(lambda _: _whole_leaf_sum, tree)


def refuse_packed(params: chex.ArrayTree, optimizer: str, why: str) -> None:
    """Raises ValueError if ``params`` are packed: ``optimizer`` needs each leaf as it is."""
    if isinstance(params, Packed):
        raise ValueError(f"{optimizer} {why}, so it takes unpacked params: pass "
                         f"packed.unpack() (or params not given to mxopt.pack)")
