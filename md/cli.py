"""``mlpot md MODEL STRUCTURE ...``: run MD with a trained model.

Units at the command line are the ones people type: fs, K, GPa, 1/fs. With
``--restart FILE``: when FILE exists the run continues from it exactly
(appending to the trajectory and log) up to ``--steps`` in all, so re-running
the command of a killed run finishes that run; the state is written to FILE
(atomically) at an ``--interval`` step once ``--restart-seconds`` have passed since the last write,
and always at the end, with a fingerprint of the model so that a restart with another model is refused. A fresh run (no restart
file yet) refuses to replace an existing trajectory or log unless ``--overwrite``.
"""

from __future__ import annotations

import itertools
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import ase.io
import ase.units
import numpy as np

from md.ensembles import BAROSTATS, CHAINED, STEPS, USES
from mlpot.graph import check_atoms, species_indices
from mlpot.modelfile import check_output_path

# The options only some ensembles read (``USES``): option -> its default, kept here so that a value
# given to an ensemble that ignores it gets a note (``_note_unused_options``).
_DEFAULTS = {"pressure": 0.0, "friction": 0.01, "tdamp": None, "taup": 1000.0, "compressibility": 0.01}


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "md",
        help="molecular dynamics with a model file",
        description="Molecular dynamics with a model file (units: fs, K, GPa).",
    )
    p.add_argument("model", help="model file (.mlpot)")
    p.add_argument("structure", help="start structure, any ASE-readable file (first frame, or --index)")
    # None: not given, so a file of several frames gets a note saying which one starts the run
    p.add_argument("--index", type=int, default=None, help="frame of STRUCTURE to start from (default 0)")
    p.add_argument("--steps", type=int, required=True, help="length of the run in steps (a restart runs the rest)")
    p.add_argument("--dt", type=float, default=0.5, help="timestep in fs (default 0.5)")
    p.add_argument(
        "--ensemble",
        choices=tuple(STEPS),
        default="nve",
        help="nve (default); langevin (BAOAB); nose-hoover (chain); npt (Berendsen: equilibrate); npt-mtk (MTK, "
        "volume); npt-mtk-cell (MTK, whole cell)",
    )
    p.add_argument(
        "--temperature",
        type=float,
        default=300.0,
        help="K: Maxwell-Boltzmann start and thermostat target (default 300; 0: keep the file's momenta, "
        "not with the Nose-Hoover ensembles nose-hoover, npt-mtk, npt-mtk-cell)",
    )
    p.add_argument(
        "--keep-momenta",
        action="store_true",
        help="start from the structure file's momenta (say, a trajectory's last frame) instead of drawing "
        "them at --temperature, which stays the thermostat's target",
    )
    p.add_argument("--pressure", type=float, default=_DEFAULTS["pressure"], help="GPa, NPT target (default 0)")
    p.add_argument(
        "--friction", type=float, default=_DEFAULTS["friction"], help="Langevin friction in 1/fs (default 0.01)"
    )
    p.add_argument(
        "--tdamp",
        type=float,
        default=_DEFAULTS["tdamp"],
        help="thermostat time constant in fs (nose-hoover, npt's taut, npt-mtk, npt-mtk-cell; default 100 dt)",
    )
    p.add_argument(
        "--taup",
        type=float,
        default=_DEFAULTS["taup"],
        help="barostat time constant in fs (npt's taup, npt-mtk's and npt-mtk-cell's pdamp; default 1000)",
    )
    p.add_argument(
        "--compressibility",
        type=float,
        default=_DEFAULTS["compressibility"],
        help="Berendsen compressibility in 1/GPa (sets the barostat speed; default 0.01)",
    )
    p.add_argument("--skin", type=float, default=0.5, help="neighbour-list skin in Å (default 0.5)")
    p.add_argument(
        "--traj",
        default=None,
        help="trajectory file (.traj: ASE binary; .xyz, .extxyz: extxyz), every --interval steps",
    )
    p.add_argument(
        "--unwrap",
        action="store_true",
        help="write positions as integrated, not wrapped into the cell: what a mean-squared displacement "
        "(a diffusion coefficient) needs, and what ASE's own MD writes",
    )
    p.add_argument("--log", default=None, help="thermo CSV log, every --interval steps")
    p.add_argument(
        "--interval", type=int, default=10, help="steps between frames/log lines/restart writes (default 10)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed for velocities and Langevin noise (default 0)")
    p.add_argument("--restart", default=None, help="restart file: continued from when it exists, always written")
    p.add_argument(
        "--restart-seconds",
        type=float,
        default=10.0,
        help="write the restart file at an --interval step only once this many seconds have passed since the "
        "last write (default 10; 0: at every --interval step); it is always written at the end. Each write "
        "syncs the trajectory and log to disk, which dominates a fast run on a small system",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="let a fresh run replace an existing --traj/--log (a run continuing from --restart appends)",
    )
    p.add_argument("--max-temperature", type=float, default=None, help="K; stop above it (default max(1e4, 5 T))")
    p.add_argument("--min-distance", type=float, default=0.5, help="Å; stop when two atoms come closer (default 0.5)")
    p.add_argument(
        "--max-force-dev",
        type=float,
        default=None,
        help="eV/Å; a committee model only: stop when the members' largest atomic force deviation, checked "
        "every --interval steps, exceeds it (the run has left the training data)",
    )
    p.set_defaults(func=main)


# option, attribute, whether a value is allowed, the rule in words. NaN fails every comparison; inf
# passes them, so every float must also be finite (``_check_options``).
_RULES = (
    ("--pressure", "pressure", lambda v: True, "a number of GPa"),
    ("--steps", "steps", lambda v: v >= 0, ">= 0"),
    ("--seed", "seed", lambda v: 0 <= v < 2**63, ">= 0 and < 2^63"),  # numpy refuses < 0, jax's keys >= 2^63
    ("--dt", "dt", lambda v: v > 0, "> 0 fs"),
    ("--interval", "interval", lambda v: v >= 1, ">= 1"),
    ("--restart-seconds", "restart_seconds", lambda v: v >= 0, ">= 0 s"),
    ("--temperature", "temperature", lambda v: v >= 0, ">= 0 K"),
    ("--friction", "friction", lambda v: v >= 0, ">= 0 1/fs"),
    ("--tdamp", "tdamp", lambda v: v > 0, "> 0 fs"),
    ("--taup", "taup", lambda v: v > 0, "> 0 fs"),
    ("--compressibility", "compressibility", lambda v: v >= 0, ">= 0 1/GPa"),
    ("--skin", "skin", lambda v: v > 0, "> 0 Å"),  # with 0 the first step after a build stops the run
    ("--max-temperature", "max_temperature", lambda v: v > 0, "> 0 K"),  # 0 meant the default
    ("--min-distance", "min_distance", lambda v: v >= 0, ">= 0 Å"),
    ("--max-force-dev", "max_force_dev", lambda v: v > 0, "> 0 eV/Å"),
)


def _finite(value) -> bool:
    return isinstance(value, int) or math.isfinite(value)  # np.isfinite fails on ints past 2^64


def _check_options(args) -> None:
    """Refuse values with no physical meaning (a negative temperature silently started at 0 K)."""
    broken = [
        f"{option} {value if isinstance(value, int) else f'{value:g}'} (must be {rule if _finite(value) else 'finite'})"
        for option, name, allowed, rule in _RULES
        if (value := getattr(args, name)) is not None and not (_finite(value) and allowed(value))
    ]
    if broken:
        raise ValueError(f"invalid {'; '.join(broken)}")
    _check_time_constants(args)
    _note_unused_options(args)


def _used(args) -> tuple[str, ...]:
    """The settings (``Params`` fields) this run reads: its ensemble's, and the temperature, which also
    draws the start velocities (and sets the default --max-temperature) in every ensemble."""
    return (*USES[args.ensemble], "kT")


def _note_unused_options(args) -> None:
    """An option the ensemble ignores would otherwise look as if it acted (and a restart that leaves it
    out must not be refused for it: ``_check_same_settings`` compares only what the ensemble reads)."""
    unused = [
        f"--{name} {value:g}"
        for name, default in _DEFAULTS.items()
        if (value := getattr(args, name)) != default and name not in _used(args)
    ]
    if unused:
        verb = "is" if len(unused) == 1 else "are"
        print(f"note: {' and '.join(unused)} {verb} not used by --ensemble {args.ensemble}: ignored", file=sys.stderr)


def _check_time_constants(args) -> None:
    """Refuse a thermostat or barostat faster than ten timesteps: it cannot be integrated, and the run
    would stop at a NaN blamed on the timestep. The usual slip is ps typed where fs are read."""
    slow = 10 * args.dt
    fast = [
        f"--{name} {value:g} fs"
        for name, value, used in (
            ("tdamp", args.tdamp, "tdamp" in USES[args.ensemble]),  # npt: Berendsen's taut
            ("taup", args.taup, "taup" in USES[args.ensemble]),
        )
        if used and value is not None and value < slow
    ]
    if fast:
        raise ValueError(
            f"{' and '.join(fast)} under ten timesteps ({slow:g} fs at --dt {args.dt:g}): too fast to integrate; "
            "time constants are in fs (0.1 ps = 100 fs; about 100 timesteps is usual)"
        )
    if args.ensemble in CHAINED and args.temperature == 0:  # the chain masses are kT tdamp^2
        raise ValueError(
            f"--temperature 0 with --ensemble {args.ensemble}: Nosé-Hoover chains need a target above 0 K; "
            "to quench, use --ensemble langevin at a low temperature"
        )
    if args.ensemble == "npt" and args.compressibility == 0:
        raise ValueError("--compressibility 0 with --ensemble npt: the Berendsen barostat would never move the cell")
    if args.ensemble == "langevin" and args.friction * args.dt > 0.5:
        print(
            f"note: --friction {args.friction:g} 1/fs damps the velocities within {1 / args.friction:.3g} fs, about a "
            f"timestep (--dt {args.dt:g}): an over-damped run; friction is in 1/fs (0.01 = 1/(100 fs))",
            file=sys.stderr,
        )


def _check_outputs(args, continuing: bool) -> None:
    """Usable, distinct output paths; a fresh run must not truncate another run's trajectory or log."""
    from md.io import check_trajectory_name

    outputs = [(o, p) for o, p in (("--traj", args.traj), ("--log", args.log), ("--restart", args.restart)) if p]
    for option, path in outputs:
        check_output_path(option, path, {"the MODEL file": args.model, "the STRUCTURE file": args.structure})
    for i, (option, path) in enumerate(outputs):
        for other, other_path in outputs[i + 1 :]:
            if Path(path).resolve() == Path(other_path).resolve():
                raise ValueError(f"{option} and {other} are the same file {path}; give each its own")
    if args.traj:
        check_trajectory_name("--traj", args.traj)
    if args.log == "-":  # the Python drivers' stdout; here it would be a file named "-"
        raise ValueError("--log -: give the thermo CSV a file name (the progress bar shows the run as it goes)")
    if continuing or args.overwrite:
        return  # a continuation appends; --overwrite asked for the replacement
    # An empty file holds nothing to lose (e.g. made by mktemp).
    taken = [f"{o} {p}" for o, p in outputs if o != "--restart" and _non_empty(p)]
    if taken:
        why = f" (--restart {args.restart} does not exist, so this is a new run)" if args.restart else ""
        exist, them = ("exists", "it") if len(taken) == 1 else ("exist", "them")
        raise ValueError(
            f"{' and '.join(taken)} already {exist}{why}: continue that run with its --restart FILE, "
            f"or pass --overwrite to replace {them}"
        )


def _non_empty(path: str) -> bool:
    return Path(path).is_file() and Path(path).stat().st_size > 0


def _read_structure(args, species):
    """The start frame, with one-line errors for files ASE cannot read or a frame MD cannot start from
    (``species``: the model's elements; another one is named with the file before velocities are drawn)."""
    path = Path(args.structure)
    if not path.exists():
        raise FileNotFoundError(f"structure file {args.structure} does not exist")
    index = 0 if args.index is None else args.index
    if index < 0:  # counted from an end ASE's extxyz reader puts at the first blank line between frames
        from mlpot.reading import blank_line_refusal, extxyz_layout

        layout = extxyz_layout(path)
        if layout is not None and layout.blank_line is not None:
            raise ValueError(blank_line_refusal(args.structure, layout, f"--index {index} would count from there"))
    try:
        if args.index is not None:
            frames = [ase.io.read(args.structure, index=index)]
        else:  # lazily, two frames at most: a long trajectory is not parsed only to say it has more
            frames = list(itertools.islice(ase.io.iread(args.structure, index=":"), 2))
    except (StopIteration, IndexError):
        frames = []
    except ase.io.formats.UnknownFileTypeError as err:
        raise ValueError(f"{args.structure}: {err}") from None
    except OSError as err:  # ASE reads a directory as a BundleTrajectory, and fails on any other
        what = "is a directory, not a structure file" if path.is_dir() else "cannot be read"
        raise ValueError(f"{args.structure}: {what} ({err})") from None
    except Exception as err:  # noqa: BLE001 - a parser's own failure (a bad number, a torn line): name the frame
        from mlpot.reading import unreadable_frame

        raise ValueError(f"{unreadable_frame(path)}: cannot be read ({type(err).__name__}: {err})") from None
    if not frames or index < 0 and _frame_count(args.structure) < -index:
        # ASE reads a negative index past the start as frame 0, as a slice would
        raise ValueError(f"{args.structure}: has no frame {index}")
    if len(frames) > 1:
        print(
            f"note: {args.structure} has more than one frame; starting from frame 0 (choose with --index)",
            file=sys.stderr,
        )
    # before Maxwell-Boltzmann velocities, which divide by the atom count
    where = f"{args.structure}, frame {index}"
    check_atoms(frames[0], where)
    from md.velocities import check_masses  # here: `mlpot md --help` imports no ASE MD

    check_masses(frames[0], where)
    species_indices(frames[0].numbers, species, where)
    return frames[0]


def _frame_count(path) -> int:
    return sum(1 for _ in ase.io.iread(path, index=":"))


def _check_model(path, restart: dict, fingerprint: str, model: str) -> None:
    """Continuing with another potential would make the energy jump mid-run without a word."""
    if restart["model"] is None:  # written before restarts recorded their model: nothing to compare
        print(f"mlpot md: warning: {path} does not record its model; cannot check it was {model}", file=sys.stderr)
        return
    saved, name = restart["model"]
    if saved != fingerprint:
        raise ValueError(
            f"{path}: the run it continues used model {name} (sha256 {saved[:12]}), not {model} "
            f"(sha256 {fingerprint[:12]}). Use that model, or start a new run (another --restart file)"
        )


def _check_structure(path, restart: dict, atoms, structure: str) -> None:
    """The restart holds the state, but the run takes pbc, masses and constraints from the structure file:
    a changed file would change them mid-run without a word (pbc off: a crystal turned into a cluster)."""
    from md.io import structure_fingerprint

    if restart["structure"] is None:  # written before restarts recorded it: only the elements were compared
        return
    saved, name = restart["structure"]
    if saved != structure_fingerprint(atoms):
        raise ValueError(
            f"{path}: the run it continues started from {name}, and {structure} is not that structure now (its "
            "positions, cell, pbc, masses or constraints differ). Continue with the original start file, or start "
            "a new run (another --restart file)"
        )


def _settings(args) -> dict:
    fs = ase.units.fs
    return {
        "dt": args.dt * fs,
        "kT": ase.units.kB * args.temperature,
        "friction": args.friction / fs,
        "tdamp": (args.tdamp if args.tdamp is not None else 100 * args.dt) * fs,
        "pressure": args.pressure * ase.units.GPa,
        "taup": args.taup * fs,
        "compressibility": args.compressibility / ase.units.GPa,
    }


def _check_same_settings(path, saved, now, used) -> None:
    """A restart continues one run: a new --dt would also make every later time_fs wrong. Only the
    settings the run reads (``used``) are compared: one its ensemble ignores changed nothing."""
    fs, gpa = ase.units.fs, ase.units.GPa
    shown = {  # field: (option, factor to the option's unit, unit)
        "dt": ("--dt", 1 / fs, "fs"),
        "kT": ("--temperature", 1 / ase.units.kB, "K"),
        "friction": ("--friction", fs, "1/fs"),
        "tdamp": ("--tdamp", 1 / fs, "fs"),
        "pressure": ("--pressure", 1 / gpa, "GPa"),
        "taup": ("--taup", 1 / fs, "fs"),
        "compressibility": ("--compressibility", gpa, "1/GPa"),
    }
    changed = [
        f"{option} {float(getattr(saved, field)) * factor:.6g} -> {float(getattr(now, field)) * factor:.6g} {unit}"
        for field, (option, factor, unit) in shown.items()
        if field in used and not np.isclose(float(getattr(saved, field)), float(getattr(now, field)), rtol=1e-9, atol=0)
    ]
    if changed:
        raise ValueError(
            f"{path}: the run it continues had other settings ({'; '.join(changed)}). Use that run's options, "
            "or start a new run (another --restart file) from the trajectory's last frame with --keep-momenta"
        )


def build(args):
    """(simulation, atoms, restarting, model fingerprint or None, potential) for the parsed arguments.

    Every user error (options, paths, files, a mismatched restart) is raised here, before MD starts.
    """
    from md.forces import potential_forces
    from md.integrators import params
    from md.io import load_restart, model_fingerprint
    from md.simulation import Simulation
    from md.velocities import CONSERVING, mobility, moving_degrees_of_freedom, thermal_start
    from mlpot.models.committee import members
    from mlpot.potential import load

    _check_options(args)
    continuing = bool(args.restart) and Path(args.restart).is_file()
    _check_outputs(args, continuing)
    potential = load(args.model)
    if args.max_force_dev is not None and len(members(potential)) < 2:
        raise ValueError(f"--max-force-dev needs a committee model (mlpot committee); {args.model} is a single model")
    atoms = _read_structure(args, potential.config.species)
    fingerprint = model_fingerprint(potential) if args.restart else None  # only restarts record it
    restart = None
    if continuing:
        restart = load_restart(args.restart)
        if restart["ensemble"] != args.ensemble:
            raise ValueError(f"{args.restart}: written by a {restart['ensemble']} run, not {args.ensemble}")
        if not np.array_equal(restart["numbers"], atoms.numbers):
            raise ValueError(f"{args.restart}: its atoms do not match {args.structure}")
        settings = params(**_settings(args), dof=restart["params"].dof)  # the count the run started with
        _check_same_settings(args.restart, restart["params"], settings, _used(args))
        if restart["skin"] is not None and not np.isclose(restart["skin"], args.skin, rtol=1e-9, atol=0):
            raise ValueError(  # the physics would hold, but the list would rebuild at other steps
                f"{args.restart}: the run it continues had --skin {restart['skin']:g} Å, not {args.skin:g}: use "
                "that run's options, or start a new run (another --restart file) from the trajectory's last frame "
                "with --keep-momenta"
            )
        _check_model(args.restart, restart, fingerprint, args.model)
        _check_structure(args.restart, restart, atoms, args.structure)
    where = f"{args.structure}, frame {args.index or 0}"
    if not continuing and args.keep_momenta and not np.any(atoms.get_momenta()):
        raise ValueError(  # a run from rest at a thermostat's target is --temperature's job
            f"--keep-momenta: {where} has no momenta (all zero); leave --keep-momenta out to draw them at "
            f"--temperature {args.temperature:g} K"
        )
    with _naming(where):  # constraints mlpot cannot apply, NPT without a periodic cell, duplicated atoms
        if not continuing:
            if args.temperature > 0 and not args.keep_momenta:
                dof = thermal_start(atoms, args.ensemble, args.temperature, args.seed)
            else:
                dof = moving_degrees_of_freedom(atoms, args.ensemble)
            settings = params(**_settings(args), dof=dof)
        forces = potential_forces(
            potential,
            atoms,
            args.skin,
            compute_stress=args.ensemble in BAROSTATS,
            capacity=restart["capacity"] if restart else None,
        )
    if not continuing and settings.dof:
        dof = int(settings.dof)
        fixed = int(np.sum(mobility(atoms) == 0))
        if fixed:
            held = f"{fixed} coordinates held by FixAtoms/FixCartesian"
        else:
            held = ("net momentum" if dof == 3 * len(atoms) - 3 else "net and angular momentum") + " held at zero"
        plural = "s" if dof != 1 else ""
        print(f"temperatures count {dof} degree{plural} of freedom ({held})", file=sys.stderr)
    elif not continuing and args.ensemble in CONSERVING and len(atoms) > 1 and mobility(atoms).all():
        print(  # the start drifts, and the ensemble keeps it: say so, it sets the temperature
            f"temperatures count all {3 * len(atoms)} degrees of freedom ({where}'s net momentum is not zero, and "
            f"--ensemble {args.ensemble} keeps it)",
            file=sys.stderr,
        )
    with _naming(where):
        sim = Simulation(
            forces,
            atoms,
            args.ensemble,
            settings,
            seed=args.seed,
            max_temperature_K=args.max_temperature,
            min_distance=args.min_distance,
            restart=restart,
        )
    return sim, atoms, restart is not None, fingerprint, potential


@contextmanager
def _naming(where: str):
    """Refusals about the structure raised below the CLI say which file and frame they are about."""
    from md.simulation import MDError

    try:
        yield
    except MDError as err:  # the start structure itself is unphysical: main reports it with exit code 1
        raise MDError(f"{where}: {err}") from None
    except ValueError as err:
        raise ValueError(f"{where}: {err}") from None


def _check_deviation(row: dict, limit: float | None) -> None:
    """Stop the run (MDError) when the committee's deviation in ``row`` passed --max-force-dev."""
    from md.simulation import MDError

    if limit is not None and row["force_dev_max"] > limit:
        raise MDError(
            f"MD stopped at step {row['step']}: committee force deviation {row['force_dev_max']:.4g} eV/Å "
            f"above --max-force-dev {limit:g}; the run has left what the members agree on (label frames from "
            "here: mlpot deviation). Output written so far is intact"
        )


def _record_last_good_frame(sim, writers, atoms, npt: bool, deviation, unwrap: bool) -> None:
    """Append the state before a failure to the trajectory and log (not the restart: it is no place to
    continue from), off the interval if need be: the frame that shows what went wrong."""
    from md.io import ThermoLog, frame_atoms

    state = sim.state
    if not (np.isfinite(float(state.energy)) and np.all(np.isfinite(np.asarray(state.positions)))):
        return
    for writer in writers:
        if isinstance(writer, ThermoLog):
            writer.write({**sim.thermo(), **(deviation(sim.atoms()) if deviation else {})})
        else:
            writer.write(frame_atoms(atoms, state, npt, wrap=not unwrap))
    if writers:
        print(f"mlpot md: the last good frame, step {int(state.step)}, ends the trajectory and log", file=sys.stderr)


def main(args) -> int:
    from tqdm import tqdm

    from md.io import ThermoLog, TrajectoryWriter, committee_deviation, frame_atoms, save_restart, structure_fingerprint
    from md.simulation import MDError

    try:
        sim, atoms, restarting, fingerprint, potential = build(args)
        started_from = (structure_fingerprint(atoms), args.structure)
    except MDError as err:  # the start structure itself is unphysical
        print(f"mlpot md: error: {err}", file=sys.stderr)
        return 1
    steps = max(0, args.steps - int(sim.state.step))  # --steps is the whole run's length
    if restarting:
        print(f"continuing from step {int(sim.state.step)} ({args.restart}): {steps} steps to go", file=sys.stderr)
    npt = args.ensemble in BAROSTATS
    writers = []
    if args.traj:
        traj = TrajectoryWriter(args.traj, append=restarting)
        writers.append(traj)
        sim.attach(lambda s: traj.write(frame_atoms(atoms, s.state, npt, wrap=not args.unwrap)), args.interval)
    deviation = committee_deviation(potential)
    if args.log:
        log = ThermoLog(
            args.log,
            with_pressure=npt,
            append=restarting,
            with_deviation=deviation is not None,
            with_conserved=args.ensemble in CHAINED,
        )
        writers.append(log)
        if deviation:

            def log_and_check(s):  # the line that passes the limit is written before the run stops
                row = {**s.thermo(), **deviation(s.atoms())}
                log.write(row)
                _check_deviation(row, args.max_force_dev)

            sim.attach(log_and_check, args.interval)
        else:
            sim.attach(lambda s: log.write(s.thermo()), args.interval)
    elif args.max_force_dev is not None:
        check = lambda s: _check_deviation({"step": int(s.state.step), **deviation(s.atoms())}, args.max_force_dev)
        sim.attach(check, args.interval)

    last_restart = {"step": -1, "time": -np.inf}

    def write_restart(s, force: bool = False):
        # A kill loses at most --restart-seconds of work (or one --interval, where that takes longer): the
        # rerun replays from the last write, and the trajectory and log skip the steps they already hold.
        now = time.perf_counter()
        step = int(s.state.step)
        if step == last_restart["step"] or not (force or now - last_restart["time"] >= args.restart_seconds):
            return
        for writer in writers:  # the frames and lines the restart counts on reach the disk before it does
            writer.sync()
        capacity = s.neighbours.capacity
        model = (fingerprint, args.model)
        save_restart(
            args.restart,
            args.ensemble,
            s.state,
            s.params,
            s.reference,
            capacity,
            atoms.numbers,
            model,
            args.skin,
            started_from,
        )
        last_restart.update(step=step, time=now)

    if args.restart:
        sim.attach(write_restart, args.interval)
    ns_per_step = args.dt * 1e-6
    bar = tqdm(total=steps, unit="step", desc=f"md {args.ensemble}", file=sys.stderr)
    start = time.perf_counter()

    def progress(n):
        bar.update(n)
        rate = bar.n / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix_str(f"{rate * ns_per_step * 86400:.3g} ns/day", refresh=False)

    try:
        if not restarting:
            for function, _ in sim.observers:
                function(sim)  # frame, log line and restart at step 0 (a deviation check may stop it)
        sim.run(steps, progress=progress)
        if steps and int(sim.state.step) % args.interval:
            for function, _ in sim.observers:
                function(sim)  # the last frame, log line and restart fall off the interval
        if args.restart:
            write_restart(sim, force=True)  # the end is always written, however soon after the last write
    except MDError as err:
        print(f"mlpot md: error: {err}", file=sys.stderr)
        _record_last_good_frame(sim, writers, atoms, npt, deviation, args.unwrap)
        return 1
    finally:
        bar.close()
        for writer in writers:
            writer.close()
    nl = sim.neighbours
    print(
        f"{steps} steps in {time.perf_counter() - start:.1f} s; {nl.builds} neighbour builds "
        f"({nl.seconds:.2f} s), {sim.compile_count} compile(s), {nl.growths} capacity growth(s)",
        file=sys.stderr,
    )
    return 0
