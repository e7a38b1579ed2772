"""Integrators as pure ``init_fn`` / ``step_fn`` pairs over an immutable state.

They know nothing about ML: any ``force_fn(positions, cell, force_args) ->
(energy, forces, stress)`` drives them (a harmonic well, Lennard-Jones, a
network). ``force_args`` is an opaque pytree handed through unchanged (model
parameters and neighbour graph for a ``Potential``), and every numeric setting
lives in ``Params``: both are *arguments* of the jitted step, never closure
constants, so changing dt, temperature or weights never recompiles.

Units are ASE's: Å, amu, eV, time in ASE units (``ase.units.fs``), momenta in
amu·Å/time, kT in eV (``ase.units.kB * T_K``). Temperature counts ``Params.dof``
degrees of freedom, by default 3N as ``ase.Atoms.get_temperature`` does; a run
that holds the net momentum (and, in vacuum, the angular momentum) at zero moves
fewer, and a thermostat that counts 3N runs it hot by 3N/dof
(``md.simulation.moving_degrees_of_freedom``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

# Fourth-order Suzuki-Yoshida weights for the Nosé-Hoover chain propagator.
_SY4 = (1 / (2 - 2 ** (1 / 3)), -(2 ** (1 / 3)) / (2 - 2 ** (1 / 3)), 1 / (2 - 2 ** (1 / 3)))


class MDState(NamedTuple):
    positions: jnp.ndarray  # (N, 3) Å, unwrapped (never wrapped on device)
    momenta: jnp.ndarray  # (N, 3) amu Å / ASE time
    forces: jnp.ndarray  # (N, 3) eV/Å at ``positions``
    energy: jnp.ndarray  # () eV, potential energy at ``positions``
    stress: jnp.ndarray  # (3, 3) eV/Å^3, potential part; zeros unless the force_fn computes it
    masses: jnp.ndarray  # (N,) amu
    cell: jnp.ndarray  # (3, 3) Å, rows are lattice vectors
    key: jnp.ndarray  # (2,) uint32 PRNG key (Langevin noise)
    chain_positions: jnp.ndarray  # (M,) Nosé-Hoover chain eta (dimensionless)
    chain_momenta: jnp.ndarray  # (M,) Nosé-Hoover chain p_eta, eV·time
    step: jnp.ndarray  # () int, steps taken since the start of the run
    # MTK barostat (npt-mtk, npt-mtk-cell; zeros otherwise): the cell's momentum and its own chain.
    cell_momentum: jnp.ndarray  # (3, 3) p_g, eV·time; the isotropic barostat keeps it p_eps x identity
    cell_chain_positions: jnp.ndarray  # (M,) xi
    cell_chain_momenta: jnp.ndarray  # (M,) p_xi, eV·time
    # 1 where an atom may move along x, y, z; 0 where it is held (ASE's FixAtoms, FixCartesian).
    # A held component gets no kick and no Langevin noise, so its momentum stays the zero it starts at.
    mobile: jnp.ndarray  # (N, 3)


class Params(NamedTuple):
    """Every setting is a float64 scalar argument (unused ones are ignored)."""

    dt: float  # ASE time units
    kT: float = 0.0  # eV, target temperature
    friction: float = 0.0  # 1 / ASE time (Langevin)
    tdamp: float = 100.0  # ASE time, Nosé-Hoover chain / Berendsen thermostat time constant
    pressure: float = 0.0  # eV/Å^3, target pressure (NPT)
    taup: float = 1000.0  # ASE time, barostat time constant (Berendsen's taup, MTK's pdamp)
    compressibility: float = 0.0  # Å^3/eV, Berendsen barostat
    dof: float = 0.0  # degrees of freedom the thermostats hold and the temperature counts; 0: 3N (ASE's)


class Integrator(NamedTuple):
    init_fn: Callable  # (positions, momenta, masses, cell, key, force_args, chain_length=3) -> MDState
    step_fn: Callable  # (state, params, force_args) -> MDState
    refresh_fn: Callable  # (state, force_args) -> MDState with energy, forces, stress recomputed


ForceFn = Callable  # (positions (N,3), cell (3,3), force_args) -> (energy (), forces (N,3), stress (3,3))


def params(**values) -> Params:
    """``Params`` with every value a float64 array, so all ensembles share one compiled signature."""
    return Params(**{k: jnp.asarray(v, jnp.float64) for k, v in Params(**values)._asdict().items()})


def blank_state(positions, momenta, masses, cell, key, chain_length: int = 3, mobile=None) -> MDState:
    """A state whose energy, forces and stress are still zero (fill them with ``refresh``).

    ``mobile`` (N, 3) of 1 and 0 (default: every atom moves); held components' momenta are zeroed."""
    f64 = partial(jnp.asarray, dtype=jnp.float64)
    zeros = jnp.zeros(chain_length, jnp.float64)
    mobile = jnp.ones_like(f64(positions)) if mobile is None else f64(mobile)
    return MDState(
        f64(positions),
        f64(momenta) * mobile,
        jnp.zeros_like(f64(positions)),
        f64(0.0),
        jnp.zeros((3, 3), jnp.float64),
        f64(masses),
        f64(cell),
        jnp.asarray(key),
        zeros,
        zeros,
        jnp.asarray(0, jnp.int64),
        jnp.zeros((3, 3), jnp.float64),
        zeros,
        zeros,
        mobile,
    )


def refresh(force_fn: ForceFn, state: MDState, force_args) -> MDState:
    """Energy, forces and stress at the state's positions and cell."""
    energy, forces, stress = force_fn(state.positions, state.cell, force_args)
    return state._replace(energy=energy, forces=forces, stress=stress)


def init(force_fn: ForceFn, positions, momenta, masses, cell, key, force_args, chain_length: int = 3) -> MDState:
    return refresh(force_fn, blank_state(positions, momenta, masses, cell, key, chain_length), force_args)


def kinetic_energy(momenta, masses):
    """sum p^2 / 2m, eV."""
    return 0.5 * jnp.sum(momenta**2 / masses[:, None])


def degrees_of_freedom(params: Params, num_atoms: int):
    """``params.dof``, or 3N when it is 0."""
    return jnp.where(params.dof > 0, params.dof, 3.0 * num_atoms)


def temperature_kT(momenta, masses, dof=None):
    """kT (eV) from equipartition over ``dof`` degrees of freedom (None: 3N)."""
    return 2.0 * kinetic_energy(momenta, masses) / (3 * masses.shape[0] if dof is None else dof)


def _kick(state: MDState, dt) -> MDState:
    return state._replace(momenta=state.momenta + dt * state.forces * state.mobile)


def _drift(state: MDState, dt) -> MDState:
    return state._replace(positions=state.positions + dt * state.momenta / state.masses[:, None])


_forces = refresh


def nve_step(force_fn: ForceFn, state: MDState, params: Params, force_args) -> MDState:
    """Velocity Verlet: p += dt/2 F; r += dt p/m; F = F(r); p += dt/2 F."""
    state = _drift(_kick(state, 0.5 * params.dt), params.dt)
    state = _kick(_forces(force_fn, state, force_args), 0.5 * params.dt)
    return state._replace(step=state.step + 1)


def langevin_step(force_fn: ForceFn, state: MDState, params: Params, force_args) -> MDState:
    """BAOAB (Leimkuhler & Matthews 2013): exact Ornstein-Uhlenbeck O between half drifts.

    O: p <- c p + sqrt((1 - c^2) m kT) xi, c = exp(-friction dt). One force call per step.
    """
    key, noise_key = jax.random.split(state.key)
    dt = params.dt
    state = _drift(_kick(state, 0.5 * dt), 0.5 * dt)
    c = jnp.exp(-params.friction * dt)
    noise = jax.random.normal(noise_key, state.momenta.shape, jnp.float64)
    sigma = jnp.sqrt((1.0 - c**2) * state.masses[:, None] * params.kT) * state.mobile
    state = state._replace(momenta=c * state.momenta + sigma * noise, key=key)
    state = _drift(state, 0.5 * dt)
    state = _kick(_forces(force_fn, state, force_args), 0.5 * dt)
    return state._replace(step=state.step + 1)


def _chain_masses(params: Params, num_atoms: int, chain_length: int):
    """Q_0 = dof kT tdamp^2, Q_k = kT tdamp^2 (Martyna, Klein & Tuckerman 1992)."""
    q = params.kT * params.tdamp**2
    return jnp.concatenate([jnp.full(1, degrees_of_freedom(params, num_atoms) * q), jnp.full(chain_length - 1, q)])


def _chain_half(eta, p_eta, q, kT, momenta, twice_kinetic, target, delta):
    """exp(iL_NHC delta) for a Nosé-Hoover chain (eta, p_eta, masses q) on ``momenta``.

    ``twice_kinetic(momenta)`` is pushed toward ``target`` (dof kT); Suzuki-Yoshida order 4, one
    loop. Returns (momenta, eta, p_eta). The atoms' thermostat and MTK's barostat chain share it.
    """
    m = eta.shape[0]
    p_eta = list(p_eta)

    def update(j, momenta, d2, d4):
        if j < m - 1:
            p_eta[j] = p_eta[j] * jnp.exp(-d4 * p_eta[j + 1] / q[j + 1])
        g = twice_kinetic(momenta) - target if j == 0 else p_eta[j - 1] ** 2 / q[j - 1] - kT
        p_eta[j] = p_eta[j] + d2 * g
        if j < m - 1:
            p_eta[j] = p_eta[j] * jnp.exp(-d4 * p_eta[j + 1] / q[j + 1])

    for weight in _SY4:
        d = weight * delta
        for j in reversed(range(m)):
            update(j, momenta, d / 2, d / 4)
        eta = eta + d * jnp.stack(p_eta) / q
        momenta = momenta * jnp.exp(-d * p_eta[0] / q[0])
        for j in range(m):
            update(j, momenta, d / 2, d / 4)
    return momenta, eta, jnp.stack(p_eta)


def _nhc_half(state: MDState, params: Params, delta):
    """The atoms' chain: sum p^2/m held at dof kT."""
    n = state.masses.shape[0]
    q = _chain_masses(params, n, state.chain_positions.shape[0])
    p, eta, p_eta = _chain_half(
        state.chain_positions,
        state.chain_momenta,
        q,
        params.kT,
        state.momenta,
        lambda p: jnp.sum(p**2 / state.masses[:, None]),
        degrees_of_freedom(params, n) * params.kT,
        delta,
    )
    return state._replace(momenta=p, chain_positions=eta, chain_momenta=p_eta)


def nose_hoover_step(force_fn: ForceFn, state: MDState, params: Params, force_args) -> MDState:
    """Nosé-Hoover chain NVT: NHC(dt/2) · velocity Verlet · NHC(dt/2) (Tuckerman et al. 2006).

    Deterministic; conserves ``conserved_energy``. Same factorisation as
    ``ase.md.nose_hoover_chain.NoseHooverChainNVT`` with tloop=1.
    """
    state = _nhc_half(state, params, 0.5 * params.dt)
    state = nve_step(force_fn, state, params, force_args)
    return _nhc_half(state, params, 0.5 * params.dt)


def chain_energy(state: MDState, params: Params):
    """Energy of the Nosé-Hoover chain: dof kT eta_0 + kT sum eta_k + sum p_eta^2 / 2Q."""
    m, n = state.chain_positions.shape[0], state.masses.shape[0]
    q = _chain_masses(params, n, m)
    eta = state.chain_positions
    return (
        degrees_of_freedom(params, n) * params.kT * eta[0]
        + params.kT * jnp.sum(eta[1:])
        + jnp.sum(0.5 * state.chain_momenta**2 / q)
    )


def pressure(state: MDState):
    """Instantaneous pressure (eV/Å^3): -tr(stress)/3 + 2 KE / 3V (virial + ideal gas)."""
    volume = jnp.abs(jnp.linalg.det(state.cell))
    return -jnp.trace(state.stress) / 3 + 2 * kinetic_energy(state.momenta, state.masses) / (3 * volume)


def berendsen_npt_step(force_fn: ForceFn, state: MDState, params: Params, force_args) -> MDState:
    """Isotropic Berendsen NPT (Berendsen et al. 1984), one force call per step.

    Velocities scale by lambda = sqrt(1 + (T0/T - 1) dt/tdamp) (clipped to
    [0.9, 1.1] as ASE does); after the drift, positions and cell scale by
    mu = 1 - beta dt / (3 taup) (P0 - P), P from the stress of the previous
    step. Needs a force_fn that returns the stress. Not a true NPT ensemble
    (fluctuations are damped): use it to equilibrate density.
    """
    kT = temperature_kT(state.momenta, state.masses, degrees_of_freedom(params, state.masses.shape[0]))
    lam = jnp.clip(jnp.sqrt(1.0 + (params.kT / jnp.maximum(kT, 1e-300) - 1.0) * params.dt / params.tdamp), 0.9, 1.1)
    state = state._replace(momenta=state.momenta * lam)
    mu = 1.0 - params.compressibility * params.dt / (3 * params.taup) * (params.pressure - pressure(state))
    state = _drift(_kick(state, 0.5 * params.dt), params.dt)
    state = state._replace(positions=state.positions * mu, cell=state.cell * mu)
    state = _kick(_forces(force_fn, state, force_args), 0.5 * params.dt)
    return state._replace(step=state.step + 1)


def _exprel(x):
    """(e^x - 1)/x, NaN-safe at 0."""
    small = jnp.abs(x) < 1e-8
    return jnp.where(small, 1.0 + 0.5 * x, jnp.expm1(x) / jnp.where(small, 1.0, x))


def _cell_mass(params: Params, dof, isotropic: bool):
    """W = (dof + 3) kT pdamp^2 for the volume alone, (dof/3 + 1) kT pdamp^2 per cell component (ASE's, dof = 3N)."""
    return (dof + 3.0 if isotropic else dof / 3.0 + 1.0) * params.kT * params.taup**2


def _cell_dof(isotropic: bool) -> float:
    """The barostat's degrees of freedom: the volume's one, or the six of a symmetric cell momentum.

    ASE's MTKNPT counts 9, but a symmetric stress keeps p_g symmetric: its chain would then hold
    the six that move at 9/6 of the temperature (cell fluctuations too large).
    """
    return 1.0 if isotropic else 6.0


def _cell_chain_masses(params: Params, chain_length: int, isotropic: bool):
    """R_0 = 9 kT pdamp^2 for the volume (ASE's), 6 kT pdamp^2 for the cell; R_k = kT pdamp^2."""
    r = params.kT * params.taup**2
    first = 9.0 if isotropic else _cell_dof(isotropic)
    return jnp.concatenate([jnp.full(1, first * r), jnp.full(chain_length - 1, r)])


def _twice_cell_kinetic(p_g, w, isotropic: bool):
    """2 x the barostat's kinetic energy: p_eps^2/W for the volume (p_g = p_eps 1), sum p_g^2/W for the cell."""
    return jnp.sum(p_g**2) / (3.0 * w if isotropic else w)


def _cell_nhc_half(state: MDState, params: Params, delta, isotropic: bool):
    """The barostat's own chain: the volume's kinetic energy held at kT/2, or the cell's six at 6 kT/2."""
    r = _cell_chain_masses(params, state.cell_chain_positions.shape[0], isotropic)
    w = _cell_mass(params, degrees_of_freedom(params, state.masses.shape[0]), isotropic)
    p_g, xi, p_xi = _chain_half(
        state.cell_chain_positions,
        state.cell_chain_momenta,
        r,
        params.kT,
        state.cell_momentum,
        lambda p_g: _twice_cell_kinetic(p_g, w, isotropic),
        _cell_dof(isotropic) * params.kT,
        delta,
    )
    return state._replace(cell_momentum=p_g, cell_chain_positions=xi, cell_chain_momenta=p_xi)


def _cell_kick(state: MDState, params: Params, delta, isotropic: bool):
    """p_g += delta G, G = V (Pi - P0) + (sum p^2/m) / dof, Pi the pressure tensor (kinetic part included).

    The volume alone moves by the trace: p_eps += delta tr G (= 3V (P - P0) + (3/dof) sum p^2/m).
    """
    volume = jnp.abs(jnp.linalg.det(state.cell))
    dof = degrees_of_freedom(params, state.masses.shape[0])
    p_over_m = state.momenta / state.masses[:, None]
    internal = -state.stress + state.momenta.T @ p_over_m / volume
    eye = jnp.eye(3, dtype=state.cell.dtype)
    force = volume * (internal - params.pressure * eye) + jnp.sum(state.momenta * p_over_m) / dof * eye
    if isotropic:
        force = jnp.trace(force) * eye
    return state._replace(cell_momentum=state.cell_momentum + delta * force)


def _mtk_kick(state: MDState, params: Params, delta, isotropic: bool):
    """In p_g's eigenbasis: p <- p e^-x + delta F exprel(-x), x = (lambda + tr p_g / dof) delta / W."""
    dof = degrees_of_freedom(params, state.masses.shape[0])
    rates, axes = jnp.linalg.eigh(state.cell_momentum)
    x = (rates + jnp.trace(state.cell_momentum) / dof) * delta / _cell_mass(params, dof, isotropic)
    momenta = (state.momenta @ axes) * jnp.exp(-x) + delta * (state.forces @ axes) * _exprel(-x)
    return state._replace(momenta=momenta @ axes.T)


def _mtk_drift(state: MDState, params: Params, delta, isotropic: bool):
    """In p_g's eigenbasis: r <- r e^x + delta p/m exprel(x), cell rows <- rows e^x, x = lambda delta / W."""
    rates, axes = jnp.linalg.eigh(state.cell_momentum)
    x = rates * delta / _cell_mass(params, degrees_of_freedom(params, state.masses.shape[0]), isotropic)
    velocities = state.momenta / state.masses[:, None]
    positions = (state.positions @ axes) * jnp.exp(x) + delta * (velocities @ axes) * _exprel(x)
    return state._replace(positions=positions @ axes.T, cell=((state.cell @ axes) * jnp.exp(x)) @ axes.T)


def _mtk_step(isotropic: bool, force_fn: ForceFn, state: MDState, params: Params, force_args) -> MDState:
    half = 0.5 * params.dt
    state = _nhc_half(_cell_nhc_half(state, params, half, isotropic), params, half)
    state = _mtk_kick(_cell_kick(state, params, half, isotropic), params, half, isotropic)
    state = _forces(force_fn, _mtk_drift(state, params, params.dt, isotropic), force_args)
    state = _cell_kick(_mtk_kick(state, params, half, isotropic), params, half, isotropic)
    state = _cell_nhc_half(_nhc_half(state, params, half), params, half, isotropic)
    return state._replace(step=state.step + 1)


def mtk_npt_step(force_fn: ForceFn, state: MDState, params: Params, force_args) -> MDState:
    """Isotropic MTK NPT (Martyna, Tobias & Klein 1994): Nosé-Hoover chains on the atoms and on the volume.

    A true NPT ensemble, deterministic, with a conserved energy (``barostat_energy``); the
    factorisation of ``ase.md.nose_hoover_chain.IsotropicMTKNPT`` (tloop = ploop = 1), one force
    and stress call per step. The pressure includes the kinetic part (``pressure``). The cell
    keeps its shape: ``cell_momentum`` stays p_eps times the identity.
    """
    return _mtk_step(True, force_fn, state, params, force_args)


def mtk_cell_npt_step(force_fn: ForceFn, state: MDState, params: Params, force_args) -> MDState:
    """MTK NPT with the whole cell moving (shape and volume; ``ase.md.nose_hoover_chain.MTKNPT``).

    For crystals whose axes respond differently to pressure and temperature. The cell's momentum
    is a symmetric tensor driven by the stress tensor against a hydrostatic target ``pressure``;
    its chain counts its 6 components where ASE's counts 9 (``_cell_dof``), otherwise the same steps.
    """
    return _mtk_step(False, force_fn, state, params, force_args)


def barostat_energy(state: MDState, params: Params, isotropic: bool = True):
    """MTK's extra conserved terms: the barostat's kinetic energy + P0 V + its chain's energy."""
    m = state.cell_chain_positions.shape[0]
    w = _cell_mass(params, degrees_of_freedom(params, state.masses.shape[0]), isotropic)
    r = _cell_chain_masses(params, m, isotropic)
    volume = jnp.abs(jnp.linalg.det(state.cell))
    xi = state.cell_chain_positions
    chain = _cell_dof(isotropic) * params.kT * xi[0] + params.kT * jnp.sum(xi[1:])
    chain = chain + jnp.sum(0.5 * state.cell_chain_momenta**2 / r)
    return 0.5 * _twice_cell_kinetic(state.cell_momentum, w, isotropic) + params.pressure * volume + chain


STEPS = {
    "nve": nve_step,
    "langevin": langevin_step,
    "nose-hoover": nose_hoover_step,
    "npt": berendsen_npt_step,
    "npt-mtk": mtk_npt_step,
    "npt-mtk-cell": mtk_cell_npt_step,
}
BAROSTATS = ("npt", "npt-mtk", "npt-mtk-cell")  # they change the cell, from the stress
CHAINED = ("nose-hoover", "npt-mtk", "npt-mtk-cell")  # Nosé-Hoover chains: masses kT tdamp^2 need kT > 0
MTK = {"npt-mtk": True, "npt-mtk-cell": False}  # ensemble: isotropic (``barostat_energy``'s switch)


def integrator(ensemble: str, force_fn: ForceFn) -> Integrator:
    """jax-md style pair: ``init_fn(positions, momenta, masses, cell, key, force_args)``,
    ``step_fn(state, params, force_args)``. ``force_fn`` is code, so closing over it is fine."""
    if ensemble not in STEPS:
        raise ValueError(f"unknown ensemble {ensemble!r}; choose from {sorted(STEPS)}")
    return Integrator(partial(init, force_fn), partial(STEPS[ensemble], force_fn), partial(refresh, force_fn))
