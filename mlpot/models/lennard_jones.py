"""Lennard-Jones as a parameter-free "model" in the learnable-model slot.

It runs through exactly the same graph, autodiff and calculator path as the
networks, so comparing it with ``ase.calculators.lj.LennardJones`` tests that
path against an independent implementation. Matches ASE's ``smooth=False``
convention: pair energy shifted to zero at r_c, truncated beyond. Like the
networks it runs in ``dtype`` (the config's float policy); the oracle tests
ask for float64.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp


class LennardJones(nn.Module):
    num_species: int
    cutoff: float
    sigma: float = 1.0
    epsilon: float = 1.0
    dtype: str = "float64"

    @nn.compact
    def __call__(self, vectors, graph):
        r2 = jnp.sum(vectors.astype(jnp.dtype(self.dtype)) ** 2, axis=-1)
        inside = (r2 < self.cutoff**2) & graph.edge_mask
        r2 = jnp.where(inside, r2, jnp.ones_like(r2))
        c6 = (self.sigma**2 / r2) ** 3
        e_cut = 4 * self.epsilon * ((self.sigma / self.cutoff) ** 12 - (self.sigma / self.cutoff) ** 6)
        pair = jnp.where(inside, 4 * self.epsilon * (c6**2 - c6) - e_cut, jnp.zeros_like(r2))
        n = graph.species.shape[0]
        return 0.5 * jnp.zeros(n, pair.dtype).at[graph.receivers].add(pair)
