"""Labelled frames from files, validated: the first step of ``mlpot.data``'s pipeline.

``read_frames`` reads any format ``ase.io.read`` knows and returns ``Frame``s with labels in
eV, eV/Å and eV/Å^3 (ASE's stress sign). Every check names the file, the frame and the field:
missing or non-numeric labels, NaN/inf, wrong shapes, an element outside the model's, an
asymmetric stress, a stress that disagrees with a virial label, and (one warning) stress labels
that contradict their own forces across a vacuum gap.
"""

from __future__ import annotations

import io
import re
import reprlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import ase.io
import numpy as np
from ase import Atoms, units
from ase.constraints import FixAtoms, FixCartesian, FixedLine, FixedPlane, FixScaled
from ase.io.formats import string2index
from ase.stress import voigt_6_to_full_3x3_stress

from mlpot import stress_check
from mlpot.graph import InputError, check_atoms, neighbour_pairs, species_indices


class Frame(NamedTuple):
    """One labelled structure. A missing label is ``None``."""

    atoms: Atoms
    energy: float | None  # eV, total
    forces: np.ndarray | None  # (n, 3) eV/Å
    stress: np.ndarray | None  # (3, 3) eV/Å^3, ASE sign (compression negative)
    where: str  # "file, frame k" for error messages
    weight: float = 1.0  # relative weight of this frame's terms in the training loss (config_type_weights)


# Virial labels (eV) read when a periodic frame has no stress label: nequip's and MACE's names.
VIRIAL_KEYS = ("virial", "virials")
# skip_bad_frames also searches neighbours this close (Å), for atoms on one point: cheap, and the
# model's cutoff is not known yet
SKIP_SEARCH_CUTOFF = 1.0


def virial_keys(stress_key: str) -> tuple[str, ...]:
    """The virial names to look for: ``VIRIAL_KEYS``, and the stress key's own prefix or suffix
    on them (stress_key REF_stress: REF_virial, REF_virials, as MACE's newer files name them)."""
    named = tuple(stress_key.replace("stress", v) for v in VIRIAL_KEYS) if "stress" in stress_key else ()
    return tuple(dict.fromkeys((*named, *VIRIAL_KEYS)))


def _names_a_virial(field: str) -> bool:
    # "virial_stress" (LAMMPS's and some converters' name for a stress) says stress: read as one
    return "virial" in field.lower() and "stress" not in field.lower()


def stress_key_reading(field: str) -> str | None:
    """The ``stress_key`` under which ``field`` is read: itself for a stress, and for a virial the
    stress name whose ``virial_keys`` include it (REF_virials: REF_stress), or None if there is none."""
    if not _names_a_virial(field):
        return field
    candidate = re.sub("virials?", "stress", field)
    return candidate if field in virial_keys(candidate) else None


def _refuse_a_virial_as_stress_key(stress_key: str) -> None:
    # a virial (eV) read as a stress (eV/Å^3) is off by a factor -V: a silently wrong label, often
    # small enough to pass the size check
    if _names_a_virial(stress_key):
        reading = stress_key_reading(stress_key)
        fix = f"set stress_key: {reading}" if reading else "name the field 'virial'"
        raise InputError(
            f"stress_key '{stress_key}' names a virial (eV), but stress_key is read as a stress (eV/Å^3). A virial "
            f"is read as sigma = -W/V from the stress key's name with 'virial(s)' for 'stress': {fix}"
        )


def _lookup(atoms: Atoms, key: str):
    """A label from the attached calculator, ``atoms.info`` or ``atoms.arrays`` (in that order)."""
    results = atoms.calc.results if atoms.calc is not None else {}
    for source in (results, atoms.info, atoms.arrays):
        if key in source:
            return source[key]
    return None


def _key_hint(atoms: Atoms, field: str) -> str:
    """What to set when a label is missing: the frame's fields whose name holds the label's (REF_energy,
    free_energy, DFT_forces), else the general advice."""
    results = atoms.calc.results if atoms.calc is not None else {}
    stem = field.rstrip("s")  # force, forces
    names = sorted({k for source in (results, atoms.info, atoms.arrays) for k in source if stem in k.lower()})
    if names:
        return f"the frame has {names}: set {field}_key: {names[0]} (mlpot eval: --{field}-key {names[0]})"
    return f"set {field}_key if it has another name"


def _check_finite(value: np.ndarray, where: str, field: str) -> None:
    if not np.all(np.isfinite(value)):
        raise InputError(f"{where}: field '{field}' contains NaN or inf")


def _as_float(value, where: str, field: str) -> np.ndarray:
    # extxyz keeps a header value it cannot parse (energy=abc) as text: say where, as for NaN
    try:
        number = np.asarray(value, np.float64)
    except (TypeError, ValueError):
        raise InputError(f"{where}: field '{field}' is not a number: {reprlib.repr(value)}") from None
    if np.asarray(value).dtype == bool:
        # extxyz reads a key without "=value" (a plain-xyz comment "energy -49.65") or T/F as True/False,
        # which numpy would take as 1.0 and 0.0: a label that is silently wrong
        raise InputError(
            f"{where}: field '{field}' is not a number: {reprlib.repr(value)} (an extxyz comment reads a key "
            f"without '=value' as True: write {field}=<number>)"
        )
    return number


def _frame(atoms, where, keys, required, species) -> Frame:
    energy_key, forces_key, stress_key = keys
    check_atoms(atoms, where)
    if species is not None:
        species_indices(atoms.numbers, species, where)
    energy, forces, stress = (_lookup(atoms, k) for k in keys)
    for field, key, value in (("energy", energy_key, energy), ("forces", forces_key, forces)):
        if value is None and field in required:
            raise InputError(f"{where}: missing label '{key}' ({field}); {_key_hint(atoms, field)}")
    if energy is not None:
        energy = _as_float(energy, where, energy_key)
        if energy.size != 1:
            raise InputError(f"{where}: field '{energy_key}' should be one number, got shape {energy.shape}")
        _check_finite(energy, where, energy_key)
        energy = float(energy.reshape(()))
    forces = forces_label(atoms, forces_key, where) if forces is not None else None
    if stress is not None:
        stress = _tensor(stress, where, stress_key)
    if all(atoms.pbc):
        stress = _with_virial(atoms, stress, where, stress_key)
    else:
        stress = None  # stress of a non-periodic structure is undefined: ignore the label
    return Frame(atoms, energy, forces, stress, where)


class UnreadableFrame(InputError):
    """A frame ASE cannot parse (a torn last frame a killed writer left, a bad number)."""


def read_images(path: Path, index: str = ":") -> list[Atoms]:
    """The structures of one file as ASE reads them, unchecked; a clear error where there are none, or
    where ASE would leave frames out (a whole extxyz file with a blank line between frames)."""
    return _read_images_and_layout(path, index)[0]


def _read_images_and_layout(
    path: Path, index: str, stress_key: str | None = None
) -> tuple[list[Atoms], ExtxyzLayout | None]:
    """``read_images`` and, for an extxyz file read whole or whose ``stress=`` ASE cut to Voigt form,
    its ``extxyz_layout``."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path} is a folder; give the data file(s) in it")
    if not path.is_file():
        raise FileNotFoundError(f"data file not found: {path}")
    try:
        images = _read_database(path, index) if _is_database(path) else ase.io.read(path, index=index)
    except Exception as err:  # noqa: BLE001 - ASE raises many types; report file + cause
        raise UnreadableFrame(f"{unreadable_frame(path)}: cannot read ({type(err).__name__}: {err})") from None
    images = images if isinstance(images, list) else [images]
    stress = _voigt_stress_read(images, stress_key)
    layout = extxyz_layout(path, stress) if index == ":" or stress else None
    if index == ":" and layout is not None and layout.blank_line is not None:
        lost = (
            f"the {layout.frames - layout.frames_before_blank} frame(s) from there on would be left out without a word"
        )
        raise InputError(blank_line_refusal(path, layout, lost))
    if not images:
        raise InputError(f"{path}: contains no frames")
    return images, layout


def blank_line_refusal(path, layout: ExtxyzLayout, consequence: str) -> str:
    """The message for a file with a blank line between its frames: where, and ``consequence``."""
    return (
        f"{path}, line {layout.blank_line}: a blank line before frame {layout.frames_before_blank}, where ASE's "
        f"extxyz reader ends the file: {consequence}; delete the blank line(s) between frames"
    )


def _voigt_stress_read(images, stress_key: str | None) -> bool:
    """Whether ASE has read an extxyz ``stress=`` into Voigt form, keeping its upper triangle only: an
    asymmetric (broken) label would pass as half of itself unless the header's 9 numbers are read."""
    return stress_key == "stress" and any(
        atoms.calc is not None and np.shape(atoms.calc.results.get("stress")) == (6,) for atoms in images
    )


def _is_database(path: Path) -> bool:
    try:
        return ase.io.formats.filetype(str(path)) in ("db", "json")
    except (OSError, ase.io.formats.UnknownFileTypeError):  # not recognised: ase.io.read says what it makes of it
        return False


def _read_database(path: Path, index: str) -> list[Atoms]:
    """An ASE database's rows with what ``ase.io.read`` drops: the key-value pairs (REF_energy=...,
    config_type=...) go to ``info``, numeric data entries to ``arrays`` when they hold a row per atom
    (``REF_forces``), else to ``info``; free-form ones (text, uneven lists) to ``info`` as they are."""
    import ase.db

    selection = string2index(index)
    with ase.db.connect(path, serial=True) as database:
        if isinstance(selection, str):  # a query, as ase.io.read takes it: "config_type=md"
            rows = list(database.select(selection))
        else:
            rows = list(database.select())
            rows = rows[selection] if isinstance(selection, slice) else [rows[selection]]
    images = []
    for row in rows:
        atoms = row.toatoms()
        atoms.info.update(row.key_value_pairs)
        for key, value in row.get("data", {}).items():
            try:
                array = np.asarray(value, dtype=np.float64)
            except (TypeError, ValueError):
                atoms.info[key] = value
                continue
            if array.ndim == 2 and len(array) == len(atoms) and key not in atoms.arrays:
                atoms.new_array(key, array)
            else:
                atoms.info[key] = array
        images.append(atoms)
    return images


def whole_frames_end(text: bytes) -> int | None:
    """Where an extxyz text's last whole frame ends (atom count, comment, that many newline-ended atom
    lines), in bytes; None where the text is not laid out as frames at all."""
    lines = text.split(b"\n")[:-1]  # newline-terminated lines only: the rest is a torn line
    k = end = 0
    while k < len(lines):
        try:
            count = int(lines[k])
        except ValueError:
            return None
        if k + count + 2 > len(lines):
            break
        end += sum(len(line) + 1 for line in lines[k : k + count + 2])
        k += count + 2
    return end


def _frames_before_a_torn_end(path: Path) -> tuple[list[Atoms], int] | None:
    """The whole frames of an extxyz file whose last frame is cut short (a writer killed mid-frame) and
    the frame number of the torn one; None for any other failure (a bad frame mid-file, another format),
    which stays an error."""
    text = path.read_bytes()
    end = whole_frames_end(text)
    if not end or end == len(text):
        return None
    try:
        images = ase.io.read(io.StringIO(text[:end].decode()), index=":", format="extxyz")
    except Exception:  # noqa: BLE001 - the whole frames do not parse either: not only a torn end
        return None
    return images, len(images)


def forces_label(atoms: Atoms, key: str, where: str) -> np.ndarray | None:
    """The (N, 3) forces label under ``key`` (eV/Å), checked, or None where the frame has none."""
    forces = _lookup(atoms, key)
    if forces is None:
        return None
    forces = _as_float(forces, where, key)
    if forces.shape != (len(atoms), 3):
        raise InputError(f"{where}: field '{key}' has shape {forces.shape}, expected ({len(atoms)}, 3)")
    _check_finite(forces, where, key)
    return forces


def unreadable_frame(path: Path) -> str:
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
    _refuse_a_virial_as_stress_key(stress_key)
    if isinstance(paths, (str, Path)):
        paths = [paths]
    frames, bad, unused, zeroed = [], [], [], []
    cell_labels = (stress_key, *virial_keys(stress_key))  # a stress or virial: the DFT cell was periodic
    for path in paths:
        path = Path(path)
        try:
            images, layout = _read_images_and_layout(path, index, stress_key)
            torn_last_line = index == ":" and layout is not None and layout.torn_last_line
        except UnreadableFrame as err:
            # a slice's frame numbers need every frame read
            torn = _frames_before_a_torn_end(path) if skip_bad_frames and index == ":" else None
            if torn is None:
                raise
            images, at = torn
            bad.append(f"{path}, frame {at}: cut short, the file ends inside it ({err})")
            layout = extxyz_layout(path, _voigt_stress_read(images, stress_key))  # the whole frames' stress
            torn_last_line = False
        if torn_last_line:
            why = (
                f"{path}, frame {layout.frames - 1}: the file ends without a newline, inside a number of its last "
                "line it seems (shorter than the one above it: a writer killed mid-number)"
            )
            if skip_bad_frames:
                images = images[:-1]
                bad.append(why)
            else:
                warnings.warn(f"{why}; used as it is (skip_bad_frames: true drops it)", stacklevel=2)
        numbers = _frame_numbers(index, len(images))
        written = layout.stress if layout is not None else {}
        for k, atoms in enumerate(images):
            where = f"{path}, frame {numbers[k]}"
            try:
                if isinstance(numbers[k], int) and written.get(numbers[k]) is not None:
                    _tensor(written[numbers[k]], where, stress_key)  # the asymmetry ASE's reading hides
                frame = _frame(atoms, where, (energy_key, forces_key, stress_key), required, species)
                if skip_bad_frames:  # atoms on one point would otherwise stop the run later, at the search
                    neighbour_pairs(atoms, SKIP_SEARCH_CUTOFF, where)
                frames.append(frame)
            except InputError as err:
                if not skip_bad_frames:
                    raise
                bad.append(str(err))
                continue
            if not atoms.pbc.all() and any(_lookup(atoms, key) is not None for key in cell_labels):
                unused.append(f"{where} (pbc {''.join('T' if p else 'F' for p in atoms.pbc)})")
            held = _held_atoms_without_force(frames[-1])
            if held:
                zeroed.append(f"{where} ({held} atoms)")
    if bad:
        warnings.warn(f"skipped {len(bad)} bad frame(s) of {len(frames) + len(bad)}; first: {bad[0]}", stacklevel=2)
    if not frames:
        raise InputError(f"no usable frames in {[str(p) for p in paths]}")
    if unused:
        warnings.warn(
            f"{len(unused)} frame(s) with a '{stress_key}' (or virial) label are not periodic in all three directions, "
            f"so their stress is not used (first: {unused[0]}); if the DFT cell was periodic in all three (a bulk "
            "cell, or a slab in a box with vacuum), set pbc to T T T: without it, atoms lose their periodic neighbours",
            stacklevel=2,
        )
    if zeroed:
        warnings.warn(
            f"{len(zeroed)} frame(s) have atoms held by a constraint whose held '{forces_key}' components are zero (first: "
            f"{zeroed[0]}): forces written with the constraint applied, which the model would learn as zero forces; "
            "write them with atoms.get_forces(apply_constraint=False), or drop the constraint before reading (real "
            "forces can vanish too: a planar system held out of its plane by symmetry has no out-of-plane force)",
            stacklevel=2,
        )
    _check_stress_size(frames, stress_key)
    _check_unread_stress(frames, stress_key)
    return _check_vacuum_stress(frames, stress_key, drop=inconsistent_stress == "drop")


# |sigma| above this (eV/Å^3; 1 = 160 GPa) is far beyond most DFT data and what GPa, kBar or a virial (eV)
# read as eV/Å^3 look like: warned, not refused (shock and planetary-interior data reach it)
STRESS_PLAUSIBLE = 1.0


def _check_stress_size(frames: list[Frame], stress_key: str) -> None:
    sizes = [(float(np.max(np.abs(f.stress))), f.where) for f in frames if f.stress is not None]
    if not sizes:
        return
    largest, where = max(sizes)
    if largest > STRESS_PLAUSIBLE:
        warnings.warn(
            f"{where}: field '{stress_key}' reaches {largest:.4g} eV/Å^3 ({largest / units.GPa:.4g} GPa); stress labels "
            "are read in eV/Å^3: if yours are GPa divide by 160.2, if kBar by 1602, and a virial (eV) goes under "
            f"'virial' ({sum(size > STRESS_PLAUSIBLE for size, _ in sizes)} frame(s) above {STRESS_PLAUSIBLE:g} eV/Å^3)",
            stacklevel=3,
        )


def _check_unread_stress(frames: list[Frame], stress_key: str) -> None:
    """Periodic frames without a stress label that carry one under another name (MACE's REF_stress with the
    default stress_key): trained without stress, silently, unless told."""
    if any(f.stress is not None for f in frames):
        return
    looked_up = {stress_key, *virial_keys(stress_key)}
    for frame in frames:
        if not frame.atoms.pbc.all():
            continue
        names = sorted(
            key
            for key in (*frame.atoms.info, *frame.atoms.arrays)
            if key not in looked_up and ("stress" in key.lower() or "virial" in key.lower())
        )
        if names:
            reading = next((key for key in map(stress_key_reading, names) if key), None)
            fix = (
                f"set stress_key: {reading} (mlpot eval: --stress-key {reading})"
                if reading
                else "set stress_key to the stress's name"
            )
            warnings.warn(
                f"{frame.where}: no stress label '{stress_key}', but field(s) {names}; {fix} to train on the stress "
                "(a virial is then read as -W/V)",
                stacklevel=3,
            )
            return


# Constraints that hold atoms or components in place; their adjust_forces projects the held part out.
# (Hookean and the like add forces instead: a projection test would not apply.)
_HOLDING = (FixAtoms, FixCartesian, FixScaled, FixedLine, FixedPlane)


def _held_atoms_without_force(frame: Frame) -> int:
    """How many atoms a constraint holds (FixAtoms, or in some directions FixCartesian, FixScaled,
    FixedLine, FixedPlane; extxyz: move_mask) whose force label has those components zeroed, when
    some free component is not zero: ASE's get_forces() removes them, DFT forces never are."""
    holding = [c for c in frame.atoms.constraints if isinstance(c, _HOLDING)]
    if frame.forces is None or not holding:
        return 0

    def projected(forces):
        forces = np.array(forces, np.float64)
        for constraint in holding:
            constraint.adjust_forces(frame.atoms, forces)
        return forces

    probe = np.random.default_rng(0).normal(size=frame.forces.shape)  # any force: where it changes, held
    held = np.any(np.abs(projected(probe) - probe) > 1e-9, axis=1)
    scale = float(np.max(np.abs(frame.forces)))
    # extxyz keeps 8 decimals: a projection in scaled coordinates (FixScaled) is met to ~1e-8 eV/Å, not exactly
    applied = np.max(np.abs(projected(frame.forces) - frame.forces), initial=0.0) <= 1e-6 * scale
    return int(held.sum()) if held.any() and scale > 0 and applied else 0


class ExtxyzLayout(NamedTuple):
    """What one pass over an extxyz file's lines finds that ASE's reader does not say."""

    frames: int  # whole frames, blank-line-separated ones counted
    blank_line: int | None  # 1-based line of a blank line with more frames after it: ASE stops reading there
    frames_before_blank: int  # frames before that line
    torn_last_line: bool  # the last line has no newline and is shorter than the one above: cut mid-number
    stress: dict  # {frame: the 9 numbers of a header's stress=}, where it has 9 (only when asked for)


_STRESS_VALUE = re.compile(r'(?:^|\s)stress\s*=\s*"([^"]*)"', re.IGNORECASE)


def extxyz_layout(path: Path, stress: bool = False) -> ExtxyzLayout | None:
    """The layout of an extxyz (or plain xyz) file, with each header's ``stress=`` if ``stress``; None
    for another format or a layout the scan does not know (ASE read it: nothing to add)."""
    from ase.io.formats import filetype, open_with_compression

    try:
        if filetype(str(path), read=True) not in ("extxyz", "xyz"):
            return None
    except Exception:  # noqa: BLE001 - not a format ASE names
        return None
    frames, blank, before_blank, torn, stresses = 0, None, 0, False, {}
    pending_blank = None
    try:
        with open_with_compression(str(path)) as f:
            number = 0
            for line in f:
                number += 1
                if not line.strip():  # between frames: ASE's extxyz reader takes it for the end of the file
                    pending_blank = pending_blank or number
                    continue
                count = int(line.split()[0])
                header = f.readline()
                body = [f.readline() for _ in range(count)]
                number += 1 + count
                torn = count >= 2 and _cut_short(body[-2], body[-1])
                if stress and (found := _STRESS_VALUE.search(header)):
                    # the quoted value alone: parsing the whole header (key_val_str_to_dict) took 40x longer
                    value = np.array(found.group(1).split(), np.float64)
                    if value.size == 9:
                        stresses[frames] = value.reshape(3, 3)
                if pending_blank and blank is None:
                    blank, before_blank = pending_blank, frames
                pending_blank = None
                frames += 1
    except (ValueError, IndexError, UnicodeDecodeError, EOFError, OSError):
        return None  # a layout this scan does not know, or a damaged end ASE's read did not reach: nothing to add
    return ExtxyzLayout(frames, blank, before_blank, torn, stresses)


def _cut_short(above: str, last: str) -> bool:
    """Whether a file's ``last`` line, which lacks its newline, looks cut: fewer fields than the line
    above, or a last field with fewer digits after the point (or characters) than the one above it.
    A whole line that merely lacks the newline (a file written with "\\n".join) looks like its column."""
    if not last or last.endswith("\n"):
        return False
    ours, theirs = last.split(), above.split()
    if len(ours) != len(theirs):
        return True

    def digits(field: str) -> int:
        return len(field.split(".", 1)[1]) if "." in field else len(field)

    return bool(ours) and digits(ours[-1]) < digits(theirs[-1])


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
        if frame.stress is None or frame.forces is None or _held_atoms_without_force(frame):
            # forces with held atoms zeroed (flagged above) give the wrong virial: they, not the
            # stress label, are the suspects, and a drop would discard a sound label
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
