"""The model-soup script averages parameters and keeps only what lowers the score."""

import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import ethanol, small_painn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples" / "benchmarks"))

import model_soup


def test_average_is_the_elementwise_mean_in_the_parameters_dtype():
    a, b = small_painn((1, 6, 8), seed=1), small_painn((1, 6, 8), seed=2)
    soup = model_soup.average([a, b])
    for x, y, m in zip(*(jax.tree_util.tree_leaves(p.params) for p in (a, b, soup))):
        assert m.dtype == x.dtype
        np.testing.assert_allclose(np.asarray(m), (np.asarray(x, np.float64) + np.asarray(y)) / 2, rtol=1e-6)
    # a soup of one model with itself is that model
    same = model_soup.average([a, a])
    assert float(same.predict(ethanol()).energy[0]) == pytest.approx(float(a.predict(ethanol()).energy[0]), rel=1e-6)


def test_average_refuses_models_of_other_configurations():
    a = small_painn((1, 6, 8))
    b = type(a)(a.config.replace(cutoff=a.config.cutoff + 1.0), a.params)
    with pytest.raises(ValueError, match="cutoff"):
        model_soup.average([a, b])


def test_greedy_keeps_an_ingredient_only_when_the_average_scores_lower():
    # Score = distance of the first parameter leaf's mean from a target: averaging 0 and 2 reaches 1.
    base = small_painn((1, 6, 8), seed=1)

    def shifted(value):
        return base.replace_params(jax.tree_util.tree_map(lambda x: x * 0 + value, base.params))

    def score(potential):
        return abs(float(np.mean(jax.tree_util.tree_leaves(potential.params)[0])) - 1.0)

    models = [shifted(0.0), shifted(2.0), shifted(5.0)]
    chosen, best, own = model_soup.greedy(models, score)
    assert own == pytest.approx([1.0, 1.0, 4.0])
    assert chosen == [0, 1] and best == pytest.approx(0.0)  # 5 would pull the mean to 7/3: refused


def test_the_loss_refuses_a_weighted_term_that_no_frame_labels(tmp_path):
    # read as 0, the stress term made --weights 100 10 1000 and 100 10 0 score the same on molecules
    import ase.io
    from ase.calculators.singlepoint import SinglePointCalculator

    model = small_painn((1, 6, 8))
    atoms = ethanol()
    atoms.calc = SinglePointCalculator(atoms, energy=-1.0, forces=np.zeros((len(atoms), 3)))
    ase.io.write(path := tmp_path / "valid.xyz", [atoms])
    loss, metrics = model_soup.validation_loss(model, path, (100.0, 10.0, 0.0))
    expected = 100 * metrics["energy_rmse_per_atom"] ** 2 + 10 * metrics["forces_rmse"] ** 2
    assert loss == pytest.approx(expected)
    with pytest.raises(ValueError, match="valid.xyz: no frame has a stress label, but its loss weight is above 0"):
        model_soup.validation_loss(model, path, (100.0, 10.0, 1000.0))
