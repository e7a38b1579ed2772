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
(``md.velocities.moving_degrees_of_freedom``).
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
