"""Is a frame's stress label consistent with its own forces? Checkable exactly across a vacuum gap.

For a slab (or wire, or molecule in a box) the periodic images across a vacuum gap do
not interact, so straining the cell along the gap's normal n only moves the atoms:

    dE/d(eps_nn) = sum_i dE/dr_i . n (r_i . n) = -sum_i (F_i . n)(r_i . n)

and the stress component sigma_nn = (1/V) dE/d(eps_nn) is fixed by the forces of the same
frame. Any potential with forces -dE/dr and stress (1/V) dE/d(eps) obeys this, so a label
that breaks it cannot be fitted: the stress term of the loss then pulls against the energy
and forces. Seen in practice, in the mlearn training sets: 4 of the 11 Ge slabs are 1.6 to 5.0 meV/Å^3 off
their own force virial, 6 of the 9 Mo slabs 1.1 to 1.7 (all of one sign), one Si slab 2.0
(the other 11 within 0.41), the 11 Li slabs within 0.2.

Only the normal component is checked: shears along the gap move the in-plane images too.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from ase import Atoms

MIN_VACUUM_GAP = 8.0  # Å of empty space (perpendicular) before a direction counts as non-interacting
TOLERANCE = 1.0e-3  # eV/Å^3 (0.16 GPa): DFT noise in the force virial of a slab stays well below


class Mismatch(NamedTuple):
    """sigma_nn of the label and of the force virial across the widest vacuum gap, eV/Å^3."""

    axis: int  # cell vector that spans the gap
    gap: float  # Å, perpendicular width of the empty region
    labelled: float  # n . stress . n
    from_forces: float  # -(1/V) sum_i (F_i . n)(r_i . n)

    @property
    def difference(self) -> float:
        return self.labelled - self.from_forces


def vacuum_gaps(atoms: Atoms) -> np.ndarray:
    """(3,) perpendicular width (Å) of the largest atom-free slab along each cell vector."""
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    fractional = atoms.get_scaled_positions(wrap=True)
    gaps = np.zeros(3)
    for k in range(3):
        x = np.sort(fractional[:, k])
        largest = np.max(np.diff(np.append(x, x[0] + 1.0)))
        others = np.delete(cell, k, axis=0)
        gaps[k] = largest * volume / np.linalg.norm(np.cross(*others))  # interplanar spacing of planes k
    return gaps


def normal_stress_mismatch(
    atoms: Atoms, forces: np.ndarray, stress: np.ndarray, min_gap: float = MIN_VACUUM_GAP
) -> Mismatch | None:
    """The check for the widest gap of at least ``min_gap`` Å; None if the frame has none.

    ``stress`` is (3, 3) in eV/Å^3 with ASE's sign (sigma = (1/V) dE/d(eps)); ``forces`` (n, 3) in eV/Å.
    """
    if not all(atoms.pbc) or len(atoms) < 1:
        return None
    gaps = vacuum_gaps(atoms)
    axis = int(np.argmax(gaps))
    if gaps[axis] < min_gap:
        return None
    cell = atoms.cell.array
    normal = np.cross(*np.delete(cell, axis, axis=0))
    normal /= np.linalg.norm(normal)
    fractional = atoms.get_scaled_positions(wrap=True)
    x = np.sort(fractional[:, axis])
    widths = np.diff(np.append(x, x[0] + 1.0))
    middle = x[np.argmax(widths)] + 0.5 * np.max(widths)
    fractional[:, axis] = (fractional[:, axis] - middle) % 1.0  # the slab in one piece, not split by the boundary
    height = fractional @ cell @ normal
    height -= height.mean()  # DFT forces need not sum to zero: measure from the slab's middle
    forces = np.asarray(forces, np.float64)
    from_forces = float(-np.sum(height * (forces @ normal)) / abs(np.linalg.det(cell)))
    labelled = float(normal @ np.asarray(stress, np.float64) @ normal)
    return Mismatch(axis, float(gaps[axis]), labelled, from_forces)
