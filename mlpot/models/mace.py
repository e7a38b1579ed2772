"""MACE (Batatia, Kovács, Simm, Ortner, Csányi, NeurIPS 2022): an
E(3)-equivariant message-passing network with many-body (higher order)
messages, written with e3nn-jax.

One interaction layer t, for atom i with neighbours j (r_ij = r_j - r_i):

  A_i   = Linear( 1/avg_num_neighbors * sum_j R(r_ij) * (Linear(h_j) (x) Y(r_ij)) )
  B_i   = SymmetricContraction_{z_i}(A_i)           # body order up to correlation + 1
  h_i'  = Linear(B_i) + Linear_{z_i}(h_i)           # element-dependent residual
  E_i  += readout_t(h_i')                            # linear, last layer a small MLP

(x) is the Clebsch-Gordan tensor product (channel-wise), Y are spherical
harmonics up to ``l_max``, R are per-path, per-channel weights from an MLP of a
Bessel basis, multiplied by the polynomial envelope so that an edge with
r >= cutoff contributes exactly zero (energy, forces and their derivative are
smooth when a neighbour crosses the cutoff). Only irreps with parity (-1)^l
are kept, so the energy is invariant under rotations *and* reflections.

Slower than PaiNN but more accurate for the same data: see BENCHMARKS.md.
"""

from __future__ import annotations

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp

from mlpot.models.edge_chunks import edge_chunk
from mlpot.models.mace_blocks import (
    RadialMLP,
    SymmetricContraction,
    channelwise_messages,
    chunked_neighbour_sums,
    edge_features,
    linear,
    message_paths,
    sh_irreps,
    to_e3nn,
    unit_init,
)


def hidden_irreps(features: int, hidden_l: int) -> e3nn.Irreps:
    """features x (0e + 1o + ... up to hidden_l): the node features between layers."""
    return (features * sh_irreps(hidden_l)).regroup()


class MACEInteraction(nn.Module):
    """One MACE layer: messages, product basis and residual update (see module docstring)."""

    features: int
    hidden_l: int
    l_max: int
    correlation: int
    num_species: int
    radial_hidden: int
    avg_num_neighbors: float

    @nn.compact
    def __call__(self, h, sh, bessel, envelope, graph):
        target = sh_irreps(self.l_max)
        h_up = linear(h.irreps)(h).mul_to_axis(self.features)  # (N, C, irreps) with channels apart
        paths = message_paths(h_up.irreps, sh.irreps, target)
        # one learned weight per path and channel, zero beyond the cutoff
        radial = RadialMLP((self.radial_hidden,) * 3 + (len(paths.paths) * self.features,), len(paths.paths))
        chunk = edge_chunk(graph.senders.shape[0], self.features * (self.l_max + 1) ** 2)
        num_nodes = graph.species.shape[0]
        blocks = [jnp.swapaxes(h_up.array[:, :, s], 1, 2) for s in h_up.irreps.slices()]  # (N, 2l+1, C) per irrep
        if chunk is None:
            weights = radial(bessel, envelope)
            senders = [block[graph.senders] for block in blocks]
            messages = channelwise_messages(senders, sh.array, weights, paths)
            summed = [jax.ops.segment_sum(m, graph.receivers, num_segments=num_nodes) for m in messages]
        else:  # a large graph: edges in chunks (memory; mlpot.models.edge_chunks)
            radial(bessel[:1], envelope[:1])  # creates (init) or binds the kernels, as the one-pass sum does
            kernels = [radial.variables["params"][f"kernel_{k}"] for k in range(len(radial.widths))]
            summed = chunked_neighbour_sums(
                kernels, bessel, envelope, sh.array, blocks, graph.senders, graph.receivers, paths, chunk
            )
        summed = to_e3nn(summed, paths)
        a = linear(self.features * target)(summed / self.avg_num_neighbors)
        keep = [str(ir) for _, ir in sh_irreps(self.hidden_l)]
        b = SymmetricContraction(self.correlation, keep, self.num_species)(a.mul_to_axis(self.features), graph.species)
        out_irreps = hidden_irreps(self.features, self.hidden_l)
        b = linear(out_irreps)(b.axis_to_mul())
        skip = linear(out_irreps, num_indexed_weights=self.num_species, force_irreps_out=True)(graph.species, h)
        return b + skip


class MACEBody(nn.Module):
    """Embedding, interactions and readouts; returns (per-atom energies, node features of every layer)."""

    num_species: int
    cutoff: float
    features: int
    hidden_l: int
    l_max: int
    correlation: int
    num_interactions: int
    num_basis: int
    radial_hidden: int
    readout_hidden: int
    avg_num_neighbors: float
    dtype: str

    @nn.compact
    def __call__(self, vectors, graph):
        dtype = jnp.dtype(self.dtype)
        sh, bessel, envelope = edge_features(
            vectors.astype(dtype), graph.edge_mask, self.cutoff, self.l_max, self.num_basis
        )
        embedding = nn.Embed(self.num_species, self.features, param_dtype=dtype, embedding_init=unit_init)(
            graph.species
        )
        h = e3nn.IrrepsArray(f"{self.features}x0e", embedding)
        energies = jnp.zeros(graph.species.shape[0], dtype)
        features = []
        for t in range(self.num_interactions):
            last = t == self.num_interactions - 1
            h = MACEInteraction(
                self.features,
                0 if last else self.hidden_l,
                self.l_max,
                self.correlation,
                self.num_species,
                self.radial_hidden,
                self.avg_num_neighbors,
            )(h, sh, bessel, envelope, graph)
            features.append(h)
            if last:  # non-linear readout of the final scalars
                hidden = linear(f"{self.readout_hidden}x0e")(h)
                readout = linear("0e")(e3nn.scalar_activation(hidden, [jax.nn.silu]))
            else:
                readout = linear("0e")(h)
            energies = energies + readout.array[:, 0]
        return energies * graph.node_mask, tuple(features)


class MACE(nn.Module):
    """(edge vectors (E,3) Å, graph) -> per-atom energies (N,) in units of the energy scale.

    Hyperparameters: ``features`` channels; node features carry l <= ``hidden_l``
    between layers (the last layer keeps scalars only); edge spherical
    harmonics and the A features go up to ``l_max``; ``correlation`` is the
    order of the symmetric product (body order correlation + 1);
    ``avg_num_neighbors`` normalises the neighbour sum (set it to the
    training set's mean neighbour count).
    """

    num_species: int
    cutoff: float
    features: int = 32
    hidden_l: int = 1
    l_max: int = 2
    correlation: int = 3
    num_interactions: int = 2
    num_basis: int = 8
    radial_hidden: int = 64
    readout_hidden: int = 16
    avg_num_neighbors: float = 10.0
    dtype: str = "float32"

    def __post_init__(self):
        # at construction, so a config check (training.config.validate) sees it before any data is read
        if self.l_max < self.hidden_l:
            raise ValueError(f"MACE: l_max ({self.l_max}) must be >= hidden_l ({self.hidden_l})")
        super().__post_init__()

    def setup(self):
        self.body = MACEBody(
            self.num_species,
            self.cutoff,
            self.features,
            self.hidden_l,
            self.l_max,
            self.correlation,
            self.num_interactions,
            self.num_basis,
            self.radial_hidden,
            self.readout_hidden,
            self.avg_num_neighbors,
            self.dtype,
        )

    def __call__(self, vectors, graph):
        return self.body(vectors, graph)[0]

    def node_features(self, vectors, graph) -> e3nn.IrrepsArray:
        """Equivariant node features after the first interaction (N, features x (0e + 1o ...)).

        For tests and analysis: ``module.apply(params, vectors, graph, method=MACE.node_features)``.
        """
        return self.body(vectors, graph)[1][0]
