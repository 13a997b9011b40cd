"""Optimizer state on its params' devices: sharded training and ZeRO stage 1.

Every state leaf shaped like a param is made by :func:`zeros_like` or
arithmetic on the param, so it has the param's sharding, outside ``jit`` and
inside (where a constant would get none), and a jitted update of sharded
params computes each shard where it lies: no state or param is gathered.
:func:`place_state` places the rest of the state (hyperparameters, counts,
PRNG keys) replicated on the params' mesh, so the first jitted step returns a
state placed like the one it took and is not compiled again; inside ``jit``
the count is made from the params (:func:`zero_from`), which puts the whole
computation, and so the state, on their devices.

:func:`partition_states` is ZeRO stage 1: params stay replicated over the
data-parallel axis while each state leaf is split along it, so each device
holds ``1/n`` of the state, updates its slice, and the new params are
gathered once per step.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import optax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from mxopt import validation
from mxopt.structure import is_concrete

__all__ = ["constrain", "params_mesh", "partition_states", "place_state", "placed_like",
           "spec_sharding", "state_bytes_per_device", "zero_from", "zeros_like"]


def params_mesh(params: chex.ArrayTree) -> Mesh | None:
    """The mesh of the params' ``NamedSharding``\\ s, or None (traced, unplaced or several)."""
    meshes = {leaf.sharding.mesh for leaf in jax.tree.leaves(params)
              if is_concrete(leaf) and isinstance(leaf.sharding, NamedSharding)}
    return meshes.pop() if len(meshes) == 1 else None


def _explicit(mesh: Mesh) -> bool:
    return all(t == AxisType.Explicit for t in mesh.axis_types)


def spec_sharding(mesh: Mesh, ndim: int, split: dict[int, str] | None = None) -> NamedSharding:
    """The sharding of an ``ndim``-array split along ``{dimension: mesh axis}``, else replicated.

    Its spec is written as ``jit`` writes its outputs' (every dimension named
    on a mesh of explicit axes, no trailing ``None`` on one of automatic
    axes), so a jitted step that returns the array placed so is not compiled
    again for it.
    """
    split = split or {}
    length = ndim if _explicit(mesh) else max(split, default=-1) + 1
    return NamedSharding(mesh, PartitionSpec(*(split.get(d) for d in range(length))))


def constrain(x: jax.Array, sharding: NamedSharding) -> jax.Array:
    """``x`` placed by ``sharding``: moved when concrete, constrained when traced.

    Inside ``jit`` a mesh of explicit axes (``jax.make_mesh``'s default) takes
    ``reshard``; one of automatic axes takes ``with_sharding_constraint``.
    """
    if not isinstance(x, jax.core.Tracer):
        return jax.device_put(x, sharding)
    if _explicit(sharding.mesh):
        return jax.sharding.reshard(x, sharding)
    return jax.lax.with_sharding_constraint(x, sharding)


def _zeros_like_leaf(x: jax.Array) -> jax.Array:
    if not isinstance(x, jax.core.Tracer):
        return jnp.zeros_like(x)  # with x's sharding when x is placed
    # Inside jit a constant has no sharding, and a computation that reads no
    # input is compiled for one device; zeros computed from x have x's
    # sharding. They are +0 for every x, inf and NaN included.
    return jnp.where(jnp.isnan(x), 0, jnp.minimum(jnp.abs(x), 0)).astype(x.dtype)


def zeros_like(tree: chex.ArrayTree) -> chex.ArrayTree:
    """Zeros shaped, typed and placed like each leaf of ``tree``, inside ``jit`` too.

    Each call makes new buffers, so two states (or two moments of one)
    never share one, and any state can be donated.
    """
    return jax.tree.map(_zeros_like_leaf, tree)


def zero_from(params: chex.ArrayTree, dtype) -> jax.Array:
    """A scalar 0 of ``dtype``, computed from the params when they are traced.

    A count or hyperparameter plus it is placed, by ``jax.jit(init)``, on the
    params' devices, replicated (see the module docstring).
    """
    leaves = jax.tree.leaves(params)
    if not leaves or not isinstance(leaves[0], jax.core.Tracer):
        return jnp.zeros((), dtype)
    return jnp.sum(_zeros_like_leaf(leaves[0])).astype(dtype)


def placed_like(value: jax.Array, old: jax.Array) -> jax.Array:
    """``value`` on the devices of ``old``, with its sharding, if ``old`` is placed (committed)."""
    if is_concrete(old) and old.committed:
        return jax.device_put(value, old.sharding)
    return value


def place_state(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wraps ``inner`` so that ``init`` places every state leaf on the params' mesh.

    Leaves not on the params' mesh (scalar hyperparameters and counts, PRNG
    keys) are replicated on it; params that are traced, or not placed on one
    mesh by ``NamedSharding``, leave them where ``inner`` made them.
    """

    def init_fn(params):
        state = inner.init(params)
        mesh = params_mesh(params)

        def place(leaf):
            if mesh is None or not is_concrete(leaf) or (
                    isinstance(leaf.sharding, NamedSharding) and leaf.sharding.mesh == mesh):
                return leaf
            return jax.device_put(leaf, spec_sharding(mesh, leaf.ndim))

        return jax.tree.map(place, state)

    return optax.GradientTransformationExtraArgs(
        init_fn, optax.with_extra_args_support(inner).update)


def partition_states(inner: optax.GradientTransformation, mesh: Mesh,
                     axis: str = "data") -> optax.GradientTransformation:
    """ZeRO stage 1: ``inner``'s state split over the mesh axis ``axis``.

    Each floating-point state leaf is split along its first dimension that
    ``mesh.shape[axis]`` divides (leaves with none, scalars and PRNG keys stay
    replicated). Each step slices the replicated grads and params the same
    way (no communication), runs ``inner`` on the slices, and gathers the
    updates back to replicated: one all-gather per leaf per step. The numbers
    are ``inner``'s: elementwise updates are bit-identical, and reductions
    (LAMB's and LARS's norms) are summed across devices.

    Args:
      inner: any transformation.
      mesh: the device mesh; params must be replicated over it.
      axis: the data-parallel mesh axis to split the state over.

    Raises:
      ValueError: an unknown ``axis``, or (at ``init``) a param leaf that is
        placed but not replicated, named by its path.
    """
    validation.transformation("inner", inner)
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {mesh!r}")
    if axis not in mesh.axis_names:
        raise ValueError(f"axis {axis!r} is not an axis of the mesh {dict(mesh.shape)}")
    devices = mesh.shape[axis]

    def split(leaf) -> NamedSharding:
        dims = [d for d, size in enumerate(leaf.shape) if size % devices == 0]
        if not dims or not jnp.issubdtype(leaf.dtype, jnp.floating):
            return spec_sharding(mesh, leaf.ndim)
        return spec_sharding(mesh, leaf.ndim, {dims[0]: axis})

    def replicated(leaf) -> NamedSharding:
        return spec_sharding(mesh, leaf.ndim)

    def place(tree, sharding_of):
        return jax.tree.map(lambda leaf: constrain(leaf, sharding_of(leaf)), tree)

    def init_fn(params):
        for path, leaf in jax.tree_util.tree_leaves_with_path(params):
            if (is_concrete(leaf) and isinstance(leaf.sharding, NamedSharding)
                    and not leaf.sharding.is_fully_replicated):
                raise ValueError(
                    f"partition_states takes params replicated over the mesh; params leaf "
                    f"{jax.tree_util.keystr(path)!r} is sharded {leaf.sharding.spec}")
        return place(place_state(inner).init(params), split)

    def update_fn(updates, state, params=None):
        if params is not None:
            params = place(params, split)
        steps, state = inner.update(place(updates, split), state, params)
        return place(steps, replicated), place(state, split)

    return optax.GradientTransformation(init_fn, update_fn)


def state_bytes_per_device(state: chex.ArrayTree) -> dict:
    """Bytes of ``state`` held on each device, ``{device: bytes}``."""
    held: dict = {}
    for leaf in jax.tree.leaves(state):
        for shard in leaf.addressable_shards:
            held[shard.device] = held.get(shard.device, 0) + shard.data.nbytes
    return held
