"""Energy, forces, stress and per-atom energies by automatic differentiation.

This is the only place forces and stress are derived. Given any
``atom_energy_fn(params, vectors, graph) -> (N,)`` (eV per atom, float64):

  E_g      = sum_{i in g} E_i
  F_i      = -dE/dr_i
  sigma_g  = (1/V_g) dE/d(eps_g)   (ASE's sign: compression negative)

The strain eps_g (3x3, symmetrised) deforms positions *and* cell of graph g:
r -> r (1 + eps), cell -> cell (1 + eps), so r_ij = r_j - r_i + S @ cell
deforms as a whole (adding strain to pair vectors alone would double-count
the cell part).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mlpot.graph import Graph


class Predictions(NamedTuple):
    energy: jnp.ndarray  # (G,) eV, total energy per graph (0 on padding graphs)
    forces: jnp.ndarray  # (N, 3) eV/Å
    stress: jnp.ndarray  # (G, 3, 3) eV/Å^3, zeros where the volume is 0
    energies: jnp.ndarray  # (N,) eV, per-atom energies


AtomEnergyFn = Callable[[object, jnp.ndarray, Graph], jnp.ndarray]


def edge_vectors(positions, cell, graph: Graph) -> jnp.ndarray:
    """r_ij = r_j - r_i + S @ cell_g, (E, 3)."""
    edge_cell = cell[graph.node_graph[graph.receivers]]
    # Written out, not as einsum("ek,ekl->el"): XLA:CPU runs that batched 3x3 product as E tiny
    # dot products, ~3x slower than this fused multiply-add (MD computes it over the skin list twice
    # per step).
    offsets = jnp.sum(graph.shifts[:, :, None] * edge_cell, axis=1)
    return positions[graph.senders] - positions[graph.receivers] + offsets


def _strained_energy(atom_energy_fn: AtomEnergyFn, params, positions, strain, graph: Graph):
    symmetric = 0.5 * (strain + jnp.swapaxes(strain, 1, 2))
    deformation = jnp.eye(3, dtype=positions.dtype) + symmetric  # (G, 3, 3)
    positions = jnp.einsum("ni,nij->nj", positions, deformation[graph.node_graph])
    cell = jnp.einsum("gki,gij->gkj", graph.cell, deformation)
    energies = atom_energy_fn(params, edge_vectors(positions, cell, graph), graph)
    energies = jnp.where(graph.node_mask, energies, 0.0)
    return jnp.sum(energies), energies


def predict(atom_energy_fn: AtomEnergyFn, params, graph: Graph, compute_stress: bool = True) -> Predictions:
    """All properties of a padded batch in one forward + backward pass."""
    positions = jnp.asarray(graph.positions)
    strain = jnp.zeros((graph.cell.shape[0], 3, 3), positions.dtype)
    grad_fn = jax.grad(
        lambda p, e: _strained_energy(atom_energy_fn, params, p, e, graph),
        argnums=(0, 1) if compute_stress else 0,
        has_aux=True,
    )
    grads, energies = grad_fn(positions, strain)
    if compute_stress:
        d_positions, d_strain = grads
        volume = jnp.asarray(graph.volume)
        safe_volume = jnp.where(volume > 0, volume, 1.0)
        stress = jnp.where((volume > 0)[:, None, None], d_strain / safe_volume[:, None, None], 0.0)
    else:
        d_positions = grads
        stress = jnp.zeros((graph.cell.shape[0], 3, 3), positions.dtype)
    num_graphs = graph.cell.shape[0]
    energy = jax.ops.segment_sum(energies, graph.node_graph, num_segments=num_graphs)
    forces = jnp.where(graph.node_mask[:, None], -d_positions, 0.0)
    return Predictions(energy, forces, stress, energies)


def energy_and_forces(atom_energy_fn: AtomEnergyFn, params, positions, graph: Graph):
    """(total energy of all real atoms, forces (N,3)): the ``force_fn`` shape MD wants."""
    strain = jnp.zeros((graph.cell.shape[0], 3, 3), positions.dtype)
    (energy, _), d_positions = jax.value_and_grad(
        lambda p: _strained_energy(atom_energy_fn, params, p, strain, graph), has_aux=True
    )(positions)
    return energy, jnp.where(graph.node_mask[:, None], -d_positions, 0.0)
