"""Packed mode: one buffer per dtype, the same numbers as the pytree it packs."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from full_state import build, draw
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import floats
from trajectory import same_bits

import mxopt
from mxopt import packing, sharding

SHAPES = {"conv/weight": (8, 3, 3, 3), "conv/bias": (8,), "dense/weight": (200, 3),
          "dense/bias": (3,), "bn/gamma": (129,)}
NEEDS_LEAVES = {"lars", "lbsgd", "groupadagrad"}
PACKABLE = [n for n in mxopt.registered_names() if n not in NEEDS_LEAVES]
DTYPES = st.sampled_from([jnp.float32, jnp.float16, jnp.bfloat16])



@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, 9), max_size=3), DTYPES), min_size=1,
                max_size=6), st.sampled_from([1, 4, 128]))
def test_unpack_gives_back_each_leaf_bit_for_bit_and_padding_is_zero(leaves, block):
    rng = np.random.default_rng(0)
    tree = {f"leaf{i}": jnp.asarray(rng.normal(size=shape), dtype)
            for i, (shape, dtype) in enumerate(leaves)}
    packed = mxopt.pack(tree, block)
    assert same_bits(packed.unpack(), tree)
    for dtype, buffer in packed.buffers.items():
        inside = packed.layout.in_buffer(dtype)
        expected_blocks = sum(max(1, -(-int(np.prod(s.shape)) // block)) for _, s in inside)
        chex.assert_shape(buffer, (expected_blocks, block))
        assert buffer.dtype == dtype
        held = sum(int(np.prod(s.shape)) for _, s in inside)
        assert int(jnp.sum(buffer != 0)) <= held  # the rest of each leaf's last block is zeros
        mask = np.zeros(buffer.size, bool)
        for _, s in inside:
            mask[s.start * block: s.start * block + s.size] = True
        assert not np.asarray(buffer).reshape(-1)[~mask].any()


def test_layout_groups_leaves_by_dtype_in_order_of_first_appearance():
    tree = {"a": jnp.ones(3, jnp.bfloat16), "b": jnp.ones((2, 200)), "c": jnp.ones(1, jnp.bfloat16)}
    layout = mxopt.pack(tree).layout
    assert layout.blocks == {"bfloat16": 2, "float32": 4}
    assert [(s.name, s.dtype, s.start, s.blocks) for s in layout.segments] == [
        ("a", "bfloat16", 0, 1), ("b", "float32", 0, 4), ("c", "bfloat16", 1, 1)]
    assert repr(mxopt.pack(tree)) == "Packed(3 leaves in bfloat16[2, 128], float32[4, 128])"


def test_the_gradient_through_unpacking_comes_out_packed_and_equal():
    params = draw(SHAPES, 0)
    x = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)), jnp.float32)

    def loss(tree, x):
        h = jnp.tanh(x @ tree["conv/weight"][:3, :, 0, 0] + tree["dense/bias"])
        return jnp.sum(h * (x @ tree["dense/weight"][:3])) + jnp.sum(tree["bn/gamma"] ** 2)

    packed = mxopt.pack(params)
    grads = jax.jit(jax.grad(mxopt.unpacking(loss)))(packed, x)
    assert isinstance(grads, mxopt.Packed) and grads.layout == packed.layout
    expected = jax.jit(jax.grad(loss))(params, x)
    chex.assert_trees_all_close(grads.unpack(), expected, rtol=1e-6, atol=1e-7)
    chex.assert_trees_all_equal(grads.buffers, mxopt.pack(grads.unpack()).buffers)


def test_unpacking_names_the_function_when_given_a_plain_tree():
    def my_loss(tree):
        return 0.0
    with pytest.raises(TypeError, match="my_loss is unpacking: pass it mxopt.pack"):
        mxopt.unpacking(my_loss)({"w": jnp.ones(2)})


def test_bad_trees_are_refused_naming_the_leaf():
    with pytest.raises(TypeError, match="'layer/count'"):
        mxopt.pack({"layer": {"count": jnp.ones(2, jnp.int32), "w": jnp.ones(2)}})
    packed = mxopt.pack({"w": jnp.ones((2, 3)), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="packed already"):
        mxopt.pack(packed)
    with pytest.raises(ValueError, match=r"leaf 'w' has shape \(3, 2\)"):
        packed.layout.pack({"w": jnp.ones((3, 2)), "b": jnp.ones(3)})
    with pytest.raises(ValueError, match="leaf 'b' has dtype bfloat16"):
        packed.layout.pack({"w": jnp.ones((2, 3)), "b": jnp.ones(3, jnp.bfloat16)})
    with pytest.raises(ValueError, match="block must be a positive int"):
        mxopt.pack({"w": jnp.ones(2)}, block=0)


@pytest.mark.parametrize("name", sorted(NEEDS_LEAVES))
def test_optimizers_that_need_each_leaf_refuse_packed_params(name):
    params = mxopt.pack(draw({"w": (4, 3), "b": (3, 4)}, 0))
    with pytest.raises(ValueError, match=f"{name} .*takes unpacked params"):
        build(name).init(params)


def run(tx, params, grads, steps, packed):
    """``steps`` jitted updates of ``params``, packed or not; returns the unpacked params."""
    if packed:
        params, grads = mxopt.pack(params), [mxopt.pack(g) for g in grads]
    state = tx.init(params)

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for g in grads[:steps]:
        params, state = step(params, state, g)
    return params.unpack() if packed else params


MULTIPLIERS = {"lr_mult": {"conv/bias": 2.0, "bn/gamma": 0.5}, "wd_mult": {"dense/bias": 0.0}}


@pytest.mark.parametrize("name", PACKABLE)
def test_packed_steps_give_the_numbers_of_the_pytree(name):
    params = draw(SHAPES, 0)
    grads = [draw(SHAPES, 1 + i) for i in range(4)]
    kwargs = {**MULTIPLIERS, "learning_rate": 0.05,
              "lr_scheduler": mxopt.FactorScheduler(step=2, factor=0.5)}
    expected = run(build(name, **kwargs), params, grads, 4, packed=False)
    got = run(build(name, **kwargs), params, grads, 4, packed=True)
    if name == "sgld":  # its noise is drawn per buffer, not per leaf
        chex.assert_trees_all_equal_shapes_and_dtypes(got, expected)
        return
    chex.assert_trees_all_close(got, expected, rtol=2e-6, atol=1e-7)


@settings(max_examples=12, deadline=None)
@given(st.sampled_from(["sgd", "nag", "adam", "lamb", "rmsprop", "adagrad", "ftml", "signum"]),
       floats(0.0, 4.0), floats(0.0, 4.0), floats(1e-4, 0.1), st.integers(0, 50),
       st.booleans())
def test_packed_matches_the_pytree_for_random_multipliers_and_mixed_dtypes(
        name, lr_mult, wd_mult, lr, begin, masters):
    shapes = {"w": (5, 30), "b": (30,), "h": (7, 3)}
    params = draw(shapes, 2)
    params["h"] = params["h"].astype(jnp.bfloat16)
    grads = [jax.tree.map(lambda p, g: g.astype(p.dtype), params, draw(shapes, 3 + i))
             for i in range(3)]
    kwargs = {"learning_rate": lr, "begin_num_update": begin, "multi_precision": masters,
              "lr_mult": {"b": lr_mult}, "wd_mult": lambda name, leaf: wd_mult * leaf.ndim}
    expected = run(build(name, **kwargs), params, grads, 3, packed=False)
    got = run(build(name, **kwargs), params, grads, 3, packed=True)
    chex.assert_trees_all_close(got["w"], expected["w"], rtol=2e-6, atol=1e-6)
    chex.assert_trees_all_close(got["b"], expected["b"], rtol=2e-6, atol=1e-6)
    # bfloat16 leaves: LAMB's norms are summed in another order, so allow one ulp
    np.testing.assert_allclose(np.asarray(got["h"], np.float32),
                               np.asarray(expected["h"], np.float32), rtol=2**-7, atol=1e-6)


def test_packed_state_is_packed_and_multipliers_are_held_per_block():
    params = mxopt.pack(draw(SHAPES, 0))
    state = build("adam", lr_mult={"bn/gamma": 3.0}).init(params)
    scale = [n for n in jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, mxopt.Packed))
             if isinstance(n, mxopt.Packed)]
    assert {tuple(p.buffers["float32"].shape) for p in scale} == {(11, 128), (11, 1)}
    lr_mult = next(p for p in scale if p.buffers["float32"].shape == (11, 1))
    # blocks, in key order: bn/gamma 2, conv/bias 1, conv/weight 2, dense/bias 1, dense/weight 5
    np.testing.assert_array_equal(lr_mult.buffers["float32"][:, 0], [3, 3] + [1] * 9)


class LeafSumsTest(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_leaf_sums_sum_each_leaf_whatever_the_layout(self):
        tree = draw({"a": (3, 50), "b": (1,), "c": (300,)}, 4)
        expected = [float(jnp.sum(tree[k] ** 2)) for k in ("a", "b", "c")]
        sums = self.variant(lambda t: jax.tree.map(lambda x, f: f(x * x), t,
                                                   packing.leaf_sums(t)))
        per_block = sums(mxopt.pack(tree)).buffers["float32"]
        chex.assert_shape(per_block, (6, 1))
        np.testing.assert_allclose(per_block[:, 0], np.repeat(expected, [2, 1, 3]), rtol=1e-6)
        plain = sums(tree)
        np.testing.assert_allclose([plain[k] for k in ("a", "b", "c")], expected, rtol=1e-6)


def test_a_packed_step_shards_along_the_blocks_and_matches_one_device():
    shapes = {"w": (16, 128), "b": (1000,)}  # 16 + 8 blocks: 3 per device
    params, grads = draw(shapes, 0), [draw(shapes, 1 + i) for i in range(3)]
    expected = run(build("lamb"), params, grads, 3, packed=False)
    mesh = jax.make_mesh((8,), ("data",))
    split = sharding.spec_sharding(mesh, 2, {0: "data"})
    tx = build("lamb")

    @jax.jit
    def step(params, state, grads):
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    with jax.set_mesh(mesh):
        packed = jax.device_put(mxopt.pack(params), split)
        state = jax.jit(tx.init)(packed)
        for g in grads:
            packed, state = step(packed, state, jax.device_put(mxopt.pack(g), split))
    assert packed.buffers["float32"].sharding.is_equivalent_to(split, 2)
    assert step._cache_size() == 1
    chex.assert_trees_all_close(packed.unpack(), expected, rtol=2e-6, atol=1e-7)
