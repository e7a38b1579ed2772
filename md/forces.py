"""Adapters that turn something physical into the integrators' ``force_fn``.

``Forces`` bundles what the simulation loop needs: the pure device-side
``force_fn(positions, cell, force_args) -> (energy, forces, stress)``, an
optional ``check_fn`` (smallest pair distance and active-pair overflow) and a
host-side ``build(positions, cell) -> force_args`` called at each neighbour
rebuild. ``potential_forces`` makes one for an mlpot ``Potential``;
``fixed_forces`` for any hand-written force_fn (harmonic well, tests).

For a Potential the model sees only the edges inside the cutoff at the current
positions, compacted on the device from the skin list each step: the skin
costs a cheap length check per pair, not (1 + skin/cutoff)^3 times the model.
The skin list holds each pair once (a half list) and the compacted pairs are
mirrored on the device: about half the host's search, padding and transfer at
a rebuild, and half the per-step length checks (on a GPU the host's rebuild
is a large share of an MD step).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import NamedTuple

import jax.numpy as jnp
import numpy as np
from ase import Atoms

from mlpot import physics
from mlpot.graph import bucket_size, check_atoms, neighbour_search, pad_graph, refuse_coincident, species_indices
from mlpot.potential import Potential


class Forces(NamedTuple):
    force_fn: Callable  # (positions (N,3), cell (3,3), force_args) -> (energy, forces (N,3), stress (3,3))
    check_fn: Callable | None  # (positions, cell, force_args) -> (min pair distance Å, overflow bool, needed int)
    build: Callable  # host: (positions (N,3), cell (3,3), needed int) -> force_args
    cutoff: float  # Å, interaction range (0 when there is no neighbour list)
    skin: float  # Å, list built with cutoff + skin; rebuilt when an atom moved > skin/2
    cache_key: object  # hashable: equal keys share compiled programs
    neighbours: object = None  # the NeighbourList, when there is one (counts and timings)
    with_stress: bool = False  # force_fn's stress is real (NPT needs it), not the zeros of an energy-only model


def fixed_forces(force_fn, force_args=None, with_stress: bool = False) -> Forces:
    """A force_fn with constant ``force_args`` and no neighbour list (never rebuilt).

    ``with_stress``: the force_fn returns the real stress (3, 3), eV/Å³, so NPT may use it.
    """

    def build(positions, cell, needed=0):
        return force_args

    return Forces(force_fn, None, build, 0.0, 1e30, ("fixed", id(force_fn)), with_stress=with_stress)


def _place(positions, cell, graph, num_atoms: int):
    """The padded graph with the MD state's positions and cell (and so volume) in it."""
    volume = jnp.where(graph.volume[0] > 0, jnp.abs(jnp.linalg.det(cell)), 0.0)
    return graph._replace(
        positions=jnp.asarray(graph.positions).at[:num_atoms].set(positions),
        cell=jnp.asarray(graph.cell).at[0].set(cell),
        volume=jnp.asarray(graph.volume).at[0].set(volume),
    )


def _lengths(graph):
    lengths = jnp.linalg.norm(physics.edge_vectors(graph.positions, graph.cell, graph), axis=-1)
    return jnp.where(graph.edge_mask, lengths, jnp.inf)


def _active(graph, cutoff: float, slots):
    """The pairs now inside the cutoff, compacted (in list order) into ``len(slots)`` places, then
    mirrored: the model gets both directions of each, ``2 len(slots)`` edges.

    The skin list (a half list: each pair once) holds ~(1 + skin/cutoff)^3 times more pairs than
    contribute; the model only sees these. Overflow (more than len(slots)) is reported by
    ``check_fn`` and makes the loop drop the step and rebuild bigger.
    """
    inside = _lengths(graph) < cutoff
    last = graph.senders.shape[0] - 1  # always a padding edge: capacity > number of pairs
    (index,) = jnp.nonzero(inside, size=slots.shape[0], fill_value=last)
    senders, receivers, shifts, mask = graph.senders[index], graph.receivers[index], graph.shifts[index], inside[index]
    # (i, j, S) and (j, i, -S): r_i - r_j - S @ cell is the mirror of r_j - r_i + S @ cell.
    return graph._replace(
        senders=jnp.concatenate([senders, receivers]),
        receivers=jnp.concatenate([receivers, senders]),
        shifts=jnp.concatenate([shifts, -shifts]),
        edge_mask=jnp.concatenate([mask, mask]),
    )


def potential_force_fn(atom_energy_fn, num_atoms: int, cutoff: float, compute_stress: bool):
    """force_fn for a Potential: force_args = (params, padded skin graph, active slots); the MD
    state holds only the ``num_atoms`` real atoms, the graph's padding stays in here."""

    def force_fn(positions, cell, force_args):
        params, graph, slots = force_args
        graph = _active(_place(positions, cell, graph, num_atoms), cutoff, slots)
        if compute_stress:
            out = physics.predict(atom_energy_fn, params, graph, compute_stress=True)
            return out.energy[0], out.forces[:num_atoms], out.stress[0]
        energy, forces = physics.energy_and_forces(atom_energy_fn, params, graph.positions, graph)
        return energy, forces[:num_atoms], jnp.zeros((3, 3), positions.dtype)

    return force_fn


def graph_check_fn(num_atoms: int, cutoff: float):
    """(smallest real pair distance, active pairs overflow their slots?, active pair count)."""

    def check_fn(positions, cell, force_args):
        _, graph, slots = force_args
        lengths = _lengths(_place(positions, cell, graph, num_atoms))
        needed = jnp.sum(lengths < cutoff)
        return jnp.min(lengths), needed > slots.shape[0], needed

    return check_fn


class NeighbourList:
    """Host-side rebuilds: pairs within cutoff + skin, each once, padded to fixed capacities.

    Two capacities, both from the bucket ladder with ``headroom`` and both counting pairs (the
    model sees each active pair in both directions): the skin list (pairs within cutoff + skin,
    checked here at each rebuild) and the active slots (pairs within the cutoff; checked on the
    device every step, see ``graph_check_fn``). They only grow, by x1.5 at least; each
    growth is one recompile and ``growths`` counts the rebuilds that grew something.
    """

    def __init__(self, cutoff: float, species, atoms: Atoms, skin: float, headroom: float = 1.1, capacity=None):
        check_atoms(atoms, "MD start structure")
        if not headroom >= 1:
            raise ValueError(f"neighbour-list headroom must be >= 1 (room over the pairs found), got {headroom}")
        self.cutoff, self.skin, self.headroom = float(cutoff), float(skin), float(headroom)
        self.template = atoms.copy()
        self.template.calc = None
        self.species = species_indices(atoms.numbers, species, "MD start structure")
        self.num_nodes = bucket_size(len(atoms) + 1)
        self.capacity = tuple(int(c) for c in capacity) if capacity is not None else (0, 0)  # pairs: (skin, active)
        self.builds, self.growths, self.seconds, self.num_pairs, self.num_active = 0, 0, 0.0, 0, 0

    def _grow(self, capacity: int, count: int, steps: int = 4) -> int:
        """Strictly more room than pairs (the last skin-list edge must be padding, see _active).
        Growth is geometric (x1.5 at least), so a steady compression costs O(log) recompiles."""
        if count < capacity:
            return capacity
        return bucket_size(int(max(count * self.headroom, 1.5 * capacity, count)) + 1, steps=steps)

    def __call__(self, positions, cell, needed: int = 0):
        """(padded skin graph, active slots) at ``positions``; ``needed``: active pairs a step asked for."""
        start = time.perf_counter()
        atoms = self.template
        atoms.positions = np.asarray(positions, np.float64)
        if atoms.pbc.any():
            atoms.set_cell(np.asarray(cell, np.float64), scale_atoms=False)
        i, j, shifts, d = neighbour_search(atoms, self.cutoff + self.skin, half=True)
        # such a pair is a padding edge to the model (no wall, absurd energies); --min-distance 0 lets it through
        # after the first build the run itself put them there (min_distance 0): the simulation says so
        hint = "remove the duplicate atom" if self.builds == 0 else "the run brought them together"
        refuse_coincident(i, j, shifts, d, f"MD neighbour list (build {self.builds + 1})", hint)
        active = int(np.sum(d < self.cutoff))
        # The model runs on every active slot (twice), padding included: a fine ladder (<= 6 % waste).
        grown = (self._grow(self.capacity[0], len(i)), self._grow(self.capacity[1], max(active, int(needed)), 16))
        if self.builds and grown != self.capacity:
            self.growths += 1
        self.capacity = grown
        graph = pad_graph([(atoms, self.species, i, j, shifts)], self.num_nodes, grown[0], 2)
        self.builds += 1
        self.num_pairs, self.num_active = len(i), active
        self.seconds += time.perf_counter() - start
        return graph, np.zeros(grown[1], np.int8)


def graph_forces(
    atom_energy_fn,
    params,
    cutoff: float,
    species,
    atoms: Atoms,
    skin: float = 1.0,
    compute_stress: bool = False,
    headroom: float = 1.1,
    capacity=None,
    cache_key=None,
) -> Forces:
    """``Forces`` for any ``atom_energy_fn(params, vectors, graph) -> (N,)`` on a neighbour graph.

    ``cache_key`` (hashable) lets simulations of the same model share compiled code.
    """
    n = len(atoms)
    if not 0 < skin <= cutoff:
        # each step checks (1 + skin/cutoff)^3 times the pairs; a skin past the cutoff only buys rebuilds
        # that come rarely anyway, and a huge one (1e6: a typo) makes the search hold every pair in reach
        raise ValueError(f"skin {skin:g} Å: give one above 0 and at most the cutoff ({cutoff:g} Å); 0.5-2 Å is usual")
    if compute_stress and not (all(atoms.pbc) and atoms.cell.rank == 3):
        pbc = "".join("T" if p else "F" for p in atoms.pbc)
        raise ValueError(
            f"stress (NPT) needs a cell periodic in all three directions; the structure has pbc {pbc} and a "
            f"cell of rank {atoms.cell.rank}"
        )
    neighbours = NeighbourList(cutoff, species, atoms, skin, headroom, capacity)

    def build(positions, cell, needed=0):
        return (params, *neighbours(positions, cell, needed))

    # the cutoff is compiled in (which pairs are active, the overflow count): a key without it would
    # hand a second cutoff the first one's program
    key = (cache_key or ("energy_fn", id(atom_energy_fn)), float(cutoff), n, compute_stress)
    return Forces(
        potential_force_fn(atom_energy_fn, n, float(cutoff), compute_stress),
        graph_check_fn(n, float(cutoff)),
        build,
        float(cutoff),
        float(skin),
        key,
        neighbours,
        compute_stress,
    )


def potential_forces(
    potential: Potential,
    atoms: Atoms,
    skin: float = 1.0,
    compute_stress: bool = False,
    headroom: float = 1.1,
    capacity=None,
) -> Forces:
    """``Forces`` for an mlpot ``Potential`` on ``atoms`` (neighbour list with ``skin`` Å)."""
    key = ("potential", potential.config.key())
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
