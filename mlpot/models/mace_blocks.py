"""Building blocks of the MACE model (``mlpot.models.mace``).

Two pieces that e3nn-jax does not ship as flax modules:

* ``edge_features``: spherical harmonics Y(r_ij / r_ij), a Bessel radial basis
  and the smooth polynomial envelope, NaN-safe on padding edges;
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

import math
from collections.abc import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

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


def linear(irreps_out, **options) -> e3nn.flax.Linear:
    """``e3nn.flax.Linear`` with the cheap unit-variance initialiser."""
    return e3nn.flax.Linear(irreps_out, parameter_initializer=lambda: unit_init, **options)


class RadialMLP(nn.Module):
    """Bias-free MLP of the radial basis, silu between layers, 1/sqrt(fan_in) in the forward pass.

    No biases (as in MACE); the caller multiplies the result by the envelope.
    """

    widths: Sequence[int]

    @nn.compact
    def __call__(self, x):
        for k, width in enumerate(self.widths):
            kernel = self.param(f"kernel_{k}", unit_init, (x.shape[-1], width), x.dtype)
            x = x @ kernel / math.sqrt(x.shape[-1])
            if k < len(self.widths) - 1:
                x = jax.nn.silu(x) * 1.679  # 1.679: keeps silu's output at unit second moment
        return x


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


class SymmetricContraction(nn.Module):
    """A (N, channels, irreps_in) -> B (N, channels, keep_irreps): see the module docstring.

    Evaluated Horner-style, highest order first: ((w3 A + w2) A + w1) A, so
    the largest intermediate is (N, channels, dim^(correlation-1), 2L+1).
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
        out: dict = {}
        for order in range(self.correlation, 0, -1):
            # Contracting the last free "dim" axis with A lowers the order of
            # what is already accumulated by one; then this order's terms join.
            out = {ir: jnp.einsum("nc...ji,ncj->nc...i", t, x.array) for ir, t in out.items()}
            basis = e3nn.reduced_symmetric_tensor_product_basis(x.irreps, order, keep_ir=keep)
            for (mul, ir), u in zip(basis.irreps, basis.chunks):
                # u: (dim,)*order + (mul, ir.dim); dividing by mul keeps the
                # output variance ~1 at initialisation whatever the path count.
                u = jnp.asarray(u / mul, x.dtype)
                w = self.param(f"w{order}_{ir}", unit_init, (self.num_species, mul, channels), x.dtype)
                term = jnp.einsum("...jki,nkc,ncj->nc...i", u, w[species], x.array)  # (N, C, dim^(order-1), ir.dim)
                out[ir] = term if ir not in out else out[ir] + term
        irreps_out = e3nn.Irreps([(1, ir) for ir in keep if ir in out])
        return e3nn.from_chunks(irreps_out, [out[ir][:, :, None, :] for _, ir in irreps_out], x.shape[:-1], x.dtype)
