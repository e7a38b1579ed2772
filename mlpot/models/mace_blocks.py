"""Building blocks of the MACE model (``mlpot.models.mace``).

Pieces e3nn-jax does not ship in a form that is fast on CPU:

* ``edge_features``: spherical harmonics Y(r_ij / r_ij), a Bessel radial basis
  and the smooth polynomial envelope, NaN-safe on padding edges;
* ``message_paths`` / ``channelwise_messages`` / ``to_e3nn``: the channel-wise
  Clebsch-Gordan product of sender features with Y, weighted per path and
  channel: e3nn's ``tensor_product`` numbers, with channels on the last axis;
* ``SymmetricContraction``: MACE's product basis (Batatia et al., NeurIPS 2022,
  eq. 10-11). For every atom i and channel k it forms

      B_{i,k,LM} = sum_{nu=1..correlation} sum_eta w^{(nu)}_{z_i,k,eta,L}
                   sum_{lm} C^{LM,eta}_{l1m1..l_nu m_nu} prod_{xi=1..nu} A_{i,k,l_xi m_xi}

  where C are the generalised Clebsch-Gordan coefficients of the *symmetric*
  nu-fold tensor power (``e3nn.reduced_symmetric_tensor_product_basis``) and
  the weights w depend on the element z_i of the centre atom and on the
  channel k (channels are never mixed here; linears before and after do that).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from typing import NamedTuple

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from mlpot.models.edge_chunks import chunked_segment_sums
from mlpot.radial import bessel_basis, polynomial_envelope, safe_norm


def unit_init(key, shape, dtype=jnp.float32):
    """Uniform on [-sqrt 3, sqrt 3]: mean 0, variance 1, drawn with XLA's RngBitGenerator.

    Why not a threefry normal: on CPU each threefry draw of a new shape costs
    about a second of XLA compile time, and MACE has ~40 parameter arrays;
    this draw compiles in milliseconds. Unit variance matches e3nn's "path"
    gradient normalisation (the 1/sqrt(fan_in) factor is in the forward pass).
    """
    data = jax.random.key_data(key).reshape(-1)[:2].astype(jnp.uint32)
    rbg = jax.random.wrap_key_data(jnp.concatenate([data, data ^ jnp.uint32(0x9E3779B9)]), impl="rbg")
    return jax.random.uniform(rbg, shape, dtype, -math.sqrt(3.0), math.sqrt(3.0))


def linear(irreps_out, num_indexed_weights: int | None = None, force_irreps_out: bool = False) -> e3nn.flax.Linear:
    """``e3nn.flax.Linear`` with the cheap unit-variance initialiser.

    ``num_indexed_weights``: one weight set per element (called as ``linear(...)(species, x)``);
    ``force_irreps_out``: keep output irreps that no input reaches (as zeros).
    """
    return e3nn.flax.Linear(
        irreps_out,
        parameter_initializer=lambda: unit_init,
        num_indexed_weights=num_indexed_weights,
        force_irreps_out=force_irreps_out,
    )


class RadialMLP(nn.Module):
    """Bias-free MLP of the radial basis, silu between layers, 1/sqrt(fan_in) in the forward pass.

    No biases (as in MACE), so ``scale`` (E,) (the envelope) can multiply the
    last hidden layer: the same as scaling the outputs, on fewer numbers.
    ``splits`` > 1 returns that many equal column blocks of the output as a
    tuple, each from its own slice of the last kernel: slicing the (E, width)
    result instead would cost a pad of the whole array per block in the
    gradient.
    """

    widths: Sequence[int]
    splits: int = 1

    @nn.compact
    def __call__(self, x, scale=None):
        fan_in = (x.shape[-1], *self.widths[:-1])
        kernels = [
            self.param(f"kernel_{k}", unit_init, (n, w), x.dtype) for k, (n, w) in enumerate(zip(fan_in, self.widths))
        ]
        return radial_mlp(kernels, x, scale, self.splits)


def radial_mlp(kernels: Sequence, x, scale, splits: int):
    """``RadialMLP``'s forward pass on its parameters (``kernel_0``, ``kernel_1``, ... in order): the
    module creates them, and ``chunked_neighbour_sums`` applies them to one chunk of edges at a time."""
    for k, kernel in enumerate(kernels):
        kernel = kernel / math.sqrt(kernel.shape[0])
        if k < len(kernels) - 1:
            x = jax.nn.silu(x @ kernel) * 1.679  # 1.679: keeps silu's output at unit second moment
    if scale is not None:
        x = x * scale[:, None]
    if splits == 1:
        return x @ kernel
    return tuple(x @ block for block in jnp.split(kernel, splits, axis=1))


def sh_irreps(l_max: int) -> e3nn.Irreps:
    """0e + 1o + 2e + ...: the irreps of spherical harmonics (parity (-1)^l)."""
    return e3nn.Irreps.spherical_harmonics(l_max)


def edge_features(vectors, edge_mask, cutoff: float, l_max: int, num_basis: int):
    """(Y (E, sh_irreps) IrrepsArray, bessel (E, num_basis), envelope (E,)).

    Y uses e3nn's "component" normalisation of the unit vector. On a
    zero-length padding edge the unit vector is 0 (finite values and
    gradients); the envelope, which is 0 there and for r >= cutoff, is what
    removes the edge from every sum.
    """
    distances = safe_norm(vectors)
    unit = vectors / jnp.where(distances > 0, distances, 1.0)[:, None]
    sh = e3nn.spherical_harmonics(sh_irreps(l_max), e3nn.IrrepsArray("1o", unit), normalize=False)
    envelope = polynomial_envelope(distances, cutoff) * edge_mask
    return sh, bessel_basis(distances, cutoff, num_basis), envelope.astype(vectors.dtype)


class MessagePaths(NamedTuple):
    """The Clebsch-Gordan paths l1 (x) l2 -> l3 of a channel-wise tensor product, in e3nn's output order."""

    irreps_out: e3nn.Irreps  # per channel, one irrep per path, sorted by irrep (e3nn's order)
    paths: tuple  # (index of the irrep of input 1, slice into input 2, Clebsch-Gordan (d1, d2, d3) ndarray)


def message_paths(irreps_1: e3nn.Irreps, irreps_2: e3nn.Irreps, filter_ir_out: e3nn.Irreps) -> MessagePaths:
    """Paths of ``e3nn.tensor_product(irreps_1, irreps_2, filter_ir_out)`` (component normalisation), sorted as e3nn sorts them."""
    found = []
    for block, (_, ir_1) in enumerate(irreps_1):
        for (_, ir_2), s2 in zip(irreps_2, irreps_2.slices()):
            for ir_out in ir_1 * ir_2:
                if ir_out in filter_ir_out:
                    cg = np.asarray(e3nn.clebsch_gordan(ir_1.l, ir_2.l, ir_out.l)) * math.sqrt(ir_out.dim)
                    found.append((ir_out, len(found), (block, s2, cg)))
    found.sort(key=lambda item: (item[0], item[1]))  # stable by irrep, as e3nn.IrrepsArray.sort
    return MessagePaths(e3nn.Irreps([(1, ir) for ir, _, _ in found]), tuple(path for _, _, path in found))


def channelwise_messages(x_blocks, y, weights, paths: MessagePaths) -> list:
    """Per-edge messages w_path (x (x) y)_path, one (E, 2 l_out + 1, C) array per path.

    x_blocks: the sender features, one (E, 2l + 1, C) array per irrep of the
    input (channels last, so every product is a vector operation over
    channels); y: (E, dim_2) spherical harmonics; weights: one (E, C) per
    path. With ``to_e3nn`` after the neighbour sum, the same numbers as
    ``e3nn.tensor_product(x, y).regroup() * weights`` (tested). Paths stay
    separate arrays: slicing or concatenating (edges x channels) arrays costs
    a full pass each, in the forward pass or in its gradient.
    """
    messages = []
    for (block, s2, cg), w in zip(paths.paths, weights):
        coupling = jnp.einsum("ej,ijk->eik", y[:, s2], jnp.asarray(cg, y.dtype))  # (E, d1, d3)
        message = jnp.sum(coupling[:, :, :, None] * x_blocks[block][:, :, None, :], axis=1)  # (E, d3, C)
        messages.append(message * w[:, None, :])
    return messages


def chunked_neighbour_sums(
    kernels, bessel, envelope, sh, node_blocks, senders, receivers, paths: MessagePaths, chunk: int
) -> list:
    """Per path, sum_j R(r_ij) w (h_j (x) Y_ij) over the edges into each receiver, ``chunk`` edges at a
    time (``mlpot.models.edge_chunks``): the same numbers as ``radial_mlp`` + ``channelwise_messages``
    + ``segment_sum`` over all edges, up to the order of the float sums.

    ``node_blocks``: the sender-side node features, one (N, 2l + 1, C) array per irrep. Edges that
    fill up the last chunk have a zero envelope, so zero weights and zero messages."""
    num_nodes, channels = node_blocks[0].shape[0], node_blocks[0].shape[-1]

    def messages(b, scale, y, snd):
        weights = radial_mlp(kernels, b, scale, len(paths.paths))
        return channelwise_messages([block[snd] for block in node_blocks], y, weights, paths)

    starts = [jnp.zeros((num_nodes, cg.shape[2], channels), bessel.dtype) for _, _, cg in paths.paths]
    return chunked_segment_sums(messages, (bessel, envelope, sh, senders), receivers, starts, chunk)


def to_e3nn(summed: list, paths: MessagePaths) -> e3nn.IrrepsArray:
    """Per-path (N, 2 l_out + 1, C) neighbour sums -> e3nn IrrepsArray (N, (paths * C) x irreps, regrouped)."""
    num_nodes, _, channels = summed[0].shape
    chunks, start = [], 0
    for mul, ir in paths.irreps_out.regroup():
        block = jnp.stack(summed[start : start + mul], axis=1)  # (N, mul, 2l + 1, C)
        chunks.append(jnp.swapaxes(block, 2, 3).reshape(num_nodes, mul * channels * ir.dim))
        start += mul
    return e3nn.IrrepsArray((channels * paths.irreps_out).regroup(), jnp.concatenate(chunks, axis=-1))


class ProductPlan(NamedTuple):
    """One correlation order of the product basis, reduced to the monomials it uses.

    ``indices`` (order, M): the factors of each distinct monomial A_j1 A_j2 ... (j1 <= j2 <= ...)
    with a nonzero coefficient; ``coefficients`` (M, sum over output irreps of mul x dim): the
    symmetric basis on those monomials, times the number of orderings of each, divided by mul,
    one column block per output irrep; ``irreps``: (mul, irrep) of those blocks.
    """

    indices: np.ndarray
    coefficients: np.ndarray
    irreps: tuple


@functools.cache
def product_plan(irreps_in: str, order: int, keep: tuple) -> ProductPlan:
    """The reduced symmetric basis of ``order`` copies of ``irreps_in`` (e3nn's), on distinct monomials.

    sum_{j1..jo} u[j1..jo] x_j1..x_jo = sum_{j1<=..<=jo} (number of orderings) u[j1..jo] x_j1..x_jo,
    since u is symmetric; the basis is >97 % zeros, and at l <= 3, order 3, only 355 of the 816
    distinct monomials have a nonzero coefficient.
    """
    irreps = e3nn.Irreps(irreps_in)
    basis = e3nn.reduced_symmetric_tensor_product_basis(irreps, order, keep_ir=[e3nn.Irrep(ir) for ir in keep])
    monomials = list(itertools.combinations_with_replacement(range(irreps.dim), order))
    if not basis.irreps:  # no output irrep reachable at this order
        return ProductPlan(np.zeros((order, 0), int), np.zeros((0, 0)), ())
    orderings = np.array(
        [math.factorial(order) / math.prod(math.factorial(m.count(j)) for j in set(m)) for m in monomials]
    )
    blocks = []
    for (mul, _), u in zip(basis.irreps, basis.chunks):
        u = np.asarray(u)
        on_monomials = np.stack([u[m] for m in monomials]) * orderings[:, None, None]  # (M, mul, ir.dim)
        # dividing by mul keeps the output variance ~1 at initialisation whatever the path count
        blocks.append(on_monomials.reshape(len(monomials), -1) / mul)
    coefficients = np.concatenate(blocks, axis=1)
    used = np.flatnonzero(np.abs(coefficients).max(axis=1) > 1e-10)
    indices = np.array([monomials[k] for k in used]).T.reshape(order, -1)
    return ProductPlan(indices, coefficients[used], tuple((mul, ir) for mul, ir in basis.irreps))


class SymmetricContraction(nn.Module):
    """A (N, channels, irreps_in) -> B (N, channels, keep_irreps): see the module docstring.

    Each order is one matrix product of the monomials with a nonzero coefficient (``product_plan``)
    with the basis, for every output irrep at once, then the per-element, per-channel weights mix
    the paths. The monomials are products of 0/1 selections of A (matrix products, not gathers: on
    CPU the gradient of a gather is a scatter-add, ~10x slower). At l <= 3 and order 3 that is 355
    monomials: ~3x fewer multiply-adds than the distinct pairs times the last index (136 x 16), and
    no (nodes x channels x dim x paths) intermediate. The same function as the dense definition
    (tested), with the parameters created in the same order (so the same initial values).
    """

    correlation: int
    keep_irreps: Sequence[str]  # e.g. ("0e", "1o"): the irreps of B
    num_species: int

    @nn.compact
    def __call__(self, x: e3nn.IrrepsArray, species) -> e3nn.IrrepsArray:
        if x.ndim != 3:
            raise ValueError(f"SymmetricContraction wants (nodes, channels, irreps), got shape {x.shape}")
        channels = x.shape[1]
        keep = [e3nn.Irrep(ir) for ir in self.keep_irreps]
        a = x.array
        identity = np.eye(a.shape[-1])
        out: dict = {}
        for order in range(self.correlation, 0, -1):
            plan = product_plan(str(x.irreps), order, tuple(str(ir) for ir in keep))
            if not plan.irreps:
                continue
            monomials = a @ jnp.asarray(identity[:, plan.indices[0]], a.dtype)  # (N, C, M)
            for factor in plan.indices[1:]:
                monomials = monomials * (a @ jnp.asarray(identity[:, factor], a.dtype))
            projected = monomials @ jnp.asarray(plan.coefficients, a.dtype)  # (N, C, sum of mul x ir.dim)
            start = 0
            for mul, ir in plan.irreps:
                block = projected[..., start : start + mul * ir.dim].reshape(a.shape[:2] + (mul, ir.dim))
                start += mul * ir.dim
                w = self.param(f"w{order}_{ir}", unit_init, (self.num_species, mul, channels), a.dtype)
                # a broadcast product and a sum: einsum would lower this to a batched dot with transposes
                term = jnp.sum(block * jnp.swapaxes(w[species], 1, 2)[..., None], axis=2)
                out[ir] = term if ir not in out else out[ir] + term
        irreps_out = e3nn.Irreps([(1, ir) for ir in keep if ir in out])
        return e3nn.from_chunks(irreps_out, [out[ir][:, :, None, :] for _, ir in irreps_out], x.shape[:-1], a.dtype)
