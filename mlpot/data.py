"""Training data: labelled frames from files -> cached neighbour lists -> padded batches.

Host side only (numpy, ASE, vesin). The pipeline:

  read_frames(paths)            -> list[Frame]      validated, labels in eV, eV/Å, eV/Å^3
  fit_reference_energies(...)   -> (S,) float64      least squares on composition or isolated atoms
  split_indices(n, ...)         -> train/valid/test  seeded, disjoint
  prepare(frames, cutoff, ...)  -> Dataset           neighbour lists computed once per frame
  batches(dataset, ...)         -> [(Graph, Labels)] padded to a few bucket shapes

Batch shapes: ``num_graphs`` is always ``batch_size + 1``; the node capacity
is ``bucket_size(atoms + 1)``, at least that of a batch of typical (median)
frames, and the edge capacity is a function of the node
capacity only (the densest frame's edges per atom times the node capacity), so
the number of distinct shapes, and of compiles, is the number of node buckets
that batches of this data set can fall in: one or two for a molecular data set.
"""

from __future__ import annotations

import hashlib
import math
import warnings
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from mlpot.graph import Graph, InputError, bucket_size, neighbour_pairs, pad_graph, species_indices
from mlpot.reading import Frame, read_frames  # noqa: F401 - read_frames: the pipeline's first step, here too


class Labels(NamedTuple):
    """Reference values of a padded batch; masks say which entries are labelled (and real)."""

    energy: np.ndarray  # (G,) eV
    forces: np.ndarray  # (N, 3) eV/Å
    stress: np.ndarray  # (G, 3, 3) eV/Å^3
    energy_mask: np.ndarray  # (G,) bool, real graph with an energy label
    forces_mask: np.ndarray  # (G,) bool, real graph with force labels
    stress_mask: np.ndarray  # (G,) bool, real graph with a stress label
    weight: np.ndarray | None = None  # (G,) relative frame weights in the training loss; None: all 1


class Dataset(NamedTuple):
    """Frames with their neighbour lists, computed once (``prepare``)."""

    frames: list  # list[Frame]
    parts: list  # per frame (atoms, species_idx, i, j, shifts), as ``pad_graph`` takes them
    edges_per_atom: float  # largest edges/atoms ratio of any frame: sets the edge capacity
    typical_atoms: float  # median atoms per frame: a batch is padded to at least batch_size x this


def species_of_frames(frames: Sequence[Frame]) -> tuple[int, ...]:
    return tuple(sorted({int(z) for f in frames for z in f.atoms.numbers}))


def composition(frames: Sequence[Frame], species: Sequence[int]) -> np.ndarray:
    """(F, S) counts of each species in each frame."""
    table = np.zeros((len(frames), len(species)))
    for k, frame in enumerate(frames):
        table[k] = np.bincount(species_indices(frame.atoms.numbers, species, frame.where), minlength=len(species))
    return table


def _warn_if_far_from_the_isolated_atoms(frames, species, reference, isolated_atoms) -> None:
    """Frames bind their atoms by a few eV per atom (cohesive energies stay under ~9 eV/atom): far more
    means isolated-atom energies in other units (Hartree) or from another code or pseudopotential, and
    a network asked for hundreds of eV per atom beyond its references; it trains, so say it."""
    labelled = [f for f in frames if f.energy is not None]
    if not labelled:
        return
    per_atom = (np.array([f.energy for f in labelled]) - composition(labelled, species) @ reference) / np.array(
        [len(f.atoms) for f in labelled]
    )
    mean = float(np.mean(per_atom))
    if not -15.0 < mean < 5.0:
        files = sorted({f.where.rsplit(", frame", 1)[0] for f in isolated_atoms})
        warnings.warn(
            f"isolated atoms file {', '.join(files)}: the training frames lie {mean:+.4g} eV per atom from the sum of "
            "their isolated atoms' energies, where binding energies are a few eV per atom below zero: are these "
            "energies in eV, and from the same code, functional and pseudopotentials as the frames?",
            stacklevel=4,
        )


def fit_reference_energies(frames: Sequence[Frame], species: Sequence[int], isolated_atoms=None) -> np.ndarray:
    """Per-species energies E0_s (eV, float64) so that E ≈ sum_s n_s E0_s.

    From ``isolated_atoms`` (a list of one-atom ``Frame``s) when given, else the
    minimum-norm least-squares solution on composition (well defined even when
    every frame has the same composition, e.g. one molecule's MD).
    """
    if isolated_atoms is not None:
        table, source = {}, {}
        for f in isolated_atoms:
            if len(f.atoms) != 1:
                raise InputError(
                    f"{f.where}: an isolated atoms file holds one-atom frames, this one has {len(f.atoms)} atoms"
                )
            z = int(f.atoms.numbers[0])
            if z in table and f.energy is not None and table[z] is not None and abs(f.energy - table[z]) > 1e-6:
                raise InputError(  # spin-polarised and not, two codes: which one is meant is the user's call
                    f"{f.where}: a second energy for {f.atoms.get_chemical_symbols()[0]} ({float(f.energy)!r} eV) "
                    f"that differs from the one at {source[z]} ({float(table[z])!r} eV); keep one per element"
                )
            if table.get(z) is None:
                table[z], source[z] = f.energy, f.where
        missing = [z for z in species if z not in table or table[z] is None]
        if missing:
            from ase.data import chemical_symbols

            files = sorted({f.where.rsplit(", frame", 1)[0] for f in isolated_atoms}) or ["(empty)"]
            raise InputError(
                f"isolated atoms file {', '.join(files)} has no energy for element(s) "
                f"{[chemical_symbols[z] for z in missing]}"
            )
        reference = np.array([table[z] for z in species], np.float64)
        _warn_if_far_from_the_isolated_atoms(frames, species, reference, isolated_atoms)
        return reference
    labelled = [f for f in frames if f.energy is not None]
    if not labelled:
        return np.zeros(len(species))
    counts = composition(labelled, species)
    energies = np.array([f.energy for f in labelled], np.float64)
    return np.linalg.lstsq(counts, energies, rcond=None)[0]


def per_atom_energy_fits(frames: Sequence[Frame], species: Sequence[int]) -> tuple[float, float] | None:
    """RMS residuals (in the labels' unit) of the energy labels fitted as totals, E ≈ sum_s n_s e_s,
    and as energies per atom, E ≈ sum_s (n_s / N) e_s, each by least squares; None with under 3
    labelled frames or sizes within a factor 2, where the two cannot be told apart.

    With per-atom energies spread by σ about a mean ε, and sizes varying by a fraction c, the true
    reading fits better by about sqrt(1 + (ε c / σ)²): mlearn's Si set (12 to 96 atoms) gives 2.7
    both ways round, and 2 or more on any 30 of its frames."""
    labelled = [f for f in frames if f.energy is not None]
    sizes = np.array([len(f.atoms) for f in labelled], np.float64)
    if len(labelled) < 3 or sizes.max() < 2 * sizes.min():
        return None
    counts = composition(labelled, species)
    fractions = counts / sizes[:, None]
    energies = np.array([f.energy for f in labelled], np.float64)
    as_total = energies - counts @ np.linalg.lstsq(counts, energies, rcond=None)[0]
    as_per_atom = energies - fractions @ np.linalg.lstsq(fractions, energies, rcond=None)[0]
    return float(np.sqrt(np.mean(as_total**2))), float(np.sqrt(np.mean(as_per_atom**2)))


def fit_energy_scale(frames: Sequence[Frame], species: Sequence[int], reference: np.ndarray) -> float:
    """Typical size (eV) of what the network must output: the RMS of the force
    components (forces are the main signal and set the per-atom energy
    curvature); falls back to the std of per-atom residual energies when no
    frame has forces. Float32 network outputs are then O(1)."""
    forces = [f.forces for f in frames if f.forces is not None]
    if forces:
        rms = float(np.sqrt(np.mean(np.concatenate(forces) ** 2)))
        if rms > 0:
            return rms
    labelled = [f for f in frames if f.energy is not None]
    if labelled:
        residual = np.array([f.energy for f in labelled]) - composition(labelled, species) @ reference
        per_atom = residual / np.array([len(f.atoms) for f in labelled])
        if per_atom.size > 1 and np.std(per_atom) > 0:
            return float(np.std(per_atom))
    return 1.0


def split_indices(n: int, valid_fraction: float, test_fraction: float = 0.0, seed: int = 0):
    """Disjoint (train, valid, test) index arrays from a seeded permutation of range(n)."""
    if not 0 <= valid_fraction < 1 or not 0 <= test_fraction < 1 or valid_fraction + test_fraction >= 1:
        raise ValueError(f"bad split fractions: valid {valid_fraction}, test {test_fraction}")
    order = np.random.default_rng(seed).permutation(n)
    n_valid = round(valid_fraction * n)
    n_test = round(test_fraction * n)
    # a fraction asked for is never rounded away: a small set still gets one frame (if one is left to train on)
    if valid_fraction > 0 and n_valid == 0 and n > 1:
        n_valid = 1
    if test_fraction > 0 and n_test == 0 and n > n_valid + 1:
        n_test = 1
    test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    if len(train) == 0:
        raise ValueError(f"no training frames left after the split of {n} frames")
    return np.sort(train), np.sort(valid), np.sort(test)


def frame_fingerprint(frame: Frame) -> bytes:
    """Elements and positions; in a periodic direction, the fractional coordinate modulo 1 and the cell,
    so a copy whose atoms were wrapped back into the cell (``atoms.wrap()``) is the same frame."""
    atoms = frame.atoms
    if not atoms.pbc.any():
        return atoms.numbers.tobytes() + np.round(atoms.positions, 6).tobytes()
    # wraps the periodic directions only; the second modulo sends a coordinate rounded up to 1 back to 0
    fractional = np.round(atoms.get_scaled_positions(wrap=True), 6) % 1.0
    return atoms.numbers.tobytes() + np.round(fractional, 6).tobytes() + np.round(atoms.cell.array, 6).tobytes()


def frame_identity(frame: Frame) -> bytes:
    """``frame_fingerprint`` and the energy label: what says a frame is the same training example."""
    return frame_fingerprint(frame) + np.float64(np.nan if frame.energy is None else frame.energy).tobytes()


def frames_digest(frames: Sequence[Frame], labels: bool = False) -> str:
    """'count:sha256' of ``frames`` in order: of each ``frame_fingerprint`` (which frames), or with
    ``labels`` of each ``frame_identity`` (which frames, labelled with which energies)."""
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(frame_identity(frame) if labels else frame_fingerprint(frame))
    return f"{len(frames)}:{digest.hexdigest()}"


def shared_frames(a: Sequence[Frame], b: Sequence[Frame]) -> list[tuple[str, str]]:
    """(where in ``a``, where in ``b``) for each frame of ``b`` that also occurs in ``a``: same elements,
    positions to 1e-6 Å (periodic frames: same cell, fractional coordinates to 1e-6 modulo 1)."""
    seen = {}
    for frame in a:
        seen.setdefault(frame_fingerprint(frame), frame.where)
    return [(seen[key], frame.where) for frame in b if (key := frame_fingerprint(frame)) in seen]


MAX_ATOMS_COMPARED = 1500  # symmetric_copies: the distance list grows as N^2 (1500 atoms: 9 MB a frame)


def _sorted_distances(atoms) -> np.ndarray:
    """All pair distances, minimum image along periodic directions, sorted within each pair of elements:
    the same for any rotation, reflection, translation, order of the atoms or choice of the same lattice's
    cell vectors (and, for one composition, the pairs of elements come in the same order)."""
    from ase.geometry import get_distances

    if len(atoms) < 2:
        return np.zeros(0)
    periodic = atoms.pbc.any()
    _, d = get_distances(atoms.positions, cell=atoms.cell if periodic else None, pbc=atoms.pbc if periodic else None)
    i, j = np.triu_indices(len(atoms), 1)
    z = atoms.numbers
    kind = np.minimum(z[i], z[j]) * 1000 + np.maximum(z[i], z[j])
    distances = d[i, j]
    return distances[np.lexsort((distances, kind))]


PREFILTER_RADIUS = 3.0  # Å: the short distances that tell two frames apart before all N^2 are compared


def _short_distances(atoms) -> dict | None:
    """The pair distances under a radius short enough that each pair has one image within it (under half
    the cell's smallest periodic height), sorted within each pair of elements: for each pair of elements,
    the start of ``_sorted_distances``'s list, from an O(N) neighbour search. None where the cell has no
    clear height (periodic with a cell of rank < 3): then only the full comparison decides."""
    from mlpot.graph import neighbour_search

    if len(atoms) < 2:
        return {}
    if not (np.isfinite(atoms.positions).all() and np.isfinite(atoms.cell.array).all()):
        return None
    radius = PREFILTER_RADIUS
    if atoms.pbc.any():
        cell = atoms.cell.array
        if abs(np.linalg.det(cell)) < 1e-9:
            return None
        heights = 1.0 / np.linalg.norm(np.linalg.inv(cell).T, axis=1)  # plane spacings of the lattice
        radius = min(radius, 0.49 * float(heights[atoms.pbc].min()))
    try:
        i, j, _, d = neighbour_search(atoms, radius, half=True)
    except (InputError, RuntimeError, ValueError):  # e.g. an atom flown off: checked where frames are read
        return None
    z = atoms.numbers
    kind = np.minimum(z[i], z[j]) * 1000 + np.maximum(z[i], z[j])
    return {int(k): np.sort(d[kind == k]) for k in np.unique(kind)}


def _may_be_copies(a: dict | None, b: dict | None, tolerance: float) -> bool:
    """False only where two frames cannot be copies: the shortest distances of a pair of elements differ."""
    if a is None or b is None:
        return True
    for kind in a.keys() & b.keys():
        m = min(len(a[kind]), len(b[kind]))
        if np.any(np.abs(a[kind][:m] - b[kind][:m]) > tolerance):
            return False
    return True


def symmetric_copy_pairs(a: Sequence, b: Sequence, tolerance: float = 1e-3) -> list[tuple[int, int]]:
    """(index in ``a``, index in ``b``) for each ASE Atoms of ``b`` that copies one of ``a`` up to a rotation,
    reflection, translation, re-indexing of the atoms or another cell of the same lattice: the same
    elements, the same volume (to 1e-4, periodic) and the same sorted minimum-image distances to
    ``tolerance`` Å. Frames of more than ``MAX_ATOMS_COMPARED`` atoms are not compared.

    All N^2 distances are computed only for frames whose short distances already agree (``_short_distances``,
    O(N)): frames of one volume and composition (NVT data) otherwise cost seconds and megabytes each."""

    def summary(atoms):
        volume = abs(atoms.cell.volume) if atoms.pbc.any() else 0.0
        key = (tuple(sorted(atoms.numbers.tolist())), tuple(bool(p) for p in atoms.pbc))
        return key, volume

    groups: dict = {}
    for i, atoms in enumerate(a):
        if len(atoms) <= MAX_ATOMS_COMPARED:
            key, volume = summary(atoms)
            groups.setdefault(key, []).append((i, volume))
    short: dict = {}  # index in a -> _short_distances, computed when first needed
    full: dict = {}  # index in a -> _sorted_distances, likewise
    pairs = []
    for j, atoms in enumerate(b):
        if len(atoms) > MAX_ATOMS_COMPARED:
            continue
        key, volume = summary(atoms)
        candidates = [i for i, v in groups.get(key, ()) if abs(v - volume) <= 1e-4 * max(v, volume, 1.0)]
        if not candidates:
            continue
        mine, distances = _short_distances(atoms), None
        for i in candidates:
            if i not in short:
                short[i] = _short_distances(a[i])
            if not _may_be_copies(short[i], mine, tolerance):
                continue
            if i not in full:
                full[i] = _sorted_distances(a[i])
            if distances is None:
                distances = _sorted_distances(atoms)
            if np.all(np.abs(full[i] - distances) <= tolerance):
                pairs.append((i, j))
                break
    return pairs


def symmetric_copies(a: Sequence[Frame], b: Sequence[Frame]) -> list[tuple[str, str]]:
    """(where in ``a``, where in ``b``) for each frame of ``b`` that is a frame of ``a`` or a copy of one
    (``symmetric_copy_pairs``: rotated, reflected, re-indexed). A rotation-invariant model predicts a copy
    as it fits the original, so its error is a training error (mlearn's elastic frames repeat one strained
    cell strained along x, y and z)."""
    pairs = symmetric_copy_pairs([f.atoms for f in a], [f.atoms for f in b])
    return [(a[i].where, b[j].where) for i, j in pairs]


def repeated_frames(frames: Sequence[Frame]) -> list[tuple[str, str]]:
    """(where first, where again) for each frame that repeats an earlier one of ``frames`` (as
    ``shared_frames`` tells them apart): a file given twice, or overlapping selections."""
    seen, repeats = {}, []
    for frame in frames:
        key = frame_fingerprint(frame)
        if key in seen:
            repeats.append((seen[key], frame.where))
        else:
            seen[key] = frame.where
    return repeats


def prepare(frames: Sequence[Frame], cutoff: float, species: Sequence[int]) -> Dataset:
    """Species lookup and neighbour lists, once per frame (they are reused every epoch)."""
    parts = []
    for frame in frames:
        idx = species_indices(frame.atoms.numbers, species, frame.where)
        i, j, shifts = neighbour_pairs(frame.atoms, cutoff, frame.where)
        parts.append((frame.atoms, idx, i, j, shifts))
    ratio = max(len(p[2]) / len(p[0]) for p in parts) if parts else 0.0
    typical = float(np.median([len(p[0]) for p in parts])) if parts else 0.0
    return Dataset(list(frames), parts, ratio, typical)


def subset(dataset: Dataset, indices) -> Dataset:
    frames = [dataset.frames[k] for k in indices]
    parts = [dataset.parts[k] for k in indices]
    return dataset._replace(frames=frames, parts=parts)


def capacities(num_atoms: int, edges_per_atom: float, minimum_atoms: int = 0) -> tuple[int, int]:
    """(node, edge) capacities of a batch with ``num_atoms`` real atoms.

    ``minimum_atoms`` (batch_size x typical frame size) lets the last, partial
    batch and validation batches share the shape of a typical full batch.
    """
    nodes = bucket_size(max(num_atoms, minimum_atoms) + 1)
    edges = bucket_size(math.ceil(edges_per_atom * (nodes - 1)) + 1)
    return nodes, edges


def collate(dataset: Dataset, indices, batch_size: int) -> tuple[Graph, Labels]:
    """One padded batch of the frames ``indices`` (at most ``batch_size``)."""
    parts = [dataset.parts[k] for k in indices]
    frames = [dataset.frames[k] for k in indices]
    minimum = int(batch_size * dataset.typical_atoms)
    nodes, edges = capacities(sum(len(p[0]) for p in parts), dataset.edges_per_atom, minimum)
    graph = pad_graph(parts, nodes, edges, batch_size + 1)
    g = batch_size + 1
    energy, stress = np.zeros(g), np.zeros((g, 3, 3))
    forces = np.zeros((nodes, 3))
    masks = np.zeros((3, g), bool)
    weight = np.ones(g)
    start = 0
    for k, frame in enumerate(frames):
        n = len(frame.atoms)
        weight[k] = frame.weight
        if frame.energy is not None:
            energy[k], masks[0, k] = frame.energy, True
        if frame.forces is not None:
            forces[start : start + n], masks[1, k] = frame.forces, True
        if frame.stress is not None:
            stress[k], masks[2, k] = frame.stress, True
        start += n
    return graph, Labels(energy, forces, stress, masks[0], masks[1], masks[2], weight)


def batches(dataset: Dataset, batch_size: int, order=None) -> list[tuple[Graph, Labels]]:
    """Padded batches of ``batch_size`` frames in ``order`` (default: file order)."""
    order = np.arange(len(dataset.frames)) if order is None else np.asarray(order)
    return [collate(dataset, order[k : k + batch_size], batch_size) for k in range(0, len(order), batch_size)]


def has_stress(frames: Sequence[Frame]) -> bool:
    return any(f.stress is not None for f in frames)
