"""Loss terms against hand-computed values; padding and unlabelled frames never count."""

from __future__ import annotations

import numpy as np
import pytest
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress

from mlpot import InputError, data
from mlpot.graph import pad_graph
from mlpot.physics import Predictions
from mlpot.training.loss import LossWeights, loss_terms, total_loss


def _batch(num_nodes, num_graphs):
    """Two structures: 2 atoms (energy, forces, stress labelled) and 1 atom (energy only)."""
    a = Atoms("HH", positions=[[0, 0, 0], [0, 0, 0.8]], cell=np.eye(3) * 3, pbc=True)
    b = Atoms("H", positions=[[0, 0, 0]])
    parts = [
        (a, np.zeros(2, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3))),
        (b, np.zeros(1, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros((0, 3))),
    ]
    graph = pad_graph(parts, num_nodes, 8, num_graphs)
    g, n = num_graphs, num_nodes
    labels = data.Labels(
        energy=np.r_[1.0, 2.0, np.zeros(g - 2)],
        forces=np.zeros((n, 3)),
        stress=np.zeros((g, 3, 3)),
        energy_mask=np.r_[True, True, np.zeros(g - 2, bool)],
        forces_mask=np.r_[True, False, np.zeros(g - 2, bool)],
        stress_mask=np.r_[True, False, np.zeros(g - 2, bool)],
    )
    rng = np.random.default_rng(0)
    pred = Predictions(
        energy=np.r_[1.4, 1.7, rng.normal(size=g - 2)],  # padding graphs get garbage: must not count
        forces=np.concatenate([[[0.1, -0.2, 0.3], [0.0, 0.0, 0.4], [9.0, 9.0, 9.0]], rng.normal(size=(n - 3, 3))]),
        stress=np.concatenate([np.full((1, 3, 3), 0.01), rng.normal(size=(g - 1, 3, 3))]),
        energies=np.zeros(n),
    )
    return pred, labels, graph


def test_mse_terms_match_hand_computed_values():
    pred, labels, graph = _batch(8, 3)
    terms = loss_terms(pred, labels, graph)
    # energy: ((1.4-1)/2)^2 = 0.04 and ((1.7-2)/1)^2 = 0.09 -> mean 0.065
    assert float(terms.energy) == pytest.approx(0.065)
    # forces: frame 0 only (frame 1 has no force label), 6 components
    assert float(terms.forces) == pytest.approx((0.01 + 0.04 + 0.09 + 0.16) / 6)
    assert float(terms.stress) == pytest.approx(1e-4)
    weights = LossWeights(2.0, 3.0, 5.0)
    expected = 2 * 0.065 + 3 * 0.3 / 6 + 5 * 1e-4
    assert float(total_loss(terms, weights)) == pytest.approx(expected)


def test_huber_is_mse_for_small_and_linear_for_large_errors():
    pred, labels, graph = _batch(8, 3)
    delta = 0.25
    terms = loss_terms(pred, labels, graph, kind="huber", delta=delta)
    huber = lambda x: x**2 if abs(x) <= delta else 2 * delta * (abs(x) - 0.5 * delta)
    assert float(terms.energy) == pytest.approx((huber(0.2) + huber(0.3)) / 2)
    assert float(terms.forces) == pytest.approx(sum(huber(x) for x in (0.1, 0.2, 0.3, 0.4)) / 6)
    with pytest.raises(ValueError, match="unknown loss"):
        loss_terms(pred, labels, graph, kind="l3")


def test_more_padding_changes_nothing():
    small = loss_terms(*_batch(8, 3))
    large = loss_terms(*_batch(20, 7))
    for a, b in zip(small, large):
        assert float(a) == pytest.approx(float(b), rel=1e-12)


def test_no_labelled_entries_gives_zero_not_nan():
    pred, labels, graph = _batch(8, 3)
    labels = labels._replace(stress_mask=np.zeros(3, bool), forces_mask=np.zeros(3, bool))
    terms = loss_terms(pred, labels, graph)
    assert float(terms.stress) == 0.0 and float(terms.forces) == 0.0


def test_padding_changes_neither_loss_nor_gradient_through_a_real_model(monkeypatch):
    """Same frames, padded to two very different capacities: identical loss and parameter gradients."""
    import jax
    from test_train_helpers import crystals, molecules, tiny_model

    from mlpot.physics import predict
    from mlpot.potential import ModelConfig, Potential

    images = molecules(2) + crystals(1)
    frames = [
        data.Frame(
            a,
            a.calc.results["energy"],
            a.calc.results["forces"],
            voigt_6_to_full_3x3_stress(a.calc.results["stress"]) if a.pbc.all() else None,
            "x",
        )
        for a in images
    ]
    species = data.species_of_frames(frames)
    dataset = data.prepare(frames, 3.0, species)
    potential = Potential.create(ModelConfig(tiny_model(monkeypatch), 3.0, species), seed=1)
    atom_energy_fn = potential.atom_energy_fn()

    def loss(params, graph, labels):
        terms = loss_terms(predict(atom_energy_fn, params, graph), labels, graph)
        return total_loss(terms, LossWeights(1.0, 10.0, 100.0))

    value_and_grad = jax.jit(jax.value_and_grad(loss))
    small = value_and_grad(potential.params, *data.collate(dataset, [0, 1, 2], 3))
    big = value_and_grad(potential.params, *data.collate(dataset._replace(typical_atoms=40.0), [0, 1, 2], 7))
    assert float(small[0]) == pytest.approx(float(big[0]), rel=1e-10)
    for a, b in zip(jax.tree_util.tree_leaves(small[1]), jax.tree_util.tree_leaves(big[1])):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_frame_weights_scale_each_entry_against_the_data_set_not_the_batch():
    pred, labels, graph = _batch(8, 3)
    weighted = loss_terms(pred, labels._replace(weight=np.r_[3.0, 1.0, 7.0]), graph)  # graph 2 is padding
    assert float(weighted.energy) == pytest.approx((3 * 0.04 + 1 * 0.09) / 2)  # divided by the 2 entries
    plain = loss_terms(pred, labels, graph)
    assert float(weighted.forces) == pytest.approx(3 * float(plain.forces))  # only frame 0 has forces
    assert float(weighted.stress) == pytest.approx(3 * float(plain.stress))
    ones = loss_terms(pred, labels._replace(weight=np.ones(3)), graph)
    for a, b in zip(ones, plain):
        assert float(a) == float(b)
    # a frame alone in its batch keeps its weight (the batch's own weight sum used to cancel it)
    alone = labels._replace(weight=np.r_[10.0, 1.0, 1.0], energy_mask=np.r_[True, False, False])
    assert float(loss_terms(pred, alone, graph).energy) == pytest.approx(10 * 0.04)


def test_config_type_weights_reach_the_training_frames_and_a_misspelt_type_is_refused():
    from test_train_helpers import molecules

    from mlpot.training.config import TrainConfig
    from mlpot.training.prepare import weighted

    images = molecules(3)
    for atoms, kind in zip(images, ("bulk", "Surface", "bulk")):
        atoms.info["config_type"] = kind
    frames = [data.Frame(a, a.calc.results["energy"], a.calc.results["forces"], None, "x") for a in images]
    config = TrainConfig(train_file="x.xyz", config_type_weights={"Surface": 10})
    # scaled to mean 1 over the training frames: only the ratio (10:1) counts, the loss keeps its size
    assert [f.weight for f in weighted(config, frames)] == pytest.approx([0.25, 2.5, 0.25])
    doubled = config.replace(config_type_weights={"Surface": 20, "bulk": 2})
    assert [f.weight for f in weighted(doubled, frames)] == [f.weight for f in weighted(config, frames)]
    _, labels = data.collate(data.prepare(weighted(config, frames), 3.0, (1, 6, 8)), [0, 1, 2], 4)
    assert labels.weight[:3].tolist() == pytest.approx([0.25, 2.5, 0.25])
    with pytest.raises(InputError, match=r"no training frame has config_type 'surface'.*\['Surface', 'bulk'\]"):
        weighted(config.replace(config_type_weights={"surface": 10}), frames)
    for bad in ({"Surface": 0}, {"Surface": "ten"}, [10]):
        with pytest.raises(ValueError, match="config_type_weights must map"):
            config.replace(config_type_weights=bad)
