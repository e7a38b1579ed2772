"""Metrics: hand-computed values, per-element errors, padding never enters."""

from __future__ import annotations

import numpy as np
import pytest
from test_loss import _batch

from mlpot.training import metrics


def test_metrics_hand_computed_and_padding_independent():
    species = (1,)
    small = metrics.summarise([metrics.collect(*_batch(8, 3), species)])
    large = metrics.summarise([metrics.collect(*_batch(20, 7), species)])
    assert small == pytest.approx(large, nan_ok=True)
    assert small["n_frames"] == 2
    assert small["energy_mae"] == pytest.approx((0.4 + 0.3) / 2)
    assert small["energy_rmse"] == pytest.approx(np.sqrt((0.16 + 0.09) / 2))
    assert small["energy_mae_per_atom"] == pytest.approx((0.2 + 0.3) / 2)
    assert small["forces_mae"] == pytest.approx(1.0 / 6)
    assert small["forces_rmse"] == pytest.approx(np.sqrt(0.3 / 6))
    assert small["stress_mae"] == pytest.approx(0.01)
    # R² = 1 - SSE / SST on the per-structure energies (1 and 2: SST = 0.5)
    assert small["energy_r2"] == pytest.approx(1 - 0.25 / 0.5)
    assert "forces" in metrics.format_table(small)


def test_errors_per_element():
    # The H2 frame's second atom relabelled as carbon: per-element errors come from each one's own atoms.
    pred, labels, graph = _batch(8, 3)
    graph = graph._replace(species=np.r_[0, 1, np.zeros(6, np.int32)].astype(graph.species.dtype))
    m = metrics.summarise([metrics.collect(pred, labels, graph, (1, 6))])
    assert m["forces_mae_H"] == pytest.approx((0.1 + 0.2 + 0.3) / 3)
    assert m["forces_rmse_H"] == pytest.approx(np.sqrt(0.14 / 3))
    assert m["forces_mae_C"] == pytest.approx(0.4 / 3)
    assert m["forces_rmse_C"] == pytest.approx(np.sqrt(0.16 / 3))
    assert m["forces_mae"] == pytest.approx(1.0 / 6)


def test_batches_of_different_sizes_pool_their_errors():
    # Pooled over all components, not a mean of the batch means: the second batch has 9 force
    # components (its one-atom frame is force-labelled too), the first 6.
    first = metrics.collect(*_batch(8, 3), (1,))
    pred, labels, graph = _batch(8, 3)
    second = metrics.collect(pred, labels._replace(forces_mask=np.r_[True, True, False]), graph, (1,))
    assert metrics.summarise([second])["forces_mae"] == pytest.approx(28.0 / 9)
    pooled = metrics.summarise([first, second])
    assert pooled["n_frames"] == 4
    assert pooled["forces_mae"] == pytest.approx((1.0 + 28.0) / 15)
    assert pooled["forces_rmse"] == pytest.approx(np.sqrt((0.3 + 0.3 + 243.0) / 15))
    assert pooled["energy_mae"] == pytest.approx((0.4 + 0.3) / 2)
