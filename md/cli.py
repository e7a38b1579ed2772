"""``mlpot md MODEL STRUCTURE ...``: run MD with a trained model.

Units at the command line are the ones people type: fs, K, GPa, 1/fs. With
``--restart FILE``: when FILE exists the run continues from it exactly
(appending to the trajectory and log); the state is written to FILE (atomically)
every ``--interval`` steps and at the end.
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
    p.add_argument("--steps", type=int, required=True, help="number of MD steps")
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
    atoms = ase.io.read(args.structure, index=args.index)
    restart = None
    if args.restart and Path(args.restart).exists():
        restart = load_restart(args.restart)
        if restart["ensemble"] != args.ensemble:
            raise ValueError(f"{args.restart}: written by a {restart['ensemble']} run, not {args.ensemble}")
        if not np.array_equal(restart["numbers"], atoms.numbers):
            raise ValueError(f"{args.restart}: its atoms do not match {args.structure}")
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
        params(**_settings(args)),
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

    sim, atoms, restarting = build(args)
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
    bar = tqdm(total=args.steps, unit="step", desc=f"md {args.ensemble}", file=sys.stderr)
    start = time.perf_counter()

    def progress(n):
        bar.update(n)
        rate = bar.n / max(time.perf_counter() - start, 1e-9)
        bar.set_postfix_str(f"{rate * ns_per_step * 86400:.3g} ns/day", refresh=False)

    try:
        sim.run(args.steps, progress=progress)
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
        f"{args.steps} steps in {time.perf_counter() - start:.1f} s; {nl.builds} neighbour builds "
        f"({nl.seconds:.2f} s), {sim.compile_count} compile(s), {nl.growths} capacity growth(s)",
        file=sys.stderr,
    )
    return 0
