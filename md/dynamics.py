"""``Dynamics``: one MD run on ASE atoms, behind the ASE-style drivers of ``md.drivers``.

The potential is taken from ``atoms.calc`` when it is an ``mlpot.Calculator``
(or given as ``potential=``; then ``atoms.calc`` must be empty, and gets a
Calculator of it, or already be a Calculator of the same model: a driver
refuses other calculators, whose energies callbacks would otherwise read).
``run(steps)`` runs whole compiled chunks on the device; the atoms are updated
in place (positions unwrapped, momenta, cell, and the calculator's cached
energy/forces) at the end of ``run`` and before every attached callback, so
``atoms.get_potential_energy()`` inside a callback costs nothing. Edits to the
atoms' positions, momenta, masses or cell, between runs or inside a callback,
are picked up as in ASE: the engine restarts from the edited atoms.
"""

from __future__ import annotations

import numbers
import os
import sys
from collections.abc import Callable

import ase.units
import numpy as np
from ase import Atoms
from ase.stress import full_3x3_to_voigt_6_stress

from md.ensembles import BAROSTATS, CHAINED
from md.forces import potential_forces
from md.integrators import params as make_params
from md.io import ThermoLog, TrajectoryWriter, committee_deviation, frame_atoms
from md.simulation import Simulation, check_settings
from md.velocities import mobility
from mlpot.calculator import Calculator
from mlpot.potential import Potential, load, same_model

# Each setting (``Params`` field) as the drivers' arguments name it, after ASE: (argument, factor from
# the field's unit to the argument's, unit shown). A driver renames some (``names=``), as ASE's do.
_ASE_NAMES = {
    "dt": ("timestep", 1.0, ""),
    "kT": ("temperature_K", 1 / ase.units.kB, " K"),
    "friction": ("friction", 1.0, ""),
    "tdamp": ("tdamp", 1.0, ""),
    "pressure": ("pressure_au", 1.0, ""),
    "taup": ("taup", 1.0, ""),
    "compressibility": ("compressibility_au", 1.0, ""),
}


class Dynamics:
    """One MD run on ``atoms``; build it with ``md.drivers``' functions (``md.VelocityVerlet``, ...) rather than directly."""

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
        chain_length: int = 3,
        append_trajectory: bool = False,
        names: dict | None = None,
    ):
        # field -> the driver's argument for it (NPTBerendsen's taut, the MTK drivers' pdamp)
        self._names = {field: (name, *_ASE_NAMES[field][1:]) for field, name in (names or {}).items()}
        params = make_params(dt=timestep, **(settings or {}))
        # before anything is built: a bad setting would otherwise stop the run at a NaN blamed on the structure
        check_settings(ensemble, params, self._argument_names())
        potential = _driver_potential(atoms, potential)
        self.atoms, self.potential = atoms, potential
        self._calc = atoms.calc  # the cache we prime; a calculator swapped in later is left alone
        self.forces = potential_forces(potential, atoms, skin, compute_stress=ensemble in BAROSTATS)
        self.simulation = Simulation(
            self.forces,
            atoms,
            ensemble,
            params,
            seed=seed,
            max_temperature_K=max_temperature_K,
            min_distance=min_distance,
            chain_length=chain_length,
        )
        self._auto_max_temperature = max_temperature_K is None  # follows the target (set_temperature)
        self.observers: list = []
        self._engine_calls: list = []  # (observer entry, the engine's callback for it)
        self._started = False  # the step-0 observers have been called
        self.max_steps = 0
        self.nsteps = 0
        self._writers = []  # files this driver opened, closed by close()
        self._update_atoms()  # from here on, edits to the atoms are detected against what was written
        if trajectory is not None:
            self._attach_trajectory(trajectory, loginterval, append_trajectory)
        if logfile is not None:
            self._attach_log(logfile, loginterval, append_trajectory)

    def _attach_trajectory(self, trajectory, loginterval: int, append: bool) -> None:
        if isinstance(trajectory, Potential) or str(trajectory).endswith(".mlpot"):
            # The third positional argument was `potential` before it followed ASE's order: opening a
            # model file as a trajectory would overwrite it.
            raise TypeError(f"trajectory: {trajectory!r} is a model; pass it as potential=")
        if isinstance(trajectory, (str, os.PathLike)):
            # this run counts from step 0 again: append all its frames after whatever the file holds (ASE's
            # own MD's frames too, which carry no step), as ASE does
            writer = TrajectoryWriter(trajectory, append=append, resume=False)
            self._writers.append(writer)
        elif hasattr(trajectory, "write"):
            writer = trajectory  # the caller's open Trajectory: the caller closes it, as with ASE
        else:
            raise TypeError(f"trajectory: expected a file name or an open ase.io.Trajectory, not {trajectory!r}")
        npt = self.simulation.ensemble in BAROSTATS
        # as ASE's drivers write them: positions unwrapped (an MSD or diffusion coefficient needs them)
        # and the atoms' own info, plus the step
        self.attach(
            lambda: writer.write(frame_atoms(self.atoms, self.simulation.state, npt, wrap=False, info=self.atoms.info)),
            loginterval,
        )

    def _attach_log(self, logfile, loginterval: int, append: bool) -> None:
        deviation = committee_deviation(self.potential)
        columns = {
            "with_pressure": self.simulation.ensemble in BAROSTATS,
            "with_deviation": deviation is not None,
            "with_conserved": self.simulation.ensemble in CHAINED,  # those whose thermo() has "conserved"
        }
        if isinstance(logfile, (str, os.PathLike)) and str(logfile) != "-":
            # with append_trajectory the log of a run in segments continues too (ASE's logs always append)
            log = ThermoLog(logfile, append=append, **columns)
            log.last_step = -1  # each segment counts from step 0 again, as its trajectory frames do
            self._writers.append(log)
        elif isinstance(logfile, str) or hasattr(logfile, "write"):
            stream = sys.stdout if isinstance(logfile, str) else logfile
            log = _StreamLog(stream, **columns)
        else:
            raise TypeError(f"logfile: expected a file name, '-' or an open file, not {logfile!r}")
        if deviation:
            self.attach(
                lambda: log.write({**self.simulation.thermo(), **deviation(self.simulation.atoms())}), loginterval
            )
        else:
            self.attach(lambda: log.write(self.simulation.thermo()), loginterval)

    @property
    def compile_count(self) -> int:
        return self.simulation.compile_count

    # -- settings changed between runs, as ASE's setters (an annealing ramp); each is an argument of the
    # compiled step, so none recompiles
    def _set(self, argument: str, **settings) -> None:
        """``settings`` (``Params`` fields) from the next step on, checked as the driver's were; a bad
        one is named as ``argument``, the setter's."""
        params = make_params(**{**self.simulation.params._asdict(), **settings})
        check_settings(self.simulation.ensemble, params, self._argument_names(dict.fromkeys(settings, argument)))
        self.simulation.params = params

    def _argument_names(self, renamed: dict | None = None) -> dict:
        """``check_settings``' names: ASE's arguments, as this driver (and ``renamed``) call them."""
        names = {**_ASE_NAMES, **self._names}
        for field, name in (renamed or {}).items():
            names[field] = (name, *names[field][1:])
        return names

    def _has(self, what: str, ensembles) -> None:
        if self.simulation.ensemble not in ensembles:
            raise AttributeError(f"a {self.simulation.ensemble} run has no {what}")

    def set_temperature(self, temperature=None, *, temperature_K=None) -> None:
        """The thermostat's target from the next step on (ASE's ``set_temperature``; ``temperature_K=``)."""
        if temperature is not None or temperature_K is None:
            raise TypeError("set_temperature: give temperature_K= (ASE's temperature= is in eV: refused)")
        self._has("thermostat", ("langevin", "nose-hoover", *BAROSTATS))
        self._set("temperature_K", kT=ase.units.kB * temperature_K)
        if self._auto_max_temperature:
            self.simulation.max_kT = ase.units.kB * max(10_000.0, 5 * temperature_K)

    def set_friction(self, friction: float) -> None:
        """Langevin's friction (1/ASE time) from the next step on."""
        self._has("friction", ("langevin",))
        self._set("friction", friction=friction)

    def set_timestep(self, timestep: float) -> None:
        self.dt = timestep

    def set_taut(self, taut: float) -> None:
        self._has("thermostat time constant", ("nose-hoover", *BAROSTATS))
        self._set("taut", tdamp=taut)

    def set_pressure(self, pressure=None, *, pressure_au=None) -> None:
        """The barostat's target (eV/Å^3) from the next step on (ASE's ``pressure_au=``)."""
        if pressure is not None or pressure_au is None:
            raise TypeError("set_pressure: give pressure_au= (in eV/Å^3)")
        self._has("barostat", BAROSTATS)
        self._set("pressure_au", pressure=pressure_au)

    def set_taup(self, taup: float) -> None:
        self._has("barostat", BAROSTATS)
        self._set("taup", taup=taup)

    def set_compressibility(self, *, compressibility_au: float) -> None:
        self._has("Berendsen barostat", ("npt",))
        self._set("compressibility_au", compressibility=compressibility_au)

    @property
    def dt(self) -> float:
        return float(self.simulation.params.dt)

    @dt.setter
    def dt(self, value: float) -> None:
        """A new timestep from the next step on, as ASE's drivers read ``dyn.dt`` each step (a setting is
        an argument of the compiled step: no recompile)."""
        self._set("timestep", dt=value)

    def get_time(self) -> float:
        return self.nsteps * self.dt

    def get_number_of_steps(self) -> int:
        return self.nsteps

    def get_conserved_energy(self) -> float:
        """Total energy plus the thermostat's (and barostat's) energy, eV: constant for a good
        timestep (ASE's, for its Nosé-Hoover and MTK classes; for NVE the total energy)."""
        row = self.simulation.thermo()
        if "conserved" in row:
            return row["conserved"]
        self._has("conserved energy", ("nve",))  # Langevin and Berendsen exchange energy with a bath
        return row["etot"]

    def todict(self) -> dict:
        names = {"nve": "VelocityVerlet", "langevin": "Langevin", "nose-hoover": "NoseHooverChainNVT",
                 "npt": "NPTBerendsen", "npt-mtk": "IsotropicMTKNPT", "npt-mtk-cell": "MTKNPT"}  # fmt: skip
        return {"type": "molecular-dynamics", "md-type": names[self.simulation.ensemble], "timestep": self.dt}

    def attach(self, function, interval: int = 1, *args, **kwargs) -> None:
        """Call ``function(*args, **kwargs)`` as ASE's ``Dynamics.attach`` does: every ``interval``
        steps (and at step 0) for ``interval > 0``, once at step ``-interval`` for ``interval < 0``.
        Objects with a ``write`` method (an ASE Trajectory) are written to."""
        if not isinstance(function, Callable):
            function = function.write
        interval = _check_interval(interval)
        entry = (function, interval, args, kwargs)
        self.observers.append(entry)
        # Each callback stops the chunks only at its own steps (not at the gcd of all intervals).
        if interval > 0:

            def call(simulation):
                self._call(entry)

            self.simulation.attach(call, interval)
            self._engine_calls.append((entry, call))
        elif self.nsteps < -interval:  # ASE never calls it once its step has passed

            def once(simulation):
                self.simulation.detach(once)  # no more stops for it
                self._call(entry)

            self.simulation.attach(once, -interval)
            self._engine_calls.append((entry, once))

    def insert_observer(self, function, position: int = 0, interval: int = 1, *args, **kwargs) -> None:
        """ASE's ``insert_observer``: as ``attach``, but called at ``position`` among a step's observers."""
        self.attach(function, interval, *args, **kwargs)
        self.observers.insert(position, self.observers.pop())

    def _order_engine_calls(self) -> None:
        """The engine calls a step's observers in the order of ``dyn.observers``, as ASE does, also
        after an ``insert_observer`` or a reordering of that list."""
        rank = {id(entry): i for i, entry in enumerate(self.observers)}
        call_rank = {id(call): rank[id(entry)] for entry, call in self._engine_calls}
        self.simulation.observers.sort(key=lambda observer: call_rank.get(id(observer[0]), len(rank)))

    def _detach_removed(self) -> None:
        """Observers taken out of ``dyn.observers`` (ASE's way: ``dyn.observers.pop()``) stop being called."""
        kept = [id(entry) for entry in self.observers]
        for entry, call in list(self._engine_calls):
            if id(entry) not in kept:
                self.simulation.detach(call)
                self._engine_calls.remove((entry, call))

    def _call(self, entry) -> None:
        """One callback, on atoms that show the current step; edits it makes are adopted."""
        function, _, args, kwargs = entry
        self.nsteps = int(self.simulation.state.step)
        if self._written_step != self.nsteps:  # a callback before it at this step may have edited the atoms
            self._update_atoms()
        function(*args, **kwargs)
        self._adopt_edits()

    def _update_atoms(self) -> None:
        """Copy the state into ``self.atoms`` and prime the mlpot calculator's cache."""
        state = self.simulation.state
        atoms = self.atoms
        if atoms.pbc.any():
            atoms.set_cell(np.asarray(state.cell), scale_atoms=False)
        atoms.positions = np.asarray(state.positions)
        atoms.set_momenta(np.asarray(state.momenta))
        if atoms.calc is self._calc:
            atoms.calc.atoms = atoms.copy()
            energy = float(state.energy)
            atoms.calc.results = {"energy": energy, "free_energy": energy, "forces": np.asarray(state.forces)}
            if self.simulation.ensemble in BAROSTATS:  # only NPT computed the stress
                atoms.calc.results["stress"] = full_3x3_to_voigt_6_stress(np.asarray(state.stress))
        self._written_step = int(state.step)
        self._written = _snapshot(atoms)

    def _adopt_edits(self) -> None:
        """Restart the engine from the atoms if the user changed them since the last write (as ASE's
        drivers, which read the atoms every step, would continue from them): positions, momenta,
        masses, cell and constraints (a FixAtoms set between runs holds its atoms from then on)."""
        if not np.array_equal(self.atoms.pbc, self._written[-1]):
            raise ValueError("atoms.pbc changed since the driver was made: the neighbour list is built for the old; "
                             "make a new driver")  # fmt: skip
        calc = self.atoms.calc
        if calc is not self._calc and calc is not None:
            if not (isinstance(calc, Calculator) and same_model(calc.potential, self.potential)):
                raise ValueError(
                    f"atoms.calc was replaced by a {type(calc).__name__} of another model since the driver was made; "
                    "the driver runs its own model: make a new driver for the other"
                )
            self._calc = calc  # the same model: its cache is the one to keep current
        now = _snapshot(self.atoms)
        if all(np.array_equal(a, b) for a, b in zip(now, self._written)):
            return
        self.simulation.reset(self.atoms)  # refuses a changed number or kind of atoms
        self._update_atoms()

    def run(self, steps: int = 50) -> bool:
        self.max_steps = self.nsteps + steps
        self._adopt_edits()
        self._detach_removed()
        self._order_engine_calls()
        if not self._started and int(self.simulation.state.step) == 0:
            for entry in list(self.observers):  # step 0, as ASE: every periodic observer, once
                if entry[1] > 0:
                    self._call(entry)
        self._started = True
        try:
            self.simulation.run(steps)
        finally:
            self.nsteps = int(self.simulation.state.step)
            self._update_atoms()
        return True

    def irun(self, steps: int = 50):
        """ASE's generator form of ``run``: yields whether ``steps`` are done, before the first step
        and after each. One compiled call per step, so slower than ``run``: for loops that must see
        every step."""
        target = self.nsteps + steps
        self.run(0)  # edits adopted, the step-0 observers, the atoms current
        yield self.nsteps == target
        while self.nsteps < target:
            self.run(1)
            yield self.nsteps == target
        self.max_steps = target

    def close(self) -> None:
        """Close the files this driver opened (not a Trajectory or file object it was given)."""
        for writer in self._writers:
            writer.close()

    def __enter__(self):  # -> Self (typing.Self needs Python 3.11; we support 3.10)
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class _StreamLog(ThermoLog):
    """``ThermoLog``'s CSV on a stream the caller owns (``sys.stdout``, an open file): never closed."""

    def __init__(self, stream, with_pressure: bool, with_deviation: bool = False, with_conserved: bool = False):
        self._file, self.last_step = stream, -1
        self.with_pressure, self.with_deviation, self.with_conserved = with_pressure, with_deviation, with_conserved
        stream.write(",".join(self._columns()) + "\n")
        stream.flush()

    def close(self) -> None:
        self._file.flush()


def _snapshot(atoms: Atoms) -> tuple:
    """What the engine reads from the atoms (a change of numbers is refused by ``Simulation.reset``,
    a constraint it cannot apply by ``mobility``); pbc last (a change is refused, see ``_adopt_edits``)."""
    return (
        atoms.numbers.copy(),
        atoms.positions.copy(),
        atoms.get_momenta(),
        atoms.get_masses(),
        atoms.cell.array.copy(),
        mobility(atoms),
        atoms.pbc.copy(),
    )


def _check_interval(interval) -> int:
    whole = isinstance(interval, numbers.Real) and float(interval).is_integer()  # steps / 10 is a float
    if isinstance(interval, bool) or not whole:
        raise TypeError(f"interval: expected a whole number of steps, not {interval!r}")
    if interval == 0:
        raise ValueError("interval: 0 is not an interval; give n > 0 (every n steps) or -n (once, at step n)")
    return int(interval)


def _driver_potential(atoms: Atoms, potential) -> Potential:
    """The model to run: ``potential=``, else ``atoms.calc``'s; ``atoms.calc`` must agree with it."""
    calc = atoms.calc
    if potential is None:
        if not isinstance(calc, Calculator):
            raise ValueError("potential: give potential= or attach an mlpot.Calculator to the atoms")
        return calc.potential
    if not isinstance(potential, Potential):
        potential = load(potential)
    if calc is None:
        atoms.calc = Calculator(potential)  # callbacks read atoms.get_potential_energy(), as with ASE's drivers
    elif not (isinstance(calc, Calculator) and same_model(calc.potential, potential)):
        # Callbacks would read the other calculator's energies, or we would write ours into its cache.
        raise ValueError(
            f"potential: atoms.calc is a {type(calc).__name__} of another model; set atoms.calc = "
            "mlpot.Calculator(potential), or leave potential= out to run atoms.calc's model"
        )
    return potential
