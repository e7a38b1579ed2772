"""Adapters that turn something physical into the integrators' ``force_fn``.

``Forces`` bundles what the simulation loop needs: the pure device-side
``force_fn(positions, cell, force_args) -> (energy, forces, stress)``, an
optional ``distance_fn`` (smallest pair distance, for the safety check) and a
host-side ``build(positions, cell) -> force_args`` called at each neighbour
rebuild. ``potential_forces`` makes one for an mlpot ``Potential``;
``fixed_forces`` for any hand-written force_fn (harmonic well, tests).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from ase import Atoms

from mlpot import physics
from mlpot.graph import bucket_size, check_atoms, neighbour_pairs, pad_graph, species_indices
from mlpot.potential import Potential


class Forces(NamedTuple):
    force_fn: Callable  # (positions (N,3), cell (3,3), force_args) -> (energy, forces (N,3), stress (3,3))
    distance_fn: Callable | None  # (positions, cell, force_args) -> smallest pair distance, Å
    build: Callable  # host: (positions (N,3) numpy, cell (3,3) numpy) -> force_args
    cutoff: float  # Å, interaction range (0 when there is no neighbour list)
    skin: float  # Å, list built with cutoff + skin; rebuilt when an atom moved > skin/2
    cache_key: object  # hashable: equal keys share compiled programs
    neighbours: object = None  # the NeighbourList, when there is one (counts and timings)


def fixed_forces(force_fn, force_args=None, distance_fn=None) -> Forces:
    """A force_fn with constant ``force_args`` and no neighbour list (never rebuilt)."""
    return Forces(force_fn, distance_fn, lambda positions, cell: force_args, 0.0, 1e30, ("fixed", id(force_fn)))


def potential_force_fn(atom_energy_fn, num_atoms: int, compute_stress: bool):
    """force_fn for a Potential: force_args = (params, padded graph); the MD state holds
    only the ``num_atoms`` real atoms, the graph's padding stays inside this function."""

    def force_fn(positions, cell, force_args):
        params, graph = force_args
        graph = graph._replace(
            positions=jnp.asarray(graph.positions).at[:num_atoms].set(positions),
            cell=jnp.asarray(graph.cell).at[0].set(cell),
            volume=jnp.asarray(graph.volume)
            .at[0]
            .set(jnp.where(graph.volume[0] > 0, jnp.abs(jnp.linalg.det(cell)), 0.0)),
        )
        if compute_stress:
            out = physics.predict(atom_energy_fn, params, graph, compute_stress=True)
            return out.energy[0], out.forces[:num_atoms], out.stress[0]
        energy, forces = physics.energy_and_forces(atom_energy_fn, params, graph.positions, graph)
        return energy, forces[:num_atoms], jnp.zeros((3, 3), positions.dtype)

    return force_fn


def graph_distance_fn(num_atoms: int):
    """Smallest real edge length |r_ij| (Å) in the neighbour graph (inf when there is none)."""

    def distance_fn(positions, cell, force_args):
        _, graph = force_args
        full = jnp.asarray(graph.positions).at[:num_atoms].set(positions)
        cells = jnp.asarray(graph.cell).at[0].set(cell)
        lengths = jnp.linalg.norm(physics.edge_vectors(full, cells, graph), axis=-1)
        return jnp.min(jnp.where(graph.edge_mask, lengths, jnp.inf))

    return distance_fn


class NeighbourList:
    """Host-side rebuilds: matscipy pairs within cutoff + skin, padded to a fixed capacity.

    The edge capacity only grows, to the next bucket with ``headroom``, when a
    rebuild finds more pairs than fit (overflow is caught here on the host, so
    no frame is ever computed with a truncated list); each growth costs one
    recompile, and ``growths`` counts them.
    """

    def __init__(self, cutoff: float, species, atoms: Atoms, skin: float, headroom: float = 1.2, capacity=None):
        check_atoms(atoms, "MD start structure")
        self.cutoff, self.skin, self.headroom = float(cutoff), float(skin), float(headroom)
        self.template = atoms.copy()
        self.template.calc = None
        self.species = species_indices(atoms.numbers, species, "MD start structure")
        self.num_nodes = bucket_size(len(atoms) + 1)
        self.capacity = int(capacity) if capacity else 0
        self.builds, self.growths, self.seconds, self.num_edges = 0, 0, 0.0, 0

    def __call__(self, positions, cell) -> object:
        start = time.perf_counter()
        atoms = self.template
        atoms.positions = np.asarray(positions, np.float64)
        if atoms.pbc.any():
            atoms.set_cell(np.asarray(cell, np.float64), scale_atoms=False)
        i, j, shifts = neighbour_pairs(atoms, self.cutoff + self.skin)
        if len(i) > self.capacity:
            if self.capacity:
                self.growths += 1
            self.capacity = bucket_size(int(len(i) * self.headroom) + 1)
        graph = pad_graph([(atoms, self.species, i, j, shifts)], self.num_nodes, self.capacity, 2)
        self.builds += 1
        self.num_edges = len(i)
        self.seconds += time.perf_counter() - start
        return graph


def graph_forces(
    atom_energy_fn,
    params,
    cutoff: float,
    species,
    atoms: Atoms,
    skin: float = 1.0,
    compute_stress: bool = False,
    headroom: float = 1.2,
    capacity=None,
    cache_key=None,
) -> Forces:
    """``Forces`` for any ``atom_energy_fn(params, vectors, graph) -> (N,)`` on a neighbour graph.

    ``cache_key`` (hashable) lets simulations of the same model share compiled code.
    """
    n = len(atoms)
    if compute_stress and not (all(atoms.pbc) and atoms.cell.rank == 3):
        raise ValueError("stress (NPT) needs a cell periodic in all three directions")
    neighbours = NeighbourList(cutoff, species, atoms, skin, headroom, capacity)

    def build(positions, cell):
        return params, neighbours(positions, cell)

    key = (cache_key or ("energy_fn", id(atom_energy_fn)), n, compute_stress)
    return Forces(
        potential_force_fn(atom_energy_fn, n, compute_stress),
        graph_distance_fn(n),
        build,
        float(cutoff),
        float(skin),
        key,
        neighbours,
    )


def potential_forces(
    potential: Potential,
    atoms: Atoms,
    skin: float = 1.0,
    compute_stress: bool = False,
    headroom: float = 1.2,
    capacity=None,
) -> Forces:
    """``Forces`` for an mlpot ``Potential`` on ``atoms`` (neighbour list with ``skin`` Å)."""
    key = ("potential", json.dumps(potential.config.to_dict(), sort_keys=True))
    return graph_forces(
        potential.atom_energy_fn(),
        potential.params,
        potential.cutoff,
        potential.config.species,
        atoms,
        skin,
        compute_stress,
        headroom,
        capacity,
        key,
    )
