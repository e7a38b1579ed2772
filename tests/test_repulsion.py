"""The ZBL core: exactly zero beyond its inner radii, smooth, forces/stress by autodiff, fit-neutral."""

import warnings

import numpy as np
import pytest
from ase import Atoms
from conftest import energy, finite_difference_stress, small_painn, triclinic_si

from mlpot import Potential
from mlpot.repulsion import radii_from_frames, zbl


def with_radii(potential, radius):
    n = len(potential.config.species)
    config = potential.config.replace(repulsion_radii=[[radius] * n] * n)
    return Potential(config, potential.params)


def test_zero_beyond_inner_radius_and_zbl_inside():
    base = small_painn((1, 8))
    core = with_radii(base, 1.0)
    far = Atoms("OH", positions=[[0, 0, 0], [1.2, 0, 0]])
    assert energy(core, far) == energy(base, far)  # bit for bit: the core adds an exact 0
    near = Atoms("OH", positions=[[0, 0, 0], [0.5, 0, 0]])
    added = energy(core, near) - energy(base, near)
    assert added == pytest.approx(literature_zbl(0.5, 8, 1), rel=1e-3)  # fully on below r_off - 0.3
    assert added > 5.0  # eV: a real wall


def literature_zbl(r, z1, z2):
    """ZBL written out from Ziegler, Biersack & Littmark (1985), not from mlpot's constants:
    e^2/(4 pi eps0) = 14.399645 eV Å, screening length 0.8854 a_0 / (Z1^0.23 + Z2^0.23), a_0 = 0.529177 Å.
    mlpot rounds 0.8854 a_0 to 0.46850 Å: 1e-4 relative at these distances."""
    x = r * (z1**0.23 + z2**0.23) / (0.8854 * 0.529177)
    terms = 0.18175 * np.exp(-3.1998 * x) + 0.50986 * np.exp(-0.94229 * x)
    terms += 0.28022 * np.exp(-0.4029 * x) + 0.02817 * np.exp(-0.20162 * x)
    return 14.399645 * z1 * z2 / r * terms


def test_smooth_switch_and_forces_are_gradients():
    base = small_painn((1, 8))
    core = with_radii(base, 1.0)
    pair = lambda d: Atoms("OH", positions=[[0, 0, 0], [d, 0, 0]])
    added = np.array([energy(core, pair(d)) - energy(base, pair(d)) for d in np.linspace(0.65, 1.05, 41)])
    # Continuous at both ends of the switch (r_off - 0.3 = 0.7 Å, r_off = 1.0 Å; a hard cut at r_off
    # would drop 4.8 eV there), no kink or step inside (second differences at 0.01 Å: 0.057 eV
    # measured, a step of any size that matters shows), and a wall: falling all the way.
    assert abs(energy(core, pair(0.999)) - energy(base, pair(0.999))) < 1e-5
    assert energy(core, pair(0.699)) - energy(base, pair(0.699)) == pytest.approx(float(zbl(0.699, 8, 1)), rel=1e-9)
    assert np.abs(np.diff(added, 2)).max() < 0.1
    assert np.all(np.diff(added) <= 0) and np.all(added[-5:] == 0)
    for d in (0.6, 0.8, 0.95):
        atoms = Atoms("OHH", positions=[[0, 0, 0], [d, 0.1, 0], [-0.3, 0.7, 0.2]])
        forces = np.asarray(core.predict(atoms).forces[:3])
        h = 1e-5
        for k in range(3):
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[1, k] += h
            minus.positions[1, k] -= h
            fd = -(energy(core, plus) - energy(core, minus)) / (2 * h)
            assert forces[1, k] == pytest.approx(fd, abs=1e-5 * max(1.0, abs(fd)))


def test_stress_includes_the_core():
    atoms = triclinic_si()
    atoms.positions[1] = atoms.positions[0] + [0.9, 0.3, 0.2]  # a pair well inside the core
    core = with_radii(small_painn((14,)), 2.0)
    stress = np.asarray(core.predict(atoms).stress[0])
    expected = finite_difference_stress(lambda a: energy(core, a), atoms)
    np.testing.assert_allclose(stress, expected, rtol=1e-5, atol=1e-6)


def test_radii_from_frames_sit_below_the_closest_pair():
    frames = [Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])]
    radii = radii_from_frames(frames, (1, 8))
    closest_hh = np.linalg.norm(frames[0].positions[1] - frames[0].positions[2])
    assert radii[0][1] == radii[1][0] == pytest.approx(0.96 - 0.1, abs=1e-3)
    assert radii[0][0] == pytest.approx(closest_hh - 0.1, abs=1e-3)
    assert radii[1][1] == pytest.approx(0.6 * 2 * 0.66, abs=1e-2)  # O-O never seen: covalent guess


def test_radii_stop_at_the_cutoff():
    # A core acts on listed edges only: one reaching past the cutoff would end in a step there.
    silicon = [Atoms("Si2", positions=[[0, 0, 0], [2.35, 0, 0]])]
    assert radii_from_frames(silicon, (14,))[0][0] == pytest.approx(2.25, abs=1e-3)
    assert radii_from_frames(silicon, (14,), cutoff=2.0)[0][0] == 2.0
    # a cutoff with more decimals than the file keeps: 2.34567 rounded to 2.3457 passed it, and the
    # model's own config refused the radii it had just fitted
    capped = radii_from_frames(silicon, (14,), cutoff=2.24567)[0][0]
    assert capped == 2.24567  # the cutoff itself, not 2.2457
    small_painn((14,), cutoff=2.24567).config.replace(repulsion_radii=[[capped]])
    config = small_painn((1, 8)).config  # cutoff 4 Å
    with pytest.raises(ValueError, match="repulsion_radii reach 4.5 Å, beyond the cutoff 4.0 Å"):
        config.replace(repulsion_radii=[[1.0, 4.5], [4.5, 1.0]])


def test_config_rejects_wrong_shape_and_asymmetric_or_negative_radii():
    config = small_painn((1, 8)).config
    with pytest.raises(ValueError, match="repulsion_radii"):
        config.replace(repulsion_radii=[[1.0]])
    for radii in ([[1.0, 0.8], [0.9, 1.0]], [[1.0, -0.1], [-0.1, 1.0]]):  # H-O's core would depend on the receiver
        with pytest.raises(ValueError, match="repulsion_radii must be symmetric and >= 0"):
            config.replace(repulsion_radii=radii)


def test_a_pair_far_closer_than_bonded_is_named_in_a_warning():
    # Two carbons 0.05 Å apart (an atom written twice) would pull the C-C core to the 0.3 Å floor.
    water = Atoms("OHH", positions=[[0, 0, 0], [0.96, 0, 0], [-0.24, 0.93, 0]])
    broken = Atoms("CCO", positions=[[0, 0, 0], [0.05, 0, 0], [1.4, 0, 0]])
    with pytest.warns(UserWarning, match=r"data.xyz, frame 1: atoms 0 \(C\) and 1 \(C\) are 0.050 Å apart"):
        radii_from_frames([water, broken], (1, 6, 8), names=["data.xyz, frame 0", "data.xyz, frame 1"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a sound frame says nothing
        radii_from_frames([water], (1, 8))


def test_a_broken_pair_is_named_beside_a_shorter_normal_bond():
    # Only each frame's single closest pair was checked: an O-H bond at 0.97 Å hid Si-Si at 1.0 Å
    # (half the Si-Si covalent sum is 1.11 Å), whose core then started from that broken pair.
    frame = Atoms("OHSiSi", positions=[[0, 0, 0], [0.97, 0, 0], [5, 0, 0], [6, 0, 0]])
    with pytest.warns(UserWarning, match=r"frame 0: atoms 2 \(Si\) and 3 \(Si\) are 1.000 Å apart"):
        radii_from_frames([frame], (1, 8, 14))
