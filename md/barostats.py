"""Barostats: steps that move the cell as well as the atoms, driven by the stress.

``berendsen_npt_step`` scales the cell towards the target pressure (equilibration, not an
ensemble); ``mtk_npt_step`` and ``mtk_cell_npt_step`` are Martyna-Tobias-Klein NPT with
Nosé-Hoover chains on the atoms and on the volume or the whole cell, with a conserved energy
(``barostat_energy``). Same contract as ``md.integrators``: pure steps over ``MDState``, every
number in ``Params``, any ``force_fn`` that also returns the stress. Pressures in eV/Å^3.
"""

from __future__ import annotations

import jax.numpy as jnp

from md.integrators import (
    ForceFn,
    MDState,
    Params,
    _chain_half,
    _drift,
    _forces,
    _kick,
    _nhc_half,
    degrees_of_freedom,
    kinetic_energy,
    temperature_kT,
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
