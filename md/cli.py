"""``mlpot md MODEL STRUCTURE ...``: run MD with a trained model.

Units at the command line are the ones people type: fs, K, GPa, 1/fs. With
``--restart FILE``: when FILE exists the run continues from it exactly
(appending to the trajectory and log) up to ``--steps`` in all, so re-running
the command of a killed run finishes that run; the state is written to FILE
(atomically) every ``--interval`` steps and at the end.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import ase.io
import ase.units
import numpy as np

ENSEMBLES = ("nve", "langevin", "nose-hoover", "npt")


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "md",
        help="molecular dynamics with a model file",
        description="Molecular dynamics with a model file (units: fs, K, GPa).",
    )
    p.add_argument("model", help="model file (.mlpot)")
    p.add_argument("structure", help="start structure, any ASE-readable file (first frame, or --index)")
    p.add_argument("--index", type=int, default=0, help="frame of STRUCTURE to start from (default 0)")
    p.add_argument("--steps", type=int, required=True, help="length of the run in steps (a restart runs the rest)")
    p.add_argument("--dt", type=float, default=0.5, help="timestep in fs (default 0.5)")
    p.add_argument("--ensemble", choices=ENSEMBLES, default="nve")
    p.add_argument(
        "--temperature",
        type=float,
        default=300.0,
        help="K: Maxwell-Boltzmann start (0: keep the file's momenta) and thermostat target",
    )
    p.add_argument("--pressure", type=float, default=0.0, help="GPa, NPT target (default 0)")
    p.add_argument("--friction", type=float, default=0.01, help="Langevin friction in 1/fs (default 0.01)")
    p.add_argument("--tdamp", type=float, default=None, help="thermostat time constant in fs (default 100 dt)")
    p.add_argument("--taup", type=float, default=1000.0, help="Berendsen barostat time constant in fs")
    p.add_argument(
        "--compressibility",
        type=float,
        default=0.01,
        help="Berendsen compressibility in 1/GPa (sets the barostat speed; default 0.01)",
    )
    p.add_argument("--skin", type=float, default=0.5, help="neighbour-list skin in Å (default 0.5)")
    p.add_argument("--traj", default=None, help="trajectory file (.traj, else extxyz), every --interval steps")
    p.add_argument("--log", default=None, help="thermo CSV log, every --interval steps")
    p.add_argument("--interval", type=int, default=10, help="steps between frames/log lines/restart writes")
    p.add_argument("--seed", type=int, default=0, help="seed for velocities and Langevin noise")
    p.add_argument("--restart", default=None, help="restart file: continued from when it exists, always written")
    p.add_argument("--max-temperature", type=float, default=None, help="K; stop above it (default max(1e4, 5 T))")
    p.add_argument("--min-distance", type=float, default=0.5, help="Å; stop when two atoms come closer")
    p.set_defaults(func=main)


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


def _check_same_settings(path, saved, now) -> None:
    """A restart continues one run: a new --dt would also make every later time_fs wrong."""
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
        if not np.isclose(float(getattr(saved, field)), float(getattr(now, field)), rtol=1e-9, atol=0)
    ]
    if changed:
        raise ValueError(
            f"{path}: the run it continues had other settings ({'; '.join(changed)}). Use that run's options, "
            "or start a new run (another --restart file) from the trajectory's last frame"
        )


def build(args):
    """(simulation, atoms, restarting) for the parsed arguments."""
    from md.forces import potential_forces
    from md.integrators import params
    from md.io import load_restart
    from md.simulation import Simulation, maxwell_boltzmann
    from mlpot.potential import load

    if args.steps < 0 or args.dt <= 0 or args.interval < 1:
        raise ValueError("--steps must be >= 0, --dt > 0 and --interval >= 1")
    potential = load(args.model)
    if not Path(args.structure).exists():
        raise FileNotFoundError(f"structure file {args.structure} does not exist")
    try:
        atoms = ase.io.read(args.structure, index=args.index)
    except (StopIteration, IndexError):
        raise ValueError(f"{args.structure}: has no frame {args.index}") from None
    except ase.io.formats.UnknownFileTypeError as err:
        raise ValueError(f"{args.structure}: {err}") from None
    settings = params(**_settings(args))
    restart = None
    if args.restart and Path(args.restart).exists():
        restart = load_restart(args.restart)
        if restart["ensemble"] != args.ensemble:
            raise ValueError(f"{args.restart}: written by a {restart['ensemble']} run, not {args.ensemble}")
        if not np.array_equal(restart["numbers"], atoms.numbers):
            raise ValueError(f"{args.restart}: its atoms do not match {args.structure}")
        _check_same_settings(args.restart, restart["params"], settings)
    elif args.temperature > 0:
        maxwell_boltzmann(atoms, args.temperature, args.seed)
    forces = potential_forces(
        potential,
        atoms,
        args.skin,
        compute_stress=args.ensemble == "npt",
        capacity=restart["capacity"] if restart else None,
    )
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
    return sim, atoms, restart is not None


def main(args) -> int:
    from tqdm import tqdm

    from md.io import ThermoLog, TrajectoryWriter, frame_atoms, save_restart
    from md.simulation import MDError

    try:
        sim, atoms, restarting = build(args)
    except MDError as err:  # the start structure itself is unphysical
        print(f"mlpot md: error: {err}", file=sys.stderr)
        return 1
    steps = max(0, args.steps - int(sim.state.step))  # --steps is the whole run's length
    if restarting:
        print(f"continuing from step {int(sim.state.step)} ({args.restart}): {steps} steps to go", file=sys.stderr)
    npt = args.ensemble == "npt"
    writers = []
    if args.traj:
        traj = TrajectoryWriter(args.traj, append=restarting)
        writers.append(traj)
        sim.attach(lambda s: traj.write(frame_atoms(atoms, s.state, npt)), args.interval)
    if args.log:
        log = ThermoLog(args.log, with_pressure=npt, append=restarting)
        writers.append(log)
        sim.attach(lambda s: log.write(s.thermo()), args.interval)

    def write_restart(s):
        capacity = s.neighbours.capacity
        save_restart(args.restart, args.ensemble, s.state, s.params, s.reference, capacity, atoms.numbers)

    if args.restart:
        sim.attach(write_restart, args.interval)
    if not restarting:
        for function, _ in sim.observers:
            function(sim)  # frame, log line and restart at step 0
    ns_per_step = args.dt * 1e-6
    bar = tqdm(total=steps, unit="step", desc=f"md {args.ensemble}", file=sys.stderr)
    start = time.perf_counter()

    def progress(n):
        bar.update(n)
        rate = bar.n / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix_str(f"{rate * ns_per_step * 86400:.3g} ns/day", refresh=False)

    try:
        sim.run(steps, progress=progress)
    except MDError as err:
        print(f"mlpot md: error: {err}", file=sys.stderr)
        return 1
    finally:
        bar.close()
        for writer in writers:
            writer.close()
    if args.restart and int(sim.state.step) % args.interval:
        write_restart(sim)
    nl = sim.neighbours
    print(
        f"{steps} steps in {time.perf_counter() - start:.1f} s; {nl.builds} neighbour builds "
        f"({nl.seconds:.2f} s), {sim.compile_count} compile(s), {nl.growths} capacity growth(s)",
        file=sys.stderr,
    )
    return 0
