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
    assert small["forces_mae_H"] == small["forces_mae"]
    assert small["stress_mae"] == pytest.approx(0.01)
    # R² = 1 - SSE / SST on the per-structure energies (1 and 2: SST = 0.5)
    assert small["energy_r2"] == pytest.approx(1 - 0.25 / 0.5)
    assert "forces" in metrics.format_table(small)


def test_concatenating_batches_equals_one_pass():
    one = metrics.collect(*_batch(8, 3), (1,))
    two = metrics.summarise([one, one])
    assert two["n_frames"] == 4
    assert two["forces_mae"] == pytest.approx(metrics.summarise([one])["forces_mae"])
