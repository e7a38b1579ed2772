"""A slab's stress normal to its vacuum gap equals its force virial; labels that break this are reported."""

from __future__ import annotations

import warnings
from pathlib import Path

import ase.io
import numpy as np
import pytest
from ase.build import bulk, fcc100
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator
from conftest import triclinic_si

from mlpot import data, stress_check


def _slab(seed: int, shift: float = 0.0):
    """A rattled (unrelaxed: nonzero sigma_nn) EMT Cu(100) slab, shifted along z so it may straddle the cell edge."""
    slab = fcc100("Cu", (2, 2, 4), vacuum=6.0)
    slab.pbc = True
    slab.rattle(0.05, seed=seed)
    slab.translate([0.0, 0.0, shift * slab.cell[2, 2]])
    slab.wrap()
    slab.calc = EMT()
    return slab


@pytest.mark.parametrize("shift", [0.0, 0.6])  # 0.6: the slab is split by the periodic boundary
def test_exact_potential_satisfies_the_identity(shift):
    slab = _slab(1, shift)
    forces, stress = slab.get_forces(), slab.get_stress(voigt=False)
    mismatch = stress_check.normal_stress_mismatch(slab, forces, stress)
    assert mismatch is not None and mismatch.axis == 2 and mismatch.gap > 8.0
    assert abs(mismatch.labelled) > 1e-3  # not trivially zero: the rattled slab pushes on its faces
    assert abs(mismatch.difference) < 1e-9


def test_triclinic_slab_and_bulk():
    slab = _slab(2)
    cell = slab.cell.array.copy()
    cell[1, 0] += 1.3  # a skewed in-plane cell (b tilted towards a): the normal is still a x b
    slab.set_cell(cell, scale_atoms=True)
    slab.calc = EMT()
    mismatch = stress_check.normal_stress_mismatch(slab, slab.get_forces(), slab.get_stress(voigt=False))
    assert abs(mismatch.difference) < 1e-9
    crystal = bulk("Cu", cubic=True) * 2
    crystal.rattle(0.05, seed=3)
    crystal.calc = EMT()
    assert stress_check.normal_stress_mismatch(crystal, crystal.get_forces(), crystal.get_stress()) is None


def _labelled(atoms, stress_offset=0.0):
    """A copy with stored labels; an isotropic offset (eV/Å^3) breaks the stress label only."""
    out = atoms.copy()
    stress = atoms.get_stress(voigt=True)
    stress[:3] += stress_offset
    out.calc = SinglePointCalculator(out, energy=atoms.get_potential_energy(), forces=atoms.get_forces(), stress=stress)
    return out


def test_read_frames_reports_and_optionally_drops_inconsistent_labels(tmp_path):
    path = tmp_path / "slabs.xyz"
    ase.io.write(path, [_labelled(_slab(4)), _labelled(_slab(5), 3e-3), _labelled(_slab(6), -5e-3)])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.read_frames(path, index="0")  # consistent: silent
    with pytest.warns(UserWarning, match=r"2 frame\(s\).*slabs.xyz, frame 2: field 'stress'") as record:
        kept = data.read_frames(path)
    assert "kept them" in str(record[0].message)
    assert all(frame.stress is not None for frame in kept)
    with pytest.warns(UserWarning, match="dropped those labels"):
        dropped = data.read_frames(path, inconsistent_stress="drop")
    assert [frame.stress is None for frame in dropped] == [False, True, True]
    assert all(frame.energy is not None and frame.forces is not None for frame in dropped)
    with pytest.raises(ValueError, match="inconsistent_stress"):
        data.read_frames(path, inconsistent_stress="ignore")


def test_mlearn_ge_slabs():
    """The real case: Ge surface slabs whose stress the forces contradict by up to 5 meV/Å^3."""
    path = Path(__file__).resolve().parents[1] / "datasets" / "mlearn-Ge-slabs" / "Ge_surfaces.xyz"
    with pytest.warns(UserWarning, match=r"4 frame\(s\).*frame 1: field 'stress': sigma_nn = -6.65"):
        frames = data.read_frames(path, inconsistent_stress="drop")
    assert len(frames) == 11 and frames[1].atoms.info["index_in_file"] == 163  # of mlearn's Ge_train.xyz
    assert all(f.atoms.info["config_type"] == "Surface" for f in frames)
    assert sum(f.stress is None for f in frames) == 4


def test_mlpot_stress_obeys_the_slab_identity(painn64):
    """Our autodiff stress (strain derivative) and forces satisfy it on a triclinic slab: labels from a
    fitted mlpot model never trip the check, and a broken stress path would."""
    slab = triclinic_si((2, 2, 2), seed=7)
    slab.center(vacuum=5.0, axis=2)
    prediction = painn64.predict(slab)
    forces, stress = np.asarray(prediction.forces)[: len(slab)], np.asarray(prediction.stress)[0]
    mismatch = stress_check.normal_stress_mismatch(slab, forces, stress)
    assert mismatch is not None and mismatch.gap >= 9.9
    assert abs(mismatch.labelled) > 1e-4
    assert abs(mismatch.difference) < 1e-9


def test_a_sound_stress_label_beside_constraint_zeroed_forces_is_not_dropped(tmp_path):
    # A surface slab with frozen bottom layers, its forces written after ASE zeroed the held atoms: the
    # force virial is wrong, not the stress, and inconsistent_stress: drop threw the stress label away.
    from ase.constraints import FixAtoms

    slab = _slab(7)
    slab.rattle(0.1, seed=8)  # far from relaxed: the held atoms' forces move sigma_nn by ~12 meV/Å^3
    stress = slab.get_stress(voigt=True)
    slab.set_constraint(FixAtoms(indices=range(8)))
    out = slab.copy()
    out.calc = SinglePointCalculator(out, energy=slab.get_potential_energy(), forces=slab.get_forces(), stress=stress)
    assert np.abs(out.get_forces()[:8]).max() == 0.0
    ase.io.write(path := tmp_path / "frozen.xyz", out)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (frame,) = data.read_frames(path, inconsistent_stress="drop")
    messages = [str(w.message) for w in caught]
    assert any("held by a constraint" in m for m in messages)
    assert not any("contradicts their own forces" in m for m in messages)
    assert frame.stress is not None
