"""ASE-style drivers: ``md.VelocityVerlet(atoms, timestep)``, ``md.Langevin(...)``, ...

Same argument conventions as ``ase.md`` (ASE 3.23+): ``timestep`` in ASE
time units (``0.5 * ase.units.fs``), ``temperature_K`` in K, ``friction`` in
1/ASE-time (as ``ase.md.Langevin``: e.g. ``0.01 / ase.units.fs``), ``tdamp``,
``taut``, ``taup`` in ASE time, ``pressure_au`` in eV/Å^3,
``compressibility_au`` in Å^3/eV. Momenta come from the atoms (set them with
``MaxwellBoltzmannDistribution`` first, as with ASE).

The potential is taken from ``atoms.calc`` when it is an ``mlpot.Calculator``
(or given as ``potential=``). ``run(steps)`` runs whole compiled chunks on
the device; the atoms are updated in place (positions unwrapped, momenta,
cell, and the calculator's cached energy/forces) at the end of ``run`` and
before every attached callback, so ``atoms.get_potential_energy()`` inside a
callback costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import ase.units
import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from md.forces import potential_forces
from md.integrators import params as make_params
from md.io import ThermoLog, TrajectoryWriter, frame_atoms
from md.simulation import Simulation
from mlpot.calculator import Calculator
from mlpot.potential import Potential, load


class Dynamics:
    """One MD run on ``atoms``; build it with the functions below rather than directly."""

    def __init__(
        self,
        atoms: Atoms,
        ensemble: str,
        timestep: float,
        potential=None,
        trajectory=None,
        logfile=None,
        loginterval: int = 1,
        skin: float = 0.5,
        seed: int = 0,
        settings=None,
        max_temperature_K=None,
        min_distance: float = 0.5,
    ):
        if potential is None:
            if not isinstance(atoms.calc, Calculator):
                raise ValueError("give potential= or attach an mlpot.Calculator to the atoms")
            potential = atoms.calc.potential
        if not isinstance(potential, Potential):
            potential = load(potential)
        if atoms.calc is None:
            # callbacks read atoms.get_potential_energy(), as with ASE's drivers
            atoms.calc = Calculator(potential)
        self.atoms, self.dt, self.potential = atoms, float(timestep), potential
        self.forces = potential_forces(potential, atoms, skin, compute_stress=ensemble == "npt")
        params = make_params(dt=timestep, **(settings or {}))
        self.simulation = Simulation(
            self.forces,
            atoms,
            ensemble,
            params,
            seed=seed,
            max_temperature_K=max_temperature_K,
            min_distance=min_distance,
        )
        self.observers: list = []
        self.nsteps = 0
        self._writers = []
        if trajectory is not None:
            writer = TrajectoryWriter(trajectory)
            self._writers.append(writer)
            self.attach(
                lambda: writer.write(frame_atoms(self.atoms, self.simulation.state, ensemble == "npt")), loginterval
            )
        if logfile is not None:
            log = ThermoLog(logfile, with_pressure=ensemble == "npt")
            self._writers.append(log)
            self.attach(lambda: log.write(self.simulation.thermo()), loginterval)

    @property
    def compile_count(self) -> int:
        return self.simulation.compile_count

    def get_time(self) -> float:
        return self.nsteps * self.dt

    def attach(self, function, interval: int = 1, *args) -> None:
        """Call ``function(*args)`` every ``interval`` steps (and at step 0), as ASE does.
        Objects with a ``write`` method (an ASE Trajectory) are written to."""
        if not isinstance(function, Callable):
            function = function.write
        self.observers.append((function, int(interval), args))
        # the chunk only needs to stop where some observer wants to look
        self.simulation.observers = [(self._call_observers, _gcd(k for _, k, _ in self.observers))]

    def _call_observers(self, simulation=None) -> None:
        self.nsteps = int(self.simulation.state.step)
        due = [(f, a) for f, k, a in self.observers if self.nsteps % k == 0]
        if due:
            self._update_atoms()
            for function, args in due:
                function(*args)

    def _update_atoms(self) -> None:
        """Copy the state into ``self.atoms`` and prime the mlpot calculator's cache."""
        state = self.simulation.state
        atoms = self.atoms
        if atoms.pbc.any():
            atoms.set_cell(np.asarray(state.cell), scale_atoms=False)
        atoms.positions = np.asarray(state.positions)
        atoms.set_momenta(np.asarray(state.momenta))
        if isinstance(atoms.calc, Calculator):
            atoms.calc.atoms = atoms.copy()
            energy = float(state.energy)
            atoms.calc.results = {"energy": energy, "free_energy": energy, "forces": np.asarray(state.forces)}
            if self.simulation.ensemble == "npt":  # only NPT computed the stress
                atoms.calc.results["stress"] = full_3x3_to_voigt_6_stress(np.asarray(state.stress))

    def run(self, steps: int = 50) -> bool:
        if self.nsteps == 0 and int(self.simulation.state.step) == 0:
            self._call_observers()
        try:
            self.simulation.run(steps)
        finally:
            self.nsteps = int(self.simulation.state.step)
            self._update_atoms()
        return True

    def close(self) -> None:
        for writer in self._writers:
            writer.close()


def _gcd(values) -> int:
    result = 0
    for v in values:
        result = int(np.gcd(result, v))
    return max(result, 1)


def VelocityVerlet(atoms, timestep, potential=None, trajectory=None, logfile=None, loginterval=1, skin=0.5) -> Dynamics:
    """NVE velocity Verlet, like ``ase.md.VelocityVerlet``."""
    return Dynamics(atoms, "nve", timestep, potential, trajectory, logfile, loginterval, skin)


def Langevin(
    atoms,
    timestep,
    temperature_K,
    friction,
    potential=None,
    trajectory=None,
    logfile=None,
    loginterval=1,
    skin=0.5,
    seed=0,
) -> Dynamics:
    """Langevin BAOAB; ``friction`` in 1/ASE-time like ``ase.md.Langevin`` (0.01/fs = ``0.01 / units.fs``)."""
    settings = {"kT": ase.units.kB * temperature_K, "friction": friction}
    return Dynamics(atoms, "langevin", timestep, potential, trajectory, logfile, loginterval, skin, seed, settings)


def NoseHooverChainNVT(
    atoms, timestep, temperature_K, tdamp, potential=None, trajectory=None, logfile=None, loginterval=1, skin=0.5
) -> Dynamics:
    """Nosé-Hoover chain (length 3) like ``ase.md.nose_hoover_chain.NoseHooverChainNVT``; tdamp ~ 100 dt."""
    settings = {"kT": ase.units.kB * temperature_K, "tdamp": tdamp}
    return Dynamics(
        atoms, "nose-hoover", timestep, potential, trajectory, logfile, loginterval, skin, settings=settings
    )


def NPTBerendsen(
    atoms,
    timestep,
    temperature_K,
    pressure_au,
    compressibility_au,
    taut=0.5e3 * ase.units.fs,
    taup=1e3 * ase.units.fs,
    potential=None,
    trajectory=None,
    logfile=None,
    loginterval=1,
    skin=0.5,
) -> Dynamics:
    """Isotropic Berendsen NPT, arguments as ``ase.md.nptberendsen.NPTBerendsen``."""
    settings = {
        "kT": ase.units.kB * temperature_K,
        "tdamp": taut,
        "pressure": pressure_au,
        "taup": taup,
        "compressibility": compressibility_au,
    }
    return Dynamics(atoms, "npt", timestep, potential, trajectory, logfile, loginterval, skin, settings=settings)
