"""ASE-style drivers: ``md.VelocityVerlet(atoms, timestep)``, ``md.Langevin(...)``, ...

Same argument conventions as ``ase.md`` (ASE 3.23+): ``timestep`` in ASE
time units (``0.5 * ase.units.fs``), ``temperature_K`` in K, ``friction`` in
1/ASE-time (as ``ase.md.Langevin``: e.g. ``0.01 / ase.units.fs``), ``tdamp``,
``taut``, ``taup`` in ASE time, ``pressure_au`` in eV/Å^3,
``compressibility_au`` in Å^3/eV. Momenta come from the atoms (set them with
``MaxwellBoltzmannDistribution`` first, as with ASE). ``trajectory`` is a file
name or an open ``ase.io.Trajectory`` (written to, left open); ``logfile`` a
file name, ``"-"`` (stdout) or an open file (the log is mlpot's CSV, not
ASE's table). ``with md.VelocityVerlet(...) as dyn:`` closes the files it opened.

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

ASE keywords without an equivalent here are refused by name (``TypeError``).
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

from md.forces import potential_forces
from md.integrators import BAROSTATS
from md.integrators import params as make_params
from md.io import ThermoLog, TrajectoryWriter, frame_atoms, log_columns, model_fingerprint
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
        chain_length: int = 3,
        append_trajectory: bool = False,
    ):
        potential = _driver_potential(atoms, potential)
        self.atoms, self.dt, self.potential = atoms, float(timestep), potential
        self._calc = atoms.calc  # the cache we prime; a calculator swapped in later is left alone
        self.forces = potential_forces(potential, atoms, skin, compute_stress=ensemble in BAROSTATS)
        params = make_params(dt=timestep, **(settings or {}))
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
        self.observers: list = []
        self.nsteps = 0
        self._writers = []  # files this driver opened, closed by close()
        self._update_atoms()  # from here on, edits to the atoms are detected against what was written
        if trajectory is not None:
            self._attach_trajectory(trajectory, loginterval, append_trajectory)
        if logfile is not None:
            self._attach_log(logfile, loginterval)

    def _attach_trajectory(self, trajectory, loginterval: int, append: bool) -> None:
        if isinstance(trajectory, Potential) or str(trajectory).endswith(".mlpot"):
            # The third positional argument was `potential` before it followed ASE's order: opening a
            # model file as a trajectory would overwrite it.
            raise TypeError(f"trajectory: {trajectory!r} is a model; pass it as potential=")
        if isinstance(trajectory, (str, os.PathLike)):
            writer = TrajectoryWriter(trajectory, append=append)
            writer.last_step = -1  # this run counts from step 0 again: append all its frames, as ASE does
            self._writers.append(writer)
        elif hasattr(trajectory, "write"):
            writer = trajectory  # the caller's open Trajectory: the caller closes it, as with ASE
        else:
            raise TypeError(f"trajectory: expected a file name or an open ase.io.Trajectory, not {trajectory!r}")
        npt = self.simulation.ensemble in BAROSTATS
        self.attach(lambda: writer.write(frame_atoms(self.atoms, self.simulation.state, npt)), loginterval)

    def _attach_log(self, logfile, loginterval: int) -> None:
        npt = self.simulation.ensemble in BAROSTATS
        if isinstance(logfile, (str, os.PathLike)) and str(logfile) != "-":
            log = ThermoLog(logfile, with_pressure=npt)
            self._writers.append(log)
        elif isinstance(logfile, str) or hasattr(logfile, "write"):
            log = _StreamLog(sys.stdout if isinstance(logfile, str) else logfile, with_pressure=npt)
        else:
            raise TypeError(f"logfile: expected a file name, '-' or an open file, not {logfile!r}")
        self.attach(lambda: log.write(self.simulation.thermo()), loginterval)

    @property
    def compile_count(self) -> int:
        return self.simulation.compile_count

    def get_time(self) -> float:
        return self.nsteps * self.dt

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
            self.simulation.attach(lambda simulation: self._call(entry), interval)
        elif self.nsteps < -interval:  # ASE never calls it once its step has passed

            def once(simulation):
                self.simulation.detach(once)  # no more stops for it
                self._call(entry)

            self.simulation.attach(once, -interval)

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
        drivers, which read the atoms every step, would continue from them)."""
        now = _snapshot(self.atoms)
        if all(np.array_equal(a, b) for a, b in zip(now, self._written)):
            return
        self.simulation.reset(self.atoms)  # refuses a changed number or kind of atoms
        self._update_atoms()

    def run(self, steps: int = 50) -> bool:
        self._adopt_edits()
        if self.nsteps == 0 and int(self.simulation.state.step) == 0:
            for entry in list(self.observers):  # step 0, as ASE: every periodic observer
                if entry[1] > 0:
                    self._call(entry)
        try:
            self.simulation.run(steps)
        finally:
            self.nsteps = int(self.simulation.state.step)
            self._update_atoms()
        return True

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

    def __init__(self, stream, with_pressure: bool):
        self._file, self.with_pressure, self.last_step = stream, with_pressure, -1
        stream.write(",".join(log_columns(with_pressure)) + "\n")
        stream.flush()

    def close(self) -> None:
        self._file.flush()


def _snapshot(atoms: Atoms) -> tuple:
    """What the engine reads from the atoms (a change of numbers is refused by ``Simulation.reset``)."""
    return (
        atoms.numbers.copy(),
        atoms.positions.copy(),
        atoms.get_momenta(),
        atoms.get_masses(),
        atoms.cell.array.copy(),
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
    elif not (isinstance(calc, Calculator) and _same_model(calc.potential, potential)):
        # Callbacks would read the other calculator's energies, or we would write ours into its cache.
        raise ValueError(
            f"potential: atoms.calc is a {type(calc).__name__} of another model; set atoms.calc = "
            "mlpot.Calculator(potential), or leave potential= out to run atoms.calc's model"
        )
    return potential


def _same_model(a: Potential, b: Potential) -> bool:
    return a is b or model_fingerprint(a) == model_fingerprint(b)


# ASE keywords with no equivalent here, and what to do instead.
_UNSUPPORTED = {
    "temperature": "give temperature_K= (in K)",
    "pressure": "give pressure_au= (in eV/Å^3)",
    "compressibility": "give compressibility_au= (in Å^3/eV)",
    "tloop": "the chain is integrated once per step (tloop=1)",
    "comm": "mlpot's MD runs in one process",
    "communicator": "mlpot's MD runs in one process",
}


def _ase_options(driver: str, options: dict) -> dict:
    """The ASE keywords every driver maps (``append_trajectory``); any other is refused by name."""
    mapped = {key: options.pop(key) for key in ("append_trajectory",) if key in options}
    for key in options:
        hint = _UNSUPPORTED.get(key, "it has no equivalent in mlpot's MD engine")
        raise TypeError(f"md.{driver}: unsupported keyword argument {key!r}: {hint}")
    return mapped


def _no_fixcm(driver: str, fixcm: bool) -> None:
    # ASE's default fixcm=True holds the centre of mass; this engine does not, so say so rather than ignore it.
    if fixcm:
        raise ValueError(f"fixcm: md.{driver} does not hold the centre of mass fixed; pass fixcm=False or leave it out")


def _check_chain(name: str, length, loop_name: str, loop) -> None:
    if isinstance(length, bool) or not isinstance(length, numbers.Integral) or length < 1:
        raise ValueError(f"{name}: the chain length must be an integer >= 1, not {length!r}")
    if loop != 1:
        raise ValueError(f"{loop_name}: only 1 is supported (the chain is integrated once per step), not {loop!r}")


def _seed(seed, rng) -> int:
    """``seed``, or one drawn from an ASE-style ``rng`` (its stream is not the device's: the noise
    differs from ASE's for the same rng, but the same rng state gives the same run)."""
    if rng is None:
        return 0 if seed is None else int(seed)
    if seed is not None:
        raise TypeError("seed: give seed= or rng=, not both")
    draw = getattr(rng, "integers", None) or getattr(rng, "randint", None)
    if draw is None:
        raise TypeError(f"rng: expected a numpy random Generator, not {type(rng).__name__}")
    return int(draw(0, 2**31 - 1))


def VelocityVerlet(
    atoms, timestep, trajectory=None, logfile=None, loginterval=1, *, potential=None, skin=0.5, **ase_options
) -> Dynamics:
    """NVE velocity Verlet, like ``ase.md.VelocityVerlet`` (same positional order; ours keyword-only)."""
    options = _ase_options("VelocityVerlet", ase_options)
    return Dynamics(atoms, "nve", timestep, potential, trajectory, logfile, loginterval, skin, **options)


def Langevin(
    atoms,
    timestep,
    temperature=None,
    friction=None,
    fixcm=False,
    *,
    temperature_K=None,
    potential=None,
    trajectory=None,
    logfile=None,
    loginterval=1,
    skin=0.5,
    seed=None,
    rng=None,
    **ase_options,
) -> Dynamics:
    """Langevin BAOAB; ``friction`` in 1/ASE-time like ``ase.md.Langevin`` (0.01/fs = ``0.01 / units.fs``).

    ``rng`` (ASE's argument) only draws the ``seed`` of the device's noise; ``seed`` defaults to 0.
    The centre of mass is not held fixed: ASE's default ``fixcm=True`` is refused, ``fixcm=False`` accepted.
    The target is ``temperature_K=``. ASE's third positional argument is its deprecated ``temperature``
    in eV: a value there is refused, since read as kelvin it would be a silently wrong target.
    """
    if temperature is not None:
        raise TypeError(
            f"md.Langevin: a third positional argument ({temperature!r}) is ASE's deprecated temperature in eV; "
            "give temperature_K= (in K)"
        )
    if temperature_K is None or friction is None:
        missing = [name for name, v in (("temperature_K", temperature_K), ("friction", friction)) if v is None]
        raise TypeError(f"md.Langevin: missing {' and '.join(missing)}")
    _no_fixcm("Langevin", fixcm)
    seed = _seed(seed, rng)
    options = _ase_options("Langevin", ase_options)
    settings = {"kT": ase.units.kB * temperature_K, "friction": friction}
    return Dynamics(
        atoms, "langevin", timestep, potential, trajectory, logfile, loginterval, skin, seed, settings, **options
    )


def NoseHooverChainNVT(
    atoms,
    timestep,
    temperature_K,
    tdamp,
    tchain=3,
    tloop=1,
    *,
    potential=None,
    trajectory=None,
    logfile=None,
    loginterval=1,
    skin=0.5,
    **ase_options,
) -> Dynamics:
    """Nosé-Hoover chain like ``ase.md.nose_hoover_chain.NoseHooverChainNVT``; tdamp ~ 100 dt.

    ``tchain`` is the chain length (3, as ASE); only ``tloop=1`` (ASE's default) is supported.
    """
    _check_chain("tchain", tchain, "tloop", tloop)
    options = _ase_options("NoseHooverChainNVT", ase_options)
    settings = {"kT": ase.units.kB * temperature_K, "tdamp": tdamp}
    return Dynamics(
        atoms,
        "nose-hoover",
        timestep,
        potential,
        trajectory,
        logfile,
        loginterval,
        skin,
        settings=settings,
        chain_length=int(tchain),
        **options,
    )


def _mtk_driver(ensemble: str, name: str, doc: str):
    """One ASE-style MTK driver: ``IsotropicMTKNPT`` and ``MTKNPT`` take the same arguments as ASE's."""

    def driver(
        atoms,
        timestep,
        temperature_K,
        pressure_au,
        tdamp,
        pdamp,
        tchain=3,
        pchain=3,
        tloop=1,
        ploop=1,
        *,
        potential=None,
        trajectory=None,
        logfile=None,
        loginterval=1,
        skin=0.5,
        **ase_options,
    ) -> Dynamics:
        chain = _mtk_chain(tchain, pchain, tloop, ploop)
        settings = {"kT": ase.units.kB * temperature_K, "tdamp": tdamp, "pressure": pressure_au, "taup": pdamp}
        options = _ase_options(name, ase_options)
        return Dynamics(
            atoms,
            ensemble,
            timestep,
            potential,
            trajectory,
            logfile,
            loginterval,
            skin,
            settings=settings,
            chain_length=chain,
            **options,
        )

    driver.__name__ = driver.__qualname__ = name
    driver.__doc__ = doc
    return driver


IsotropicMTKNPT = _mtk_driver(
    "npt-mtk",
    "IsotropicMTKNPT",
    """MTK NPT like ``ase.md.nose_hoover_chain.IsotropicMTKNPT``: tdamp ~ 100 dt, pdamp ~ 1000 dt.

    A true isothermal-isobaric ensemble (isotropic volume moves), unlike Berendsen's. The thermostat
    and barostat chains have one length (``tchain == pchain``); only ``tloop = ploop = 1`` (ASE's defaults).
    """,
)
MTKNPT = _mtk_driver(
    "npt-mtk-cell",
    "MTKNPT",
    """MTK NPT with the whole cell moving, like ``ase.md.nose_hoover_chain.MTKNPT`` (arguments as
    ``IsotropicMTKNPT``): the cell's shape relaxes too, against a hydrostatic ``pressure_au``.""",
)


def _mtk_chain(tchain, pchain, tloop, ploop) -> int:
    _check_chain("tchain", tchain, "tloop", tloop)
    _check_chain("pchain", pchain, "ploop", ploop)
    if tchain != pchain:
        raise ValueError(f"tchain and pchain must be equal here (one chain length), not {tchain} and {pchain}")
    return int(tchain)


def NPTBerendsen(
    atoms,
    timestep,
    temperature_K,
    pressure_au,
    compressibility_au,
    taut=0.5e3 * ase.units.fs,
    taup=1e3 * ase.units.fs,
    *,
    potential=None,
    trajectory=None,
    logfile=None,
    loginterval=1,
    skin=0.5,
    fixcm=False,
    **ase_options,
) -> Dynamics:
    """Isotropic Berendsen NPT, arguments as ``ase.md.nptberendsen.NPTBerendsen``.

    The centre of mass is not held fixed: ASE's default ``fixcm=True`` is refused, ``fixcm=False`` accepted.
    """
    _no_fixcm("NPTBerendsen", fixcm)
    options = _ase_options("NPTBerendsen", ase_options)
    settings = {
        "kT": ase.units.kB * temperature_K,
        "tdamp": taut,
        "pressure": pressure_au,
        "taup": taup,
        "compressibility": compressibility_au,
    }
    return Dynamics(
        atoms, "npt", timestep, potential, trajectory, logfile, loginterval, skin, settings=settings, **options
    )
