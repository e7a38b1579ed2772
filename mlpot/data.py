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

import math
import reprlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import ase.io
import numpy as np
from ase import Atoms
from ase.io.formats import string2index
from ase.stress import voigt_6_to_full_3x3_stress

from mlpot import stress_check
from mlpot.graph import Graph, InputError, bucket_size, check_atoms, neighbour_pairs, pad_graph, species_indices


class Frame(NamedTuple):
    """One labelled structure. A missing label is ``None``."""

    atoms: Atoms
    energy: float | None  # eV, total
    forces: np.ndarray | None  # (n, 3) eV/Å
    stress: np.ndarray | None  # (3, 3) eV/Å^3, ASE sign (compression negative)
    where: str  # "file, frame k" for error messages
    weight: float = 1.0  # relative weight of this frame's terms in the training loss (config_type_weights)


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


# Virial labels (eV) read when a periodic frame has no stress label: nequip's and MACE's names.
VIRIAL_KEYS = ("virial", "virials")


def virial_keys(stress_key: str) -> tuple[str, ...]:
    """The virial names to look for: ``VIRIAL_KEYS``, and the stress key's own prefix or suffix
    on them (stress_key REF_stress: REF_virial, REF_virials, as MACE's newer files name them)."""
    named = tuple(stress_key.replace("stress", v) for v in VIRIAL_KEYS) if "stress" in stress_key else ()
    return tuple(dict.fromkeys((*named, *VIRIAL_KEYS)))


def _lookup(atoms: Atoms, key: str):
    """A label from the attached calculator, ``atoms.info`` or ``atoms.arrays`` (in that order)."""
    results = atoms.calc.results if atoms.calc is not None else {}
    for source in (results, atoms.info, atoms.arrays):
        if key in source:
            return source[key]
    return None


def _check_finite(value: np.ndarray, where: str, field: str) -> None:
    if not np.all(np.isfinite(value)):
        raise InputError(f"{where}: field '{field}' contains NaN or inf")


def _as_float(value, where: str, field: str) -> np.ndarray:
    # extxyz keeps a header value it cannot parse (energy=abc) as text: say where, as for NaN
    try:
        return np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: field '{field}' is not a number: {reprlib.repr(value)}") from None


def _frame(atoms, where, keys, required, species) -> Frame:
    energy_key, forces_key, stress_key = keys
    check_atoms(atoms, where)
    if species is not None:
        species_indices(atoms.numbers, species, where)
    energy, forces, stress = (_lookup(atoms, k) for k in keys)
    for field, key, value in (("energy", energy_key, energy), ("forces", forces_key, forces)):
        if value is None and field in required:
            raise InputError(f"{where}: missing label '{key}' ({field}); set {field}_key if it has another name")
    if energy is not None:
        energy = _as_float(energy, where, energy_key)
        if energy.size != 1:
            raise InputError(f"{where}: field '{energy_key}' should be one number, got shape {energy.shape}")
        _check_finite(energy, where, energy_key)
        energy = float(energy.reshape(()))
    if forces is not None:
        forces = _as_float(forces, where, forces_key)
        if forces.shape != (len(atoms), 3):
            raise InputError(f"{where}: field '{forces_key}' has shape {forces.shape}, expected ({len(atoms)}, 3)")
        _check_finite(forces, where, forces_key)
    if stress is not None:
        stress = _tensor(stress, where, stress_key)
    if all(atoms.pbc):
        stress = _with_virial(atoms, stress, where, stress_key)
    else:
        stress = None  # stress of a non-periodic structure is undefined: ignore the label
    return Frame(atoms, energy, forces, stress, where)


def _unreadable_frame(path: Path) -> str:
    """ "path, frame k" for the first frame ASE cannot read (a whole-file read does not say which),
    or the path alone when a frame-by-frame read gets through (the whole-file read failed otherwise)."""
    count = 0
    try:
        for _ in ase.io.iread(path):
            count += 1
    except Exception:  # noqa: BLE001 - the failure being located
        return f"{path}, frame {count}"
    return str(path)


def _tensor(value, where: str, key: str) -> np.ndarray:
    """A 3x3 label from (3, 3), (9,) or Voigt (6,) (xx yy zz yz xz xy), finite."""
    value = _as_float(value, where, key)
    if value.shape == (6,):
        value = voigt_6_to_full_3x3_stress(value)
    elif value.shape == (9,):
        value = value.reshape(3, 3)
    if value.shape != (3, 3):
        raise InputError(f"{where}: field '{key}' has shape {value.shape}, expected (3, 3), (9,) or (6,)")
    _check_finite(value, where, key)
    # A stress (or virial) is symmetric; no potential can fit an antisymmetric part, so a large one is a
    # broken label (rows and columns mixed up, another quantity). Round-off-sized ones are averaged away.
    asymmetry = float(np.max(np.abs(value - value.T)))
    if asymmetry > max(1e-4, 1e-2 * float(np.max(np.abs(value)))):
        raise InputError(
            f"{where}: field '{key}' is not symmetric (largest |{key}_ij - {key}_ji| = {asymmetry:.3g}); "
            "a stress or virial tensor must be"
        )
    return 0.5 * (value + value.T)


def _with_virial(atoms: Atoms, stress, where: str, stress_key: str):
    """The stress, from a virial label W (eV) when there is no stress label: sigma = -W / V.

    W = -V sigma is the convention of QUIP, nequip and MACE (W = sum r x F for pair forces).
    A frame with both must satisfy it, which catches a virial stored under the stress's name
    (eV, off by a factor -V: silently wrong stress in the loss).
    """
    labels = ((k, _lookup(atoms, k)) for k in virial_keys(stress_key))
    key, virial = next(((k, v) for k, v in labels if v is not None), (None, None))
    if key is None:
        return stress
    volume = abs(float(np.linalg.det(atoms.cell.array)))
    from_virial = -_tensor(virial, where, key) / volume
    if stress is None:
        return from_virial
    if not np.allclose(stress, from_virial, rtol=1e-3, atol=1e-6):
        worst = float(np.max(np.abs(stress - from_virial)))
        raise InputError(
            f"{where}: field '{stress_key}' disagrees with field '{key}' by up to {worst:.3g} eV/Å^3: the stress "
            f"must be -{key}/V (eV/Å^3, V = {volume:.6g} Å^3); is '{stress_key}' a virial (eV) or in other units?"
        )
    return stress


def read_frames(
    paths: str | Path | Sequence[str | Path],
    energy_key: str = "energy",
    forces_key: str = "forces",
    stress_key: str = "stress",
    required: Sequence[str] = ("energy", "forces"),
    species: Sequence[int] | None = None,
    skip_bad_frames: bool = False,
    index: str = ":",
    inconsistent_stress: str = "warn",
) -> list[Frame]:
    """Read and validate every frame of one or more files (any format ``ase.io.read`` knows).

    Bad frames (no atoms, NaN/inf, missing labels, wrong force shape, element
    not in ``species``) raise ``InputError`` naming file, frame and field, or,
    with ``skip_bad_frames``, are dropped with one warning that counts them.
    Stress labels that contradict the frame's own forces across a vacuum gap
    (``stress_check``) get one warning; ``inconsistent_stress="drop"`` also
    removes those labels (the frames stay, with energy and forces).
    """
    if inconsistent_stress not in ("warn", "drop"):
        raise ValueError(f"inconsistent_stress must be 'warn' or 'drop', not {inconsistent_stress!r}")
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames, bad = [], []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            raise InputError(f"{path} is a folder; give the data file(s) in it")
        if not path.is_file():
            raise FileNotFoundError(f"data file not found: {path}")
        try:
            images = ase.io.read(path, index=index)
        except Exception as err:  # noqa: BLE001 - ASE raises many types; report file + cause
            raise InputError(f"{_unreadable_frame(path)}: cannot read ({type(err).__name__}: {err})") from None
        images = images if isinstance(images, list) else [images]
        if not images:
            raise InputError(f"{path}: contains no frames")
        numbers = _frame_numbers(index, len(images))
        for k, atoms in enumerate(images):
            where = f"{path}, frame {numbers[k]}"
            try:
                frames.append(_frame(atoms, where, (energy_key, forces_key, stress_key), required, species))
            except InputError as err:
                if not skip_bad_frames:
                    raise
                bad.append(str(err))
    if bad:
        warnings.warn(f"skipped {len(bad)} bad frame(s) of {len(frames) + len(bad)}; first: {bad[0]}", stacklevel=2)
    if not frames:
        raise InputError(f"no usable frames in {[str(p) for p in paths]}")
    return _check_vacuum_stress(frames, stress_key, drop=inconsistent_stress == "drop")


def _frame_numbers(index: str, count: int) -> list:
    """Where each read image sits in its file, for messages (``index="162:173"`` starts at frame 162)."""
    selection = string2index(index)
    if isinstance(selection, int) and selection >= 0:
        return [selection]
    if isinstance(selection, slice) and (selection.start or 0) >= 0 and (selection.step or 1) > 0:
        return [(selection.start or 0) + k * (selection.step or 1) for k in range(count)]
    return [f"{k} of the selection {index!r}" for k in range(count)]  # counted from the end: unknown without the length


def _check_vacuum_stress(frames: list[Frame], stress_key: str, drop: bool) -> list[Frame]:
    flagged = {}
    for k, frame in enumerate(frames):
        if frame.stress is None or frame.forces is None:
            continue
        mismatch = stress_check.normal_stress_mismatch(frame.atoms, frame.forces, frame.stress)
        if mismatch is not None and abs(mismatch.difference) > stress_check.TOLERANCE:
            flagged[k] = mismatch
    if not flagged:
        return frames
    k = max(flagged, key=lambda i: abs(flagged[i].difference))
    worst = flagged[k]
    done = "dropped those labels" if drop else "kept them (inconsistent_stress: drop would ignore them)"
    warnings.warn(
        f"{len(flagged)} frame(s) carry a stress label that contradicts their own forces across a vacuum gap, "
        f"where sigma_nn must equal -(1/V) sum (r.n)(F.n); no potential can fit such a label; {done}. "
        f"Worst: {frames[k].where}: field '{stress_key}': sigma_nn = {worst.labelled * 1e3:.2f} meV/Å^3 across "
        f"a {worst.gap:.1f} Å gap (cell vector {worst.axis}), the forces give {worst.from_forces * 1e3:.2f}",
        stacklevel=3,
    )
    if not drop:
        return frames
    return [frame._replace(stress=None) if i in flagged else frame for i, frame in enumerate(frames)]


def species_of_frames(frames: Sequence[Frame]) -> tuple[int, ...]:
    return tuple(sorted({int(z) for f in frames for z in f.atoms.numbers}))


def composition(frames: Sequence[Frame], species: Sequence[int]) -> np.ndarray:
    """(F, S) counts of each species in each frame."""
    table = np.zeros((len(frames), len(species)))
    for k, frame in enumerate(frames):
        table[k] = np.bincount(species_indices(frame.atoms.numbers, species, frame.where), minlength=len(species))
    return table


def fit_reference_energies(frames: Sequence[Frame], species: Sequence[int], isolated_atoms=None) -> np.ndarray:
    """Per-species energies E0_s (eV, float64) so that E ≈ sum_s n_s E0_s.

    From ``isolated_atoms`` (a list of one-atom ``Frame``s) when given, else the
    minimum-norm least-squares solution on composition (well defined even when
    every frame has the same composition, e.g. one molecule's MD).
    """
    if isolated_atoms is not None:
        table = {int(f.atoms.numbers[0]): f.energy for f in isolated_atoms if len(f.atoms) == 1}
        missing = [z for z in species if z not in table or table[z] is None]
        if missing:
            from ase.data import chemical_symbols

            files = sorted({f.where.rsplit(", frame", 1)[0] for f in isolated_atoms}) or ["(empty)"]
            raise InputError(
                f"isolated atoms file {', '.join(files)} has no energy for element(s) "
                f"{[chemical_symbols[z] for z in missing]}"
            )
        return np.array([table[z] for z in species], np.float64)
    labelled = [f for f in frames if f.energy is not None]
    if not labelled:
        return np.zeros(len(species))
    counts = composition(labelled, species)
    energies = np.array([f.energy for f in labelled], np.float64)
    return np.linalg.lstsq(counts, energies, rcond=None)[0]


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
    if valid_fraction > 0 and n_valid == 0 and n > 1:
        n_valid = 1
    test, valid, train = order[:n_test], order[n_test : n_test + n_valid], order[n_test + n_valid :]
    if len(train) == 0:
        raise ValueError(f"no training frames left after the split of {n} frames")
    return np.sort(train), np.sort(valid), np.sort(test)


def _fingerprint(frame: Frame) -> bytes:
    return frame.atoms.numbers.tobytes() + np.round(frame.atoms.positions, 6).tobytes()


def shared_frames(a: Sequence[Frame], b: Sequence[Frame]) -> int:
    """How many frames of ``b`` also occur in ``a`` (same elements and positions to 1e-6 Å)."""
    seen = {_fingerprint(f) for f in a}
    return sum(_fingerprint(f) in seen for f in b)


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
