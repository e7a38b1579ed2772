"""MD output: trajectory frames, a thermo CSV log and restart files.

Every frame and log line is flushed as it is written, so after a crash or a
stopped run everything up to the last good frame is on disk and readable.
Restart files are npz written atomically (temp file + rename); they record a
fingerprint of the model, so that a restart cannot silently switch potentials.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import threading
import warnings
from pathlib import Path

import ase.io
import ase.units
import numpy as np
from ase import Atoms
from ase.calculators.singlepoint import SinglePointCalculator
from ase.stress import full_3x3_to_voigt_6_stress

from md.integrators import MDState, Params
from mlpot.modelfile import atomic_write, to_bytes
from mlpot.reading import whole_frames_end

# 2: capacities count pairs (MD's half neighbour list), not directed edges.
# 3: params_dof (the thermostat's degrees of freedom) and MTK's cell_* state: an older reader would
#    silently continue at 3N, so it must refuse these files. This one reads 1 and 2 with dof 0 (3N)
#    and zero cell state, which is what those runs had. (model_sha256/model_name came within 1.)
# 4: state_mobile (atoms held by FixAtoms / FixCartesian): an older reader would move them. Older files
#    load with every atom mobile.
RESTART_VERSION = 4


def model_fingerprint(potential) -> str:
    """sha256 of the model's config and parameters, the things its forces depend on.

    Not of the file's bytes: the file also holds training metadata, and re-saving the same
    model with other metadata must not break a restart.
    """
    return hashlib.sha256(to_bytes(potential)).hexdigest()


def structure_fingerprint(atoms: Atoms) -> str:
    """sha256 of what a run takes from its start structure besides the restart's state: elements,
    positions, cell, pbc, masses and which components constraints hold."""
    from md.velocities import mobility

    digest = hashlib.sha256()
    for array in (atoms.numbers, atoms.positions, atoms.cell.array, atoms.pbc, atoms.get_masses(), mobility(atoms)):
        digest.update(np.ascontiguousarray(array, np.float64).tobytes())
    return digest.hexdigest()


def frame_atoms(template: Atoms, state: MDState, with_stress: bool, wrap: bool = True, info=None) -> Atoms:
    """An Atoms copy of ``state`` with energy and forces attached: positions wrapped into the cell
    (``wrap=False``: as integrated, which an MSD needs), ``info`` = ``{"step"}`` (``info``: these
    entries and the step)."""
    atoms = template.copy()
    atoms.calc = None
    atoms.positions = np.asarray(state.positions)
    if atoms.pbc.any():
        atoms.set_cell(np.asarray(state.cell), scale_atoms=False)
        if wrap:
            atoms.wrap()
    atoms.set_momenta(np.asarray(state.momenta))
    # by default not the start file's labels (config_type, DFT energy, ...): they do not hold along a run
    kept = {k: v for k, v in (info or {}).items() if k not in ("energy", "free_energy", "forces", "stress")}
    atoms.info = {**kept, "step": int(state.step)}  # results live in the calculator, not twice
    results = {"energy": float(state.energy), "forces": np.asarray(state.forces)}
    if with_stress:
        results["stress"] = full_3x3_to_voigt_6_stress(np.asarray(state.stress))
    atoms.calc = SinglePointCalculator(atoms, **results)
    return atoms


# what TrajectoryWriter writes: ASE's .traj, else extxyz, which only these names announce
TRAJECTORY_SUFFIXES = (".traj", ".xyz", ".extxyz")


def check_trajectory_name(option: str, path) -> None:
    """Refuse a trajectory name other readers would parse as their own format (``x.pdb`` would hold
    extxyz text that ``ase.io.read`` turns into one empty structure, silently)."""
    if Path(path).suffix.lower() not in TRAJECTORY_SUFFIXES:
        raise ValueError(
            f"{option} {path}: the trajectory is written as ASE's .traj or as extxyz (.xyz, .extxyz); "
            "convert afterwards for other formats (ase convert)"
        )


class TrajectoryWriter:
    """Appends frames to ``.traj`` (ASE binary) or extxyz (``.xyz``, ``.extxyz``), flushed per frame.

    Appending (a restart) skips frames whose step the file already holds: a run killed after
    writing a frame but before its restart file is replayed from the restart before it. That needs
    the file's last frame to carry its step; ``resume=False`` (the drivers' ``append_trajectory``, a
    new run after any file, ASE's own included) appends every frame and reads no step.
    """

    def __init__(self, path, append: bool = False, resume: bool = True):
        check_trajectory_name("trajectory", path)
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if append and self.path.suffix.lower() != ".traj":
            _cut_a_torn_last_frame(self.path)
        self.last_step = _last_frame_step(self.path) if append and resume else -1
        if self.path.suffix.lower() == ".traj":
            self._traj = ase.io.Trajectory(str(self.path), "a" if append else "w")
            self._file = None
        else:
            self._traj = None
            self._file = open(self.path, "a" if append else "w")  # noqa: SIM115 - kept open for the run

    def write(self, atoms: Atoms) -> None:
        if atoms.info.get("step", self.last_step + 1) <= self.last_step:
            return
        if self._traj is not None:
            # ASE builds a .traj frame in several calls and its close() saves what it has: a Ctrl-C
            # in between would leave a frame without its step (or energy) for a restart to append to
            with interrupts_deferred():
                self._traj.write(atoms)
        else:
            # Formatted in memory, then one write: Ctrl-C lands between Python calls, so it cannot
            # cut a frame in half (ASE writes an extxyz frame line by line).
            buffer = io.StringIO()
            ase.io.write(buffer, atoms, format="extxyz")
            self._file.write(buffer.getvalue())
            self._file.flush()
        if "step" in atoms.info:  # a frame written twice (the last good one after a stop) is kept once
            self.last_step = int(atoms.info["step"])

    def sync(self) -> None:
        """On disk, not only flushed: called before a restart file that counts on these frames."""
        handle = self._file if self._file is not None else getattr(getattr(self._traj, "backend", None), "fd", None)
        _fsync(handle)

    def close(self) -> None:
        if self._traj is not None:
            self._traj.close()
        if self._file is not None:
            self._file.close()


def _fsync(handle) -> None:
    if handle is not None and hasattr(handle, "fileno"):
        handle.flush()
        os.fsync(handle.fileno())


@contextlib.contextmanager
def interrupts_deferred():
    """Ctrl-C (SIGINT) waits until the block has run, then acts as it would have. Only the main
    thread receives signals; elsewhere the block simply runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(signal.SIGINT, caught[0])


def _cut_a_torn_last_frame(path: Path) -> None:
    """Cut an extxyz file after its last whole frame (atom count, comment, that many atom lines, each
    ended by a newline): a kill or a full disk mid-frame leaves a torn one, which the continuation
    rewrites. Nothing is cut when the file ends on a whole frame, or does not parse as frames at all."""
    if not path.is_file():
        return
    text = path.read_bytes()
    end = whole_frames_end(text)  # None: not a layout this reader knows, so left to ASE's error
    if end is not None and 0 < end < len(text):
        atomic_write(path, text[:end])
        warnings.warn(f"{path}: cut a torn last frame ({len(text) - end} bytes) left by a killed run", stacklevel=3)


def _last_frame_step(path: Path) -> int:
    """The step of the last frame in an existing trajectory (-1: none)."""
    if not path.exists() or path.stat().st_size == 0:
        return -1
    try:
        step = ase.io.read(path, index=-1).info.get("step")
    except Exception as err:  # a torn frame fails in whichever parser step it reached
        raise ValueError(
            f"{path}: its last frame cannot be read ({err}); was the run killed mid-frame? "
            "Cut the broken frame off, or write to a new trajectory"
        ) from err
    if step is None:  # appending after it could not skip the frames the file already holds
        raise ValueError(
            f"{path}: its last frame has no step (not written by mlpot md, or cut short): write to a new trajectory"
        )
    return int(step)


def log_columns(with_pressure: bool, with_deviation: bool = False, with_conserved: bool = False) -> list[str]:
    """The thermo log's CSV header (``ThermoLog``, and the drivers' stream log)."""
    columns = ["step", "time_fs", "epot_eV", "ekin_eV", "etot_eV", "temperature_K"]
    columns += ["pressure_GPa", "volume_A3"] if with_pressure else []
    columns += ["conserved_eV"] if with_conserved else []
    return columns + ["force_dev_max_eVA"] if with_deviation else columns


def committee_deviation(potential):
    """For a committee, ``atoms -> {"force_dev_max": eV/Å}``: the largest atomic force deviation
    max_i sqrt(mean_k |F_ik - mean_k F_ik|^2) over members k, as DeePMD-kit's model deviation
    defines it. It grows where the structure leaves the training data, so a log that carries it
    shows when a run stops being trustworthy. One force call per member at each log line. None
    for a single model."""
    from mlpot.calculator import Calculator
    from mlpot.deviation import atom_force_deviation
    from mlpot.models.committee import members

    if len(members(potential)) < 2:
        return None
    calc = Calculator(potential)

    def deviation(atoms: Atoms) -> dict:
        return {"force_dev_max": float(atom_force_deviation(calc, atoms).max())}

    return deviation


class ThermoLog:
    """CSV: step, time_fs, epot_eV, ekin_eV, etot_eV, temperature_K[, pressure_GPa, volume_A3]
    [, conserved_eV][, force_dev_max_eVA (a committee's, ``committee_deviation``)].

    ``conserved_eV`` (``with_conserved``, the Nosé-Hoover and MTK ensembles): the total energy plus the
    thermostat's and barostat's, constant for a good timestep where etot_eV is not.
    Appending skips rows whose step the file already holds (see ``TrajectoryWriter``).
    """

    def __init__(
        self,
        path,
        with_pressure: bool,
        append: bool = False,
        with_deviation: bool = False,
        with_conserved: bool = False,
    ):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.with_pressure, self.with_deviation, self.with_conserved = with_pressure, with_deviation, with_conserved
        write_header = not (append and self.path.exists() and self.path.stat().st_size > 0)
        self.last_step = -1
        if not write_header:
            text = self.path.read_text()
            header, expected = text.split("\n", 1)[0], ",".join(self._columns())
            before = ",".join(log_columns(with_pressure, with_deviation))
            if with_conserved and header == before:
                # a log begun before mlpot wrote conserved_eV: its run goes on without the column
                self.with_conserved, expected = False, before
            if header != expected:  # rows of another run's columns would not line up
                raise ValueError(f"{self.path}: its columns are {header!r}, this run's {expected!r}: log to a new file")
            if not text.endswith("\n"):  # a line torn by a kill: cut it, the next row starts a line
                text = text.rsplit("\n", 1)[0] + "\n"
                atomic_write(self.path, text.encode())
            last = text.rstrip("\n").rsplit("\n", 1)[-1].split(",")[0]
            self.last_step = int(last) if last.isdigit() else -1
        self._file = open(self.path, "a" if append else "w")  # noqa: SIM115 - kept open for the run
        if write_header:
            self._file.write(",".join(self._columns()) + "\n")
            self._file.flush()

    def _columns(self) -> list[str]:
        return log_columns(self.with_pressure, self.with_deviation, self.with_conserved)

    def write(self, row: dict) -> None:
        if row["step"] <= self.last_step:
            return
        values = [
            f"{row['step']:d}",
            f"{row['time_fs']:.6f}",
            f"{row['epot']:.10f}",
            f"{row['ekin']:.10f}",
            f"{row['etot']:.10f}",
            f"{row['temperature']:.6f}",
        ]
        if self.with_pressure:
            values += [f"{row['pressure'] / ase.units.GPa:.8f}", f"{row['volume']:.6f}"]
        if self.with_conserved:
            values.append(f"{row['conserved']:.10f}")
        if self.with_deviation:
            values.append(f"{row['force_dev_max']:.6f}")
        self._file.write(",".join(values) + "\n")
        self._file.flush()
        self.last_step = row["step"]

    def sync(self) -> None:
        _fsync(self._file)

    def close(self) -> None:
        self._file.close()


def save_restart(
    path,
    ensemble: str,
    state: MDState,
    params: Params,
    reference,
    capacity,
    numbers,
    model=None,
    skin=None,
    structure=None,
) -> None:
    """Everything a bit-identical continuation needs, including where the neighbour
    list was built (the resumed run rebuilds the same list), its capacities (pairs: skin list, active)
    and its ``skin`` (Å; another one rebuilds at other steps). ``model``: (fingerprint, file name) of the
    model the run uses, checked on restart; ``structure``: (``structure_fingerprint``, file name) of
    the start structure, likewise."""
    arrays = {f"state_{k}": np.asarray(v) for k, v in state._asdict().items()}
    arrays.update({f"params_{k}": np.asarray(v) for k, v in params._asdict().items()})
    arrays.update(
        reference_positions=np.asarray(reference.positions),
        reference_cell=np.asarray(reference.cell),
        capacity=np.asarray(capacity),
        numbers=np.asarray(numbers),
        ensemble=np.asarray(ensemble),
        version=np.asarray(RESTART_VERSION),
    )
    if model is not None:
        arrays.update(model_sha256=np.asarray(model[0]), model_name=np.asarray(str(model[1])))
    if skin is not None:
        arrays.update(skin=np.asarray(float(skin)))
    if structure is not None:
        arrays.update(structure_sha256=np.asarray(structure[0]), structure_name=np.asarray(str(structure[1])))
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write(path, buffer.getvalue())


def _pair_capacity(saved, version: int):
    """(skin pairs, active pairs), or None to size the list afresh.

    Version 1 counted directed edges, twice the pairs: halved, or a resumed run would compute twice
    the slots (it continues, though not bit for bit: the model sums its edges in another order).
    Early version-1 files hold one number, the skin list's alone: sized afresh.
    """
    capacity = tuple(int(c) // (2 if version < 2 else 1) for c in np.atleast_1d(saved))
    return capacity if len(capacity) == 2 else None


def load_restart(path) -> dict:
    """``{"ensemble", "state", "params", "reference": (positions, cell), "capacity", "numbers", "model", "skin",
    "structure"}``.

    ``model`` and ``structure`` are (fingerprint, file name), or None for a file written without one
    (older mlpot).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"restart file {path} does not exist")
    try:
        data = np.load(path, allow_pickle=False)
        version = int(data["version"])
    except Exception as err:
        raise ValueError(f"{path}: not an mlpot MD restart file ({err})") from err
    if version > RESTART_VERSION:
        raise ValueError(f"{path}: restart format version {version} is newer than this mlpot ({RESTART_VERSION})")
    state = {k: data[f"state_{k}"] for k in MDState._fields if f"state_{k}" in data}
    # Files from before the MTK barostat: its variables were zero (the ensemble could not be MTK).
    chain = np.zeros_like(state["chain_positions"])
    # Files from before fixed atoms: every atom moved.
    older = {"cell_momentum": np.zeros((3, 3)), "cell_chain_positions": chain, "cell_chain_momenta": chain}
    state = MDState(**older | {"mobile": np.ones_like(state["positions"])} | state)
    # A field the file lacks was added after it was written: its default is what that run used.
    params = Params(**{k: data[f"params_{k}"] for k in Params._fields if f"params_{k}" in data})
    return {
        "ensemble": str(data["ensemble"]),
        "state": state,
        "params": params,
        "reference": (data["reference_positions"], data["reference_cell"]),
        "capacity": _pair_capacity(data["capacity"], version),
        "numbers": data["numbers"],
        "model": (str(data["model_sha256"]), str(data["model_name"])) if "model_sha256" in data else None,
        "skin": float(data["skin"]) if "skin" in data else None,  # None: a file from before it was kept
        "structure": (str(data["structure_sha256"]), str(data["structure_name"]))
        if "structure_sha256" in data
        else None,
    }
