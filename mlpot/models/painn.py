"""PaiNN (Schütt, Unke, Gastegger, ICML 2021): an equivariant message-passing
network with scalar features s_i (F) and vector features v_i (3, F).

Fast and accurate for its cost: l <= 1 features only, two-body messages. For
the highest accuracy use the MACE-class model (see README, "which model").
"""

from __future__ import annotations

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from mlpot.models.edge_chunks import chunked_segment_sums, edge_chunk
from mlpot.radial import bessel_basis, polynomial_envelope, safe_norm


class PaiNNMessage(nn.Module):
    features: int
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, s, v, radial, envelope, unit, senders, receivers):
        """s (N,F), v (N,3,F), radial basis (E,B), envelope (E,) (0 beyond the cutoff), unit (E,3)."""
        F, dense = self.features, partial(nn.Dense, param_dtype=self.param_dtype)
        phi = dense(3 * F)(nn.silu(dense(F)(s)))  # (N, 3F)
        # The envelope multiplies the filter *after* its bias: an edge at or
        # beyond the cutoff (a skin edge) must contribute exactly nothing.
        radial_filter = dense(3 * F)
        chunk = edge_chunk(senders.shape[0], 4 * F)  # messages: F scalars + 3F vector components per edge
        if chunk is None:
            w = radial_filter(radial) * envelope[:, None]  # (E, 3F)
            x = phi[senders] * w
            ds, dvv, dvs = jnp.split(x, 3, axis=-1)
            dv = v[senders] * dvv[:, None, :] + unit[:, :, None] * dvs[:, None, :]
            n = s.shape[0]
            s = s + jax.ops.segment_sum(ds, receivers, num_segments=n)
            v = v + jax.ops.segment_sum(dv, receivers, num_segments=n)
            return s, v
        # a large graph: edges in chunks (memory; mlpot.models.edge_chunks), the filter's own parameters
        radial_filter(radial[:1])  # creates (init) or binds them, as the one-pass sum does
        kernel, bias = (radial_filter.variables["params"][k] for k in ("kernel", "bias"))

        def messages(r, scale, u, snd):
            w = (r @ kernel + bias) * scale[:, None]
            ds, dvv, dvs = jnp.split(phi[snd] * w, 3, axis=-1)
            return ds, v[snd] * dvv[:, None, :] + u[:, :, None] * dvs[:, None, :]

        return tuple(chunked_segment_sums(messages, (radial, envelope, unit, senders), receivers, (s, v), chunk))


class PaiNNUpdate(nn.Module):
    features: int
    param_dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, s, v):
        F, dense = self.features, partial(nn.Dense, param_dtype=self.param_dtype)
        uv = dense(F, use_bias=False)(v)  # acts on the feature axis: equivariant
        vv = dense(F, use_bias=False)(v)
        vv_norm = jnp.sqrt(jnp.sum(vv**2, axis=1) + 1e-8)  # smooth at v = 0
        a = dense(3 * F)(nn.silu(dense(F)(jnp.concatenate([s, vv_norm], axis=-1))))
        a_vv, a_sv, a_ss = jnp.split(a, 3, axis=-1)
        dv = a_vv[:, None, :] * uv
        ds = a_sv * jnp.sum(uv * vv, axis=1) + a_ss
        return s + ds, v + dv


class PaiNN(nn.Module):
    """(edge vectors (E,3) Å, graph) -> per-atom energies (N,) in units of the energy scale."""

    num_species: int
    cutoff: float
    features: int = 64
    num_interactions: int = 3
    num_basis: int = 16
    dtype: str = "float32"

    @nn.compact
    def __call__(self, vectors, graph):
        dtype = jnp.dtype(self.dtype)
        vectors = vectors.astype(dtype)
        distances = safe_norm(vectors)
        envelope = polynomial_envelope(distances, self.cutoff) * graph.edge_mask
        radial = bessel_basis(distances, self.cutoff, self.num_basis)
        unit = vectors / jnp.where(distances > 0, distances, 1.0)[:, None]
        n = graph.species.shape[0]
        s = nn.Embed(self.num_species, self.features, param_dtype=dtype)(graph.species)
        v = jnp.zeros((n, 3, self.features), dtype)
        for _ in range(self.num_interactions):
            s, v = PaiNNMessage(self.features, dtype)(s, v, radial, envelope, unit, graph.senders, graph.receivers)
            s, v = PaiNNUpdate(self.features, dtype)(s, v)
        dense = partial(nn.Dense, param_dtype=dtype)  # the float policy holds for every weight, not only the inputs
        out = dense(1)(nn.silu(dense(self.features // 2)(s)))[:, 0]
        return out * graph.node_mask
