"""Host side of the host/device seam: ASE ``Atoms`` -> padded ``Graph``.

Everything here is numpy + vesin. The ``Graph`` it returns is the one
structure every jitted function takes. Shapes are padded to a small ladder of
bucket sizes (``bucket_size``) so that new systems rarely trigger a recompile.

Conventions (ASE units throughout):
  * edge ``e`` goes from ``senders[e]`` (neighbour j) to ``receivers[e]``
    (centre i, where messages are summed);
  * its vector is ``r_ij = positions[j] - positions[i] + shifts[e] @ cell[g]``,
    with ``shifts`` the integer number of cell vectors crossed (the search's S);
  * padding atoms live in a padding graph (index ``n_graph - 1`` when padded),
    padding edges join a padding atom to itself with zero shift; masks say
    which entries are real.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from ase import Atoms
from ase.geometry.minkowski_reduction import minkowski_reduce
from vesin import NeighborList


class Graph(NamedTuple):
    """A batch of atomic structures, padded. N atoms, E edges, G graphs."""

    positions: np.ndarray  # (N, 3) float, Å, unwrapped as given
    species: np.ndarray  # (N,) int32, index into the model's species list (0 on padding)
    senders: np.ndarray  # (E,) int32, neighbour j of each edge
    receivers: np.ndarray  # (E,) int32, centre i of each edge
    shifts: np.ndarray  # (E, 3) float, integer cell shifts S of r_ij
    cell: np.ndarray  # (G, 3, 3) float, Å, rows are lattice vectors
    node_graph: np.ndarray  # (N,) int32, graph index of each atom
    node_mask: np.ndarray  # (N,) bool, real atom
    edge_mask: np.ndarray  # (E,) bool, real edge
    graph_mask: np.ndarray  # (G,) bool, real structure
    n_node: np.ndarray  # (G,) int32, real atoms per graph
    volume: np.ndarray  # (G,) float, Å^3, |det cell|; 0 where the stress is undefined (``has_volume``)

    @property
    def num_nodes(self) -> int:
        return self.positions.shape[0]

    @property
    def num_edges(self) -> int:
        return self.senders.shape[0]

    @property
    def num_graphs(self) -> int:
        return self.cell.shape[0]


class InputError(ValueError):
    """Bad user input (structure, file or option), with a message that says where."""


def bucket_size(n: int, minimum: int = 8, steps: int = 4) -> int:
    """Smallest ladder size >= n. Ladder (``steps`` = 4): 8, 10, 12, 14, 16, 20, 24, 28, 32, 40, ...

    Four steps per doubling (<= 25% padding waste) keeps the number of distinct
    shapes, and so of compiles, logarithmic in system size. MD, where one
    size is compiled once and run for hours, uses a finer ladder.
    """
    n = max(int(n), minimum)
    power = max(2 ** math.ceil(math.log2(n)) // (2 * steps), 1)  # next power of two / (2 steps)
    return int(math.ceil(n / power) * power)


def has_volume(atoms: Atoms) -> bool:
    """Whether the stress (1/V) dE/dε is defined: periodic along at least one direction, and a cell of three
    independent vectors (a volume above 1e-6 of the product of their lengths; ASE's ``cell.rank`` counts
    nonzero vectors only, so a slab's third vector lying in its plane passed and gave a zero stress)."""
    cell = atoms.cell.array
    lengths = np.prod(np.linalg.norm(cell, axis=1))
    return bool(any(atoms.pbc)) and lengths > 0 and abs(np.linalg.det(cell)) > 1e-6 * lengths


MIN_PERIOD = 0.5  # Å, shortest lattice translation taken


def check_atoms(atoms: Atoms, where: str = "structure") -> None:
    """Raise ``InputError`` for inputs that would give silently wrong numbers."""
    if len(atoms) == 0:
        raise InputError(f"{where}: has no atoms")
    positions = atoms.positions
    if not np.all(np.isfinite(positions)):
        bad = np.argwhere(~np.isfinite(positions).all(axis=1)).ravel()
        raise InputError(f"{where}: positions are NaN or inf for atom(s) {bad[:10].tolist()}")
    if any(atoms.pbc) and not np.all(np.isfinite(atoms.cell.array)):
        raise InputError(f"{where}: cell is NaN or inf")
    periodic = np.flatnonzero(atoms.pbc)
    rows = atoms.cell.array[periodic]
    # A zero or dependent periodic vector has no lattice to search: vesin would fail without naming
    # the frame, or (a zero vector beside a non-periodic direction) kill the process with SIGFPE.
    if len(periodic) and np.linalg.matrix_rank(rows, tol=1e-6 * max(np.abs(rows).max(), 1.0)) < len(periodic):
        raise InputError(
            f"{where}: the cell vectors along the periodic direction(s) {periodic.tolist()} are zero or linearly "
            f"dependent (cell {np.round(atoms.cell.array, 6).tolist()}, pbc {atoms.pbc.tolist()}); give each periodic "
            "direction a non-zero, independent cell vector, or set pbc False there"
        )
    if not len(periodic):
        return
    lengths = np.linalg.norm(rows, axis=1)
    # each atom meets its own image that close: energies of -1e21 eV, or (thousands of images within
    # the cutoff) an out-of-memory error that names nothing
    if lengths.min() < MIN_PERIOD:
        k = int(periodic[np.argmin(lengths)])
        raise InputError(
            f"{where}: periodic cell vector {k} is {lengths.min():.3g} Å long, so every atom has an image of "
            f"itself that close; no material has a period under {MIN_PERIOD} Å: is the cell in Å?"
        )
    # long vectors can still make a short period: a - b of [5, 0, 0] and [5, 0.02, 0] is 0.02 Å
    reduced, _ = minkowski_reduce(atoms.cell.array, atoms.pbc)
    shortest = reduced[periodic][np.argmin(np.linalg.norm(reduced[periodic], axis=1))]
    if np.linalg.norm(shortest) < MIN_PERIOD:
        raise InputError(
            f"{where}: the periodic cell vectors are each over {MIN_PERIOD} Å, but together they make a lattice "
            f"translation {np.round(shortest, 4).tolist()} only {np.linalg.norm(shortest):.3g} Å long, so every "
            f"atom has an image of itself that close (cell {np.round(atoms.cell.array, 6).tolist()}): is the "
            "cell nearly degenerate by mistake?"
        )


def species_indices(numbers: np.ndarray, species: Sequence[int], where: str = "structure") -> np.ndarray:
    """Map atomic numbers to indices into the model's ``species`` list; unknown elements raise."""
    lookup = np.full(max(max(species), int(np.max(numbers, initial=0))) + 1, -1, dtype=np.int32)
    lookup[np.asarray(species)] = np.arange(len(species), dtype=np.int32)
    indices = lookup[numbers]
    if np.any(indices < 0):
        from ase.data import chemical_symbols

        unknown = sorted({chemical_symbols[z] for z in numbers[indices < 0]})
        known = [chemical_symbols[z] for z in species]
        raise InputError(f"{where}: element(s) {unknown} not in the model's species {known}")
    return indices


# Nothing atomistic is 10 µm across: an atom that far off has flown away, or the positions are not in Å.
MAX_EXTENT = 1e5  # Å

# vesin's cell list caps its bins at 1e5 and rescales them per direction without keeping one bin at
# least: a cell far longer in some directions than in another gets 0 bins there, and the process dies
# (SIGFPE, no message). _rescaled_bins repeats its count so that such a cell is refused in words instead.
VESIN_MAX_BINS = 1e5


def _search_cell(atoms: Atoms, cutoff: float, where: str = "structure") -> np.ndarray:
    """The cell the search runs in, periodic in all three directions (see ``neighbour_search``).

    A non-periodic direction gets a row orthogonal to the periodic rows (and to the other added rows),
    longer than the atoms' spread along it plus the cutoff: no pair can reach an image through it, so
    its shifts are all 0. Singular cells never reach the search: single atoms, molecules given without
    a cell, flat or linear molecules.
    """
    cell = atoms.cell.array.copy()
    if all(atoms.pbc):
        return cell
    extent = np.ptp(atoms.positions, axis=0).max() if len(atoms) > 1 else 0.0
    if extent > MAX_EXTENT:
        centre = np.median(atoms.positions, axis=0)
        far = int(np.argmax(np.linalg.norm(atoms.positions - centre, axis=1)))
        raise InputError(
            f"{where}: the atoms span {extent:.3g} Å in a non-periodic direction (atom {far} is "
            f"{np.linalg.norm(atoms.positions[far] - centre):.3g} Å from the others' median): an atom has flown "
            f"off, or the positions are not in Å; the neighbour search takes up to {MAX_EXTENT:g} Å"
        )
    # Each added row is projected out against an orthonormal basis of the rows before it (one at a
    # time against the vectors themselves only works when they are orthogonal; a hexagonal slab's are not).
    basis = []
    for p in cell[atoms.pbc]:
        w = p - sum(p.dot(b) * b for b in basis)
        basis.append(w / np.linalg.norm(w))
    longest = max(np.linalg.norm(cell[atoms.pbc], axis=1), default=0.0)
    for k in range(3):
        if atoms.pbc[k]:
            continue
        for v in (np.eye(3)[k], *np.eye(3)):  # the axis itself, else any axis out of the span
            v = v - sum(v.dot(b) * b for b in basis)
            if np.linalg.norm(v) > 1e-6:
                break
        v = v / np.linalg.norm(v)
        basis.append(v)
        # as long as the longest row before it too: a box of similar sides bins well (see VESIN_MAX_BINS)
        longest = max(np.ptp(atoms.positions @ v) + 2.0 * cutoff + 1.0, longest)
        cell[k] = v * longest
    return cell


def _heights(cell: np.ndarray) -> np.ndarray:
    """Distances between the cell's opposite faces."""
    return abs(np.linalg.det(cell)) / np.linalg.norm(np.cross(cell[[1, 2, 0]], cell[[2, 0, 1]]), axis=1)


def _rescaled_bins(cell: np.ndarray, cutoff: float) -> np.ndarray | None:
    """Bins per direction of vesin's cell list for ``cell`` (all periodic) where it rescales them, each
    before its truncation to a whole number (below 1 it becomes 0: the crash); None: no rescale, and every
    direction keeps a bin at least."""
    n = np.maximum(np.trunc(_heights(cell) / cutoff), 1.0)
    if n.prod() <= VESIN_MAX_BINS:
        return None
    xy, yz = n[0] / n[1], n[1] / n[2]
    z = np.cbrt(VESIN_MAX_BINS / (xy * yz * yz))
    y = yz * np.trunc(z)
    return np.array([xy * np.trunc(y), y, z])


def _refuse_unbinnable(atoms: Atoms, cell: np.ndarray, cutoff: float, where: str) -> None:
    bins = _rescaled_bins(cell, cutoff)
    if bins is None or (bins >= 1.01).all():  # 1 % of headroom: this copy need not round exactly as vesin
        return
    heights = _heights(cell)
    made = "the cell makes" if all(atoms.pbc) else "the periodic cell vectors and the atoms' spread make"
    raise InputError(
        f"{where}: {made} a search box {' x '.join(f'{h:.4g}' for h in heights)} Å, too elongated for "
        f"the neighbour search at a {cutoff:g} Å cutoff: an atom has flown off, or a vacuum or cell vector "
        "is far too long (or not in Å)"
    )


def neighbour_search(
    atoms: Atoms, cutoff: float, half: bool = False, where: str = "structure"
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All ordered pairs (i, j, S, d) with d = |r_j - r_i + S @ cell| < cutoff, i != j or S != 0.

    ``half``: each pair once, (i, j, S) without its mirror (j, i, -S): half the work and memory,
    for callers that mirror on the device (MD's skin list).

    vesin's O(N) cell list with explicit integer shifts: triclinic cells, cells
    shorter than the cutoff and unwrapped positions are handled (no minimum
    image). It finds the same pairs as matscipy's and ASE's searches (tests) in
    a third of matscipy's time (water, 1,536 atoms, 5.5 Å: 11 vs 34 ms), which
    is what an MD neighbour rebuild costs. One thread: a fixed pair order, so
    runs are reproducible bit for bit.

    The search is always periodic, in ``_search_cell``'s cell: with a non-periodic direction, vesin
    bins the atoms' bounding box, which for an atom a few hundred Å off a 1-D chain took seconds (the
    fourth power of the distance) and for a flat molecule 5,000 Å wide crashed it.
    """
    cell = _search_cell(atoms, cutoff, where)
    _refuse_unbinnable(atoms, cell, cutoff, where)
    search = NeighborList(cutoff=float(cutoff), full_list=not half, n_threads=1)
    # copy=False: i, j and S are views into vesin's buffers, which die with ``search``; the conversions
    # below copy them anyway, so vesin's own copies only cost time (a 12,288-atom water search with
    # conversions, one core beside other work: 147 -> 96 ms). d is copied in case vesin stops
    # converting it.
    i, j, shifts, d = search.compute(atoms.positions, cell, True, "ijSd", copy=False)
    return i.astype(np.int32), j.astype(np.int32), shifts.astype(np.float64), d.copy()


# Closer than this, two atoms are one point: the edge vector is ~0, which the models treat as a
# padding edge (no energy, no force), so the short-range wall would vanish exactly where it matters.
COINCIDENT = 1e-6  # Å


def neighbour_pairs(atoms: Atoms, cutoff: float, where: str = "structure") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, S) of ``neighbour_search``; atoms on top of each other (or of an image) raise ``InputError``."""
    i, j, shifts, d = neighbour_search(atoms, cutoff, where=where)
    refuse_coincident(i, j, shifts, d, where)
    return i, j, shifts


def refuse_coincident(i, j, shifts, d, where: str, hint: str = "remove the duplicate atom") -> None:
    """``InputError`` naming the closest pair of a search if it is closer than ``COINCIDENT``."""
    if d.size and d.min() < COINCIDENT:
        k = int(np.argmin(d))
        image = " (through a periodic image)" if np.any(shifts[k]) else ""
        raise InputError(
            f"{where}: atoms {int(i[k])} and {int(j[k])} are on top of each other{image}, {d[k]:.1e} Å apart; {hint}"
        )


def build_graph(
    structures: Atoms | Sequence[Atoms],
    cutoff: float,
    species: Sequence[int],
    num_nodes: int | None = None,
    num_edges: int | None = None,
    num_graphs: int | None = None,
    dtype=np.float64,
    where: str = "structure",
) -> Graph:
    """Neighbour search + species lookup + padding for one or many structures.

    Sizes left as ``None`` are chosen from the bucket ladder. At least one
    padding atom and one padding graph are always added, so padding edges have
    somewhere to point and per-graph sums of padding go to a discarded graph.
    """
    if isinstance(structures, Atoms):
        structures = [structures]
    parts = []
    for k, atoms in enumerate(structures):
        label = where if len(structures) == 1 else f"{where} {k}"
        check_atoms(atoms, label)
        idx = species_indices(atoms.numbers, species, label)
        i, j, s = neighbour_pairs(atoms, cutoff, label)
        parts.append((atoms, idx, i, j, s))
    return pad_graph(parts, num_nodes, num_edges, num_graphs, dtype)


def pad_graph(parts, num_nodes=None, num_edges=None, num_graphs=None, dtype=np.float64) -> Graph:
    """Concatenate per-structure (atoms, species_idx, i, j, shifts) and pad."""
    n_real = sum(len(p[0]) for p in parts)
    e_real = sum(len(p[2]) for p in parts)
    g_real = len(parts)
    num_nodes = num_nodes or bucket_size(n_real + 1)
    num_edges = num_edges or bucket_size(e_real + 1)
    num_graphs = num_graphs or g_real + 1
    if num_nodes <= n_real or num_edges < e_real or num_graphs <= g_real:
        raise ValueError(
            f"padding too small: need > {n_real} nodes, >= {e_real} edges, > {g_real} graphs; "
            f"got {num_nodes}, {num_edges}, {num_graphs}"
        )
    positions = np.zeros((num_nodes, 3), dtype)
    species = np.zeros(num_nodes, np.int32)
    node_graph = np.full(num_nodes, num_graphs - 1, np.int32)
    senders = np.full(num_edges, num_nodes - 1, np.int32)
    receivers = np.full(num_edges, num_nodes - 1, np.int32)
    shifts = np.zeros((num_edges, 3), dtype)
    cell = np.tile(np.eye(3, dtype=dtype), (num_graphs, 1, 1))
    volume = np.zeros(num_graphs, dtype)
    n_node = np.zeros(num_graphs, np.int32)
    n_at = n_ed = 0
    for g, (atoms, idx, i, j, s) in enumerate(parts):
        n = len(atoms)
        positions[n_at : n_at + n] = atoms.positions
        species[n_at : n_at + n] = idx
        node_graph[n_at : n_at + n] = g
        m = len(i)
        receivers[n_ed : n_ed + m] = i + n_at
        senders[n_ed : n_ed + m] = j + n_at
        shifts[n_ed : n_ed + m] = s
        if any(atoms.pbc):
            cell[g] = atoms.cell.array  # shifts are zero along non-periodic axes
        if has_volume(atoms):  # a slab or wire in a full box has the stress a plane-wave code gives for that box
            volume[g] = abs(np.linalg.det(atoms.cell.array))
        n_node[g] = n
        n_at += n
        n_ed += m
    node_mask = np.arange(num_nodes) < n_at
    edge_mask = np.arange(num_edges) < n_ed
    graph_mask = np.arange(num_graphs) < g_real
    return Graph(
        positions,
        species,
        senders,
        receivers,
        shifts,
        cell,
        node_graph,
        node_mask,
        edge_mask,
        graph_mask,
        n_node,
        volume,
    )
