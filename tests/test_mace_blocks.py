"""MACE's fast building blocks against their textbook definitions.

``channelwise_messages`` + ``to_e3nn`` and ``SymmetricContraction`` are
rewritten for speed (channels last, monomials instead of dense bases); here
they are checked, in float64, against e3nn's own tensor product and a
direct contraction of e3nn's symmetric basis. Same parameters, same numbers.
"""

import e3nn_jax as e3nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mlpot.models.mace_blocks import (
    RadialMLP,
    SymmetricContraction,
    channelwise_messages,
    message_paths,
    to_e3nn,
)

CHANNELS = 3
KEY = jax.random.PRNGKey(0)


@pytest.mark.parametrize("irreps_in", ["0e", "0e + 1o", "0e + 1o + 2e"])
def test_channelwise_messages_equal_e3nn_tensor_product(irreps_in):
    irreps_in, sh_irreps = e3nn.Irreps(irreps_in), e3nn.Irreps("0e + 1o + 2e")
    num_edges, num_nodes = 13, 5
    rng = np.random.default_rng(1)
    x = e3nn.IrrepsArray(CHANNELS * irreps_in, rng.normal(size=(num_edges, CHANNELS * irreps_in.dim)))
    x = x.regroup()
    y = e3nn.spherical_harmonics(sh_irreps, rng.normal(size=(num_edges, 3)), normalize=True)
    receivers = rng.integers(0, num_nodes, num_edges)

    reference = e3nn.tensor_product(x, y, filter_ir_out=sh_irreps).regroup()
    weights = rng.normal(size=(num_edges, reference.irreps.num_irreps))
    reference = e3nn.scatter_sum(reference * weights, dst=receivers, output_size=num_nodes)

    split = x.mul_to_axis(CHANNELS)  # (E, C, irreps)
    paths = message_paths(split.irreps, sh_irreps, sh_irreps)
    blocks = [jnp.swapaxes(split.array[:, :, s], 1, 2) for s in split.irreps.slices()]
    per_path = jnp.asarray(weights).reshape(num_edges, len(paths.paths), CHANNELS)
    messages = channelwise_messages(blocks, y.array, [per_path[:, p] for p in range(len(paths.paths))], paths)
    summed = to_e3nn([jax.ops.segment_sum(m, receivers, num_segments=num_nodes) for m in messages], paths)

    assert summed.irreps == reference.irreps
    np.testing.assert_allclose(summed.array, reference.array, rtol=1e-12, atol=1e-12)


def dense_symmetric_contraction(params, x, species, correlation, keep):
    """B = sum_nu sum_k w_{z,k,c} sum_{j1..j_nu} U_{j1..j_nu,k,i} A_{c,j1}..A_{c,j_nu} / mul, literally."""
    out = {}
    for order in range(1, correlation + 1):
        basis = e3nn.reduced_symmetric_tensor_product_basis(x.irreps, order, keep_ir=keep)
        letters = "pqrstu"[:order]  # basis indices (n, c, k, i are taken)
        operands = ",".join(f"nc{j}" for j in letters)
        for (mul, ir), u in zip(basis.irreps, basis.chunks):
            contracted = jnp.einsum(f"{letters}ki,{operands}->ncki", u / mul, *([x.array] * order))
            term = jnp.einsum("ncki,nkc->nci", contracted, params["params"][f"w{order}_{ir}"][species])
            out[ir] = out.get(ir, 0.0) + term
    return out


@pytest.mark.parametrize(
    "irreps_in, correlation, keep",
    [
        ("0e + 1o + 2e", 3, ["0e", "1o"]),
        ("0e + 1o + 2e", 3, ["0e"]),
        ("0e + 1o + 2e + 3o", 2, ["0e", "1o", "2e"]),
        ("0e + 1o + 2e + 3o", 3, ["0e", "1o"]),  # the wide ethanol model's product basis
    ],
)
def test_symmetric_contraction_equals_the_dense_definition(irreps_in, correlation, keep):
    num_nodes, num_species = 6, 3
    x = e3nn.normal(e3nn.Irreps(irreps_in), KEY, (num_nodes, CHANNELS)).astype(jnp.float64)
    species = jnp.array([0, 2, 1, 1, 0, 2])
    module = SymmetricContraction(correlation, keep, num_species)
    params = module.init(KEY, x, species)
    params = jax.tree_util.tree_map(lambda w: w + jax.random.normal(KEY, w.shape, w.dtype), params)
    got = module.apply(params, x, species)
    reference = dense_symmetric_contraction(params, x, species, correlation, [e3nn.Irrep(ir) for ir in keep])
    assert [ir for _, ir in got.irreps] == [e3nn.Irrep(ir) for ir in keep]
    for (_, ir), chunk in zip(got.irreps, got.chunks):
        np.testing.assert_allclose(chunk[:, :, 0, :], reference[ir], rtol=1e-10, atol=1e-12)


def test_radial_mlp_splits_and_scale_match_the_plain_output():
    basis = jax.random.normal(KEY, (7, 5), jnp.float64)
    scale = jnp.linspace(0.0, 1.0, 7)
    plain = RadialMLP((8, 8, 6))
    params = plain.init(KEY, basis)
    full = plain.apply(params, basis) * scale[:, None]
    parts = RadialMLP((8, 8, 6), splits=3).apply(params, basis, scale)
    np.testing.assert_allclose(jnp.concatenate(parts, axis=1), full, rtol=1e-12, atol=1e-14)
