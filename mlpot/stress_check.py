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


def _empty_intervals(atoms: Atoms, fractional: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per cell vector: perpendicular width (Å) of the largest atom-free interval, and its middle (fractional)."""
    cell = atoms.cell.array
    volume = abs(np.linalg.det(cell))
    widths, middles = np.zeros(3), np.zeros(3)
    for k in range(3):
        x = np.sort(fractional[:, k])
        steps = np.diff(np.append(x, x[0] + 1.0))
        j = int(np.argmax(steps))
        spacing = volume / np.linalg.norm(np.cross(*np.delete(cell, k, axis=0)))  # between lattice planes k
        widths[k], middles[k] = steps[j] * spacing, x[j] + 0.5 * steps[j]
    return widths, middles


def normal_stress_mismatch(
    atoms: Atoms, forces: np.ndarray, stress: np.ndarray, min_gap: float = MIN_VACUUM_GAP
) -> Mismatch | None:
    """The check for the widest gap of at least ``min_gap`` Å; None if the frame has none.

    ``stress`` is (3, 3) in eV/Å^3 with ASE's sign (sigma = (1/V) dE/d(eps)); ``forces`` (n, 3) in eV/Å.
    """
    if not all(atoms.pbc) or len(atoms) < 1:
        return None
    fractional = atoms.get_scaled_positions(wrap=True)
    widths, middles = _empty_intervals(atoms, fractional)
    axis = int(np.argmax(widths))
    if widths[axis] < min_gap:
        return None
    cell = atoms.cell.array
    normal = np.cross(*np.delete(cell, axis, axis=0))
    normal /= np.linalg.norm(normal)
    fractional[:, axis] = (fractional[:, axis] - middles[axis]) % 1.0  # the slab in one piece, not cut by the edge
    height = fractional @ cell @ normal
    height -= height.mean()  # DFT forces need not sum to zero: measure from the slab's middle
    forces = np.asarray(forces, np.float64)
    from_forces = float(-np.sum(height * (forces @ normal)) / abs(np.linalg.det(cell)))
    labelled = float(normal @ np.asarray(stress, np.float64) @ normal)
    return Mismatch(axis, float(widths[axis]), labelled, from_forces)
