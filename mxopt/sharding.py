"""Optimizer state on its params' devices: sharded training and ZeRO stage 1.

Every state leaf shaped like a param is made by ``zeros_like`` or arithmetic
on the param, so it has the param's sharding, and a jitted update of sharded
params computes each shard where it lies: no state or param is gathered.
:func:`place_state` places the rest of the state (hyperparameters, counts,
PRNG keys) replicated on the params' mesh, so the first jitted step returns a
state placed like the one it took and is not compiled again.

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

from mxopt.structure import is_concrete

__all__ = ["constrain", "params_mesh", "partition_states", "place_state", "spec_sharding",
           "state_bytes_per_device"]


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


def place_state(inner: optax.GradientTransformation) -> optax.GradientTransformation:
    """Wraps ``inner`` so that ``init`` gives each state leaf a buffer of its own, placed.

    Leaves that share a buffer (two moments made from one ``zeros_like``)
    get a copy each, so a jitted step may donate the state. Leaves not on
    the params' mesh (scalar hyperparameters and counts, PRNG keys) are
    replicated on it; params that are traced, or not placed on one mesh by
    ``NamedSharding``, leave them where ``inner`` made them.
    """

    def init_fn(params):
        state = inner.init(params)
        mesh = params_mesh(params)
        seen: set[int] = set()

        def place(leaf):
            if not is_concrete(leaf):
                return leaf
            if id(leaf) in seen:
                leaf = jnp.copy(leaf)
            seen.add(id(leaf))
            on_mesh = isinstance(leaf.sharding, NamedSharding) and leaf.sharding.mesh == mesh
            if mesh is None or on_mesh:
                return leaf
            return jax.device_put(leaf, spec_sharding(mesh, leaf.ndim))

        return jax.tree.map(place, state)

    return optax.GradientTransformation(init_fn, inner.update)


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
