"""A short real training run on the bundled ethanol DFT data lowers the validation force error."""

from __future__ import annotations

from pathlib import Path

from mlpot import data
from mlpot.potential import Potential
from mlpot.training import TrainConfig, evaluate
from mlpot.training.prepare import assemble
from mlpot.training.run import fit

ETHANOL = Path(__file__).resolve().parents[1] / "datasets" / "ethanol" / "train.xyz"


def test_short_training_lowers_validation_force_error(tmp_path):
    frames = data.read_frames(ETHANOL, index=":60")
    config = TrainConfig(
        train_file=str(ETHANOL),
        model={"name": "painn", "features": 8, "num_interactions": 1, "num_basis": 6},
        cutoff=4.0,
        batch_size=8,
        epochs=6,
        learning_rate=0.01,
        warmup_epochs=0.5,
        output_dir=str(tmp_path),
        progress=False,
        plots=False,
    )
    prepared = assemble(config, frames[:48], frames[48:])
    before, _ = evaluate(Potential.create(prepared.model_config, config.seed), prepared.valid, 8)
    result = fit(config, prepared)
    after = result.valid_metrics
    assert after["forces_mae"] < 0.7 * before["forces_mae"], (before["forces_mae"], after["forces_mae"])
    assert after["n_frames"] == 12
