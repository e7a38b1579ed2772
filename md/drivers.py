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

The engine behind every driver (potential, in-place updates, callbacks) is
``md.dynamics.Dynamics``.

ASE keywords without an equivalent here are refused by name (``TypeError``).
"""

from __future__ import annotations

import numbers

import ase.units
import numpy as np

from md.dynamics import Dynamics

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
    """The keywords every driver passes on (ASE's ``append_trajectory``; mlpot's safety stops
    ``max_temperature_K`` and ``min_distance``, e.g. for a collision cascade); any other is refused by name."""
    passed = ("append_trajectory", "max_temperature_K", "min_distance")
    mapped = {key: options.pop(key) for key in passed if key in options}
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
    if rng is None:  # neither: a fresh draw, as ASE's rng=None draws from np.random (seed= repeats a run)
        return int(np.random.randint(0, 2**31 - 1)) if seed is None else int(seed)
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

    ``rng`` (ASE's argument) only draws the ``seed`` of the device's noise; without either, the seed is
    drawn from ``np.random`` (as ASE's ``rng=None``), so two drivers do not repeat one noise.
    The centre of mass is not held fixed: ``fixcm`` defaults to False here (ASE: True) and True is refused.
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
            names={"taup": "pdamp"},
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
    temperature=None,
    *,
    temperature_K=None,
    pressure_au=None,
    taut=0.5e3 * ase.units.fs,
    taup=1e3 * ase.units.fs,
    compressibility_au=None,
    fixcm=False,
    potential=None,
    trajectory=None,
    logfile=None,
    loginterval=1,
    skin=0.5,
    **ase_options,
) -> Dynamics:
    """Isotropic Berendsen NPT, arguments as ``ase.md.nptberendsen.NPTBerendsen``: all but the timestep by
    keyword (``temperature_K=``, ``pressure_au=``, ``compressibility_au=``, ``taut=``, ``taup=``).

    ASE's third positional argument is its deprecated ``temperature`` in eV: a value there is refused, as
    by ``Langevin``. The centre of mass is not held fixed: ``fixcm`` defaults to False here (ASE: True) and
    True is refused. The forces sum to zero, so momenta with no net part
    (``ase.md.velocitydistribution.Stationary``) keep none, as ASE's fixcm would.
    """
    if temperature is not None:
        raise TypeError(
            f"md.NPTBerendsen: a third positional argument ({temperature!r}) is ASE's deprecated temperature in "
            "eV; give temperature_K= (in K)"
        )
    options = _ase_options("NPTBerendsen", ase_options)  # first: ASE's pressure= is named, not "missing"
    given = {"temperature_K": temperature_K, "pressure_au": pressure_au, "compressibility_au": compressibility_au}
    if missing := [name for name, value in given.items() if value is None]:
        raise TypeError(f"md.NPTBerendsen: missing {' and '.join(missing)}")
    _no_fixcm("NPTBerendsen", fixcm)
    settings = {
        "kT": ase.units.kB * temperature_K,
        "tdamp": taut,
        "pressure": pressure_au,
        "taup": taup,
        "compressibility": compressibility_au,
    }
    names = {"tdamp": "taut"}
    return Dynamics(
        atoms,
        "npt",
        timestep,
        potential,
        trajectory,
        logfile,
        loginterval,
        skin,
        settings=settings,
        names=names,
        **options,
    )
