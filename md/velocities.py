"""How an MD run starts: Maxwell-Boltzmann momenta, held atoms, the degrees of freedom that move.

``thermal_start`` draws momenta at a temperature for a run of a given ensemble: zero net momentum,
zero spin for a molecule in vacuum under a deterministic ensemble (for a wire, periodic along one
cell vector only, zero spin about that axis), held components (ASE's FixAtoms,
FixCartesian) at rest, and the temperature over the degrees of freedom that move equal to the one
drawn. ``moving_degrees_of_freedom`` is that count, which thermostats need (``Params.dof``).
"""

from __future__ import annotations

import numpy as np
from ase import Atoms
from ase.constraints import FixAtoms, FixCartesian
from ase.md import velocitydistribution
from ase.md.velocitydistribution import Stationary


def check_masses(atoms: Atoms, where: str) -> None:
    """Masses (amu) finite and above zero: a negative one integrates uphill with a negative kinetic
    energy, silently wrong temperatures; a zero one divides by zero into NaN that blames the model."""
    masses = atoms.get_masses()
    bad = np.flatnonzero(~(np.isfinite(masses) & (masses > 0)))
    if len(bad):
        raise ValueError(
            f"{where}: atom(s) {bad[:10].tolist()} have mass(es) {masses[bad[:10]].tolist()} amu; MD needs finite "
            "masses above zero (ASE's standard masses unless the structure file's 'masses' column or set_masses "
            "gave these)"
        )


def maxwell_boltzmann(atoms: Atoms, temperature_K: float, seed: int) -> None:
    """Momenta drawn at ``temperature_K`` with zero total momentum (in place): one atom gets none."""
    # ASE 3.29 renamed MaxwellBoltzmannDistribution to thermalize_momenta (same arguments).
    draw = (
        getattr(velocitydistribution, "thermalize_momenta", None) or velocitydistribution.MaxwellBoltzmannDistribution
    )
    draw(atoms, temperature_K=temperature_K, rng=np.random.default_rng(seed))
    if len(atoms) == 1:
        # Zero net momentum leaves a lone atom at rest. ASE's Stationary rescales what is left back to
        # the drawn temperature: 0/0 gave NaN momenta, a rounding residue a random velocity and T.
        atoms.set_momenta(np.zeros((1, 3)))
        return
    Stationary(atoms)


# Their forces sum to zero and they scale all momenta alike, so the net momentum they start with they keep
# (Langevin's noise does not). With no periodic direction the torque is zero too.
CONSERVING = ("nve", "nose-hoover", "npt", "npt-mtk", "npt-mtk-cell")


def _is_zero(total, scale) -> bool:
    # 1e-6, not round-off's 1e-9: extxyz stores momenta to 8 decimals, so a zero net momentum read back
    # from a trajectory frame is ~1e-8 per axis (1e-9 of the sum of |p| for ethanol at 300 K). A drift
    # that small carries no energy; a real one (a flying molecule, an undrifted draw) is far above.
    return bool(np.linalg.norm(total) <= 1e-6 * scale)


def mobility(atoms: Atoms) -> np.ndarray:
    """(N, 3): 1 where an atom may move along x, y, z; 0 where ASE's FixAtoms or FixCartesian holds it.

    Other constraints are refused: moving atoms they should hold would be a wrong trajectory, not an
    approximation."""
    mobile = np.ones((len(atoms), 3))
    others = []
    for constraint in atoms.constraints:
        if isinstance(constraint, FixCartesian):  # mask: True where the component is held
            mobile[constraint.get_indices()] *= ~np.asarray(constraint.mask, bool)
        elif isinstance(constraint, FixAtoms):
            mobile[constraint.get_indices()] = 0.0
        else:
            others.append(type(constraint).__name__)
    if others:
        raise ValueError(
            f"the atoms carry ASE constraints {sorted(set(others))}, which mlpot's MD engine does not apply "
            "(it applies FixAtoms and FixCartesian); run constrained dynamics with ase.md and mlpot.Calculator, "
            "or remove them"
        )
    return mobile


def wire_axis(atoms: Atoms) -> np.ndarray | None:
    """The unit vector along the one periodic cell vector of a wire (pbc along one direction only), else None.

    Turning a wire about this axis maps it and its periodic images onto themselves, so the energy does
    not change and its angular momentum about the axis (through the centre of mass) is conserved."""
    if int(np.sum(atoms.pbc)) != 1:
        return None
    vector = atoms.cell.array[int(np.argmax(atoms.pbc))]
    return vector / np.linalg.norm(vector)


def moving_degrees_of_freedom(atoms: Atoms, ensemble: str) -> int:
    """The degrees of freedom that exchange energy in a run of ``ensemble`` from ``atoms``' momenta.

    3N, less 3 when the ensemble keeps a zero net momentum, less 3 more (2 for a diatomic) when,
    with no periodic direction, it keeps a zero angular momentum too, or less 1 more for a wire
    (``wire_axis``) whose spin about its axis is zero. A straight molecule of three
    or more atoms bends at once, so it counts 3N - 6 as well (and a straight wire 3N - 4). A
    thermostat that counts 3N for these would settle the moving ones at T·3N/dof.
    With atoms held (FixAtoms, FixCartesian) the count is the free components, less what the held
    ones cannot push back on (``_held_degrees_of_freedom``).
    Returns 0 (``Params``' "3N") where nothing is held, or for a lone atom.
    """
    mobile = mobility(atoms)
    if not mobile.all():
        return _held_degrees_of_freedom(atoms, mobile, ensemble)
    n = len(atoms)
    if ensemble not in CONSERVING or n < 2:
        return 0
    p = atoms.get_momenta()
    if not _is_zero(p.sum(axis=0), np.abs(p).sum()):
        return 0
    dof = 3 * n - 3
    r = atoms.positions - atoms.get_center_of_mass()
    spin, scale = np.cross(r, p).sum(axis=0), np.abs(r).sum() * np.abs(p).sum()
    axis = wire_axis(atoms)
    if not atoms.pbc.any() and _is_zero(spin, scale):
        dof -= 2 if n == 2 else 3
    elif axis is not None and _is_zero(spin @ axis, scale):
        dof -= 1
    return dof


def _held_degrees_of_freedom(atoms: Atoms, mobile: np.ndarray, ensemble: str) -> int:
    """The free components, less one per axis no atom is held along (the held components push back
    along their own axes only, so the net momentum along such an axis is kept) when that momentum is
    zero; for a molecule in vacuum free in two axes for every atom, less one more for the spin about
    the third when it is zero (the push-back, along that axis, has no torque about it)."""
    dof = int(mobile.sum())
    if ensemble not in CONSERVING:
        return dof
    free = mobile.all(axis=0)
    p = atoms.get_momenta()
    scale = np.abs(p).sum()
    dof -= sum(1 for axis in np.flatnonzero(free) if _is_zero(p[:, axis].sum(), scale))
    if free.sum() == 2 and not atoms.pbc.any():
        r = atoms.positions - atoms.get_center_of_mass()
        if _is_zero(np.cross(r, p).sum(axis=0)[np.argmin(free)], np.abs(r).sum() * scale):
            dof -= 1
    return dof


def _zero_rotation(atoms: Atoms, axis: np.ndarray | None = None) -> None:
    """Subtract the rigid spin w x r with I w = L (pseudo-inverse: ASE's ZeroRotation divides 0/0 on a line);
    about one unit ``axis`` only, w along it with (a·I·a) w = a·L (moves only the components
    perpendicular to it)."""
    m = atoms.get_masses()
    r = atoms.positions - atoms.get_center_of_mass()
    p = atoms.get_momenta()
    inertia = np.einsum("i,ij,ij->", m, r, r) * np.eye(3) - np.einsum("i,ij,ik->jk", m, r, r)
    spin = np.cross(r, p).sum(axis=0)
    if axis is None:
        omega = np.linalg.pinv(inertia, rcond=1e-8, hermitian=True) @ spin
    else:
        moment = axis @ inertia @ axis
        omega = (spin @ axis) / moment * axis if moment > 0 else np.zeros(3)
    atoms.set_momenta(p - m[:, None] * np.cross(omega, r))


def thermal_start(atoms: Atoms, ensemble: str, temperature_K: float, seed: int) -> int:
    """Maxwell-Boltzmann momenta for a run of ``ensemble`` (in place); returns its moving degrees of freedom.

    Zero net momentum; for a molecule in vacuum under a deterministic ensemble, zero angular
    momentum too (a rigid spin would hold kinetic energy no thermostat can reach), or, held along
    one axis, zero spin about that axis; for a wire (``wire_axis``), zero spin about its axis. The momenta are
    then scaled so the temperature over the moving degrees of freedom is the one drawn over the
    components that may move (3N where nothing is held).
    """
    mobile = mobility(atoms)
    maxwell_boltzmann(atoms, temperature_K, seed)
    if not mobile.all():
        atoms.set_momenta(atoms.get_momenta() * mobile, apply_constraint=False)
    # measured after the held components are zeroed (ASE's draw already zeroes them; counting them as
    # drawn started a half-held crystal at half the temperature): mobile.sum()/2 kT' for the T' drawn
    drawn = atoms.get_kinetic_energy()
    axis = wire_axis(atoms)
    if ensemble in CONSERVING and not atoms.pbc.any() and len(atoms) > 1:
        free = mobile.all(axis=0)
        if free.all():
            _zero_rotation(atoms)
        elif free.sum() == 2:  # held along one axis only: the spin about it is kept
            _zero_rotation(atoms, axis=np.eye(3)[int(np.argmin(free))])
    elif ensemble in CONSERVING and axis is not None and mobile.all() and len(atoms) > 1:
        _zero_rotation(atoms, axis=axis)
    dof = moving_degrees_of_freedom(atoms, ensemble)
    kinetic = atoms.get_kinetic_energy()
    if dof and kinetic > 0:
        atoms.set_momenta(atoms.get_momenta() * np.sqrt(drawn * dof / mobile.sum() / kinetic))
    return dof
