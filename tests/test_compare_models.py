"""The paired comparison scores the training loss per frame and resamples both models alike."""

import sys
from pathlib import Path

import numpy as np
import pytest
from ase.calculators.singlepoint import SinglePointCalculator
from ase.io import write
from conftest import small_painn, triclinic_si

from mlpot.training.evaluation import evaluate_files

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "benchmarks"))

import compare_models
import model_soup

WEIGHTS = (100.0, 10.0, 1000.0)


def _labelled_si(path, n_frames=5, with_stress=True):
    """Rattled triclinic Si cells of 2 and 8 atoms (frames of unequal size), labelled by a 'DFT'
    that is another small PaiNN: every label is a smooth function the models can be wrong about."""
    oracle = small_painn((14,), seed=7)
    frames = []
    for k in range(n_frames):
        atoms = triclinic_si((2, 2, 1) if k % 2 else (1, 1, 1), seed=10 + k)
        pred = oracle.predict(atoms)
        stress = np.asarray(pred.stress[0]) if with_stress else None
        atoms.calc = SinglePointCalculator(
            atoms, energy=float(pred.energy[0]), forces=np.asarray(pred.forces)[: len(atoms)], stress=stress
        )
        frames.append(atoms)
    write(path, frames, format="extxyz")
    return path


def test_per_frame_loss_over_all_frames_is_the_validation_loss(tmp_path):
    path = _labelled_si(tmp_path / "si.xyz")
    model = small_painn((14,), seed=1)
    errors = compare_models.FrameErrors(model, path, need_stress=True)
    everything = np.arange(len(errors.energy))
    assert errors.loss(everything, WEIGHTS) == pytest.approx(
        model_soup.validation_loss(model, path, WEIGHTS)[0], rel=1e-9
    )
    # a resample that draws one frame three times weighs its terms three times
    drawn = np.array([0, 0, 0, 1])
    by_hand = (
        WEIGHTS[0] * np.mean(errors.energy[drawn])
        + WEIGHTS[1] * errors.forces[drawn].sum() / errors.force_components[drawn].sum()
        + WEIGHTS[2] * errors.stress[drawn].sum() / 36
    )
    assert errors.loss(drawn, WEIGHTS) == pytest.approx(by_hand, rel=1e-12)
    metrics, _ = evaluate_files(model, path)
    assert errors.forces_mae(everything) == pytest.approx(metrics["forces_mae"], rel=1e-9)


def test_a_model_against_itself_is_a_ratio_of_one_in_every_draw(tmp_path):
    path = _labelled_si(tmp_path / "si.xyz")
    a = compare_models.FrameErrors(small_painn((14,), seed=1), path, need_stress=True)
    b = compare_models.FrameErrors(small_painn((14,), seed=2), path, need_stress=True)
    everything = np.arange(len(a.energy))
    for score in (lambda e, frames: e.loss(frames, WEIGHTS), lambda e, frames: e.forces_mae(frames)):
        np.testing.assert_allclose(compare_models.paired_bootstrap(a, a, score, draws=200), 1.0, rtol=1e-12)
        ratios = compare_models.paired_bootstrap(a, b, score, draws=2000)
        full = score(b, everything) / score(a, everything)
        assert ratios.min() < full < ratios.max() and not np.allclose(ratios, full)


def test_a_stress_weight_needs_a_stress_label_on_every_frame(tmp_path):
    path = _labelled_si(tmp_path / "si.xyz", with_stress=False)
    with pytest.raises(ValueError, match="si.xyz.*stress"):
        compare_models.FrameErrors(small_painn((14,), seed=1), path, need_stress=True)
    compare_models.FrameErrors(small_painn((14,), seed=1), path, need_stress=False)  # energy and forces suffice


def test_labels_under_other_names(tmp_path):
    # MACE-style REF_ names: the same errors once the keys are given
    path = _labelled_si(tmp_path / "si.xyz", with_stress=False)
    import ase.io

    renamed = []
    for atoms in ase.io.read(path, ":"):
        atoms.info["REF_energy"] = atoms.get_potential_energy()
        atoms.arrays["REF_forces"] = atoms.get_forces()
        atoms.calc = None
        renamed.append(atoms)
    write(tmp_path / "ref.xyz", renamed, format="extxyz")
    model = small_painn((14,), seed=1)
    plain = compare_models.FrameErrors(model, path, need_stress=False)
    named = compare_models.FrameErrors(model, tmp_path / "ref.xyz", False, ("REF_energy", "REF_forces", "stress"))
    np.testing.assert_allclose(named.forces, plain.forces, rtol=1e-9)
    np.testing.assert_allclose(named.energy, plain.energy, rtol=1e-9)


def test_too_few_draws_are_refused_before_any_model_is_read(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:  # 0 draws failed inside np.quantile
        compare_models.main([str(tmp_path / "none.xyz"), "a.mlpot", "b.mlpot", "--draws", "0"])
    assert stop.value.code == 2 and "--draws 0: give at least 100" in capsys.readouterr().err
