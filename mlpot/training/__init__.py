"""Fitting potentials to labelled frames: config, data preparation, loss, optimiser, loop, metrics, plots.

Python API::

    from mlpot.training import TrainConfig, train
    result = train(TrainConfig(train_file="datasets/ethanol/train.xyz", epochs=50, output_dir="runs/eth"))
    result.potential.save("ethanol.mlpot"); print(result.valid_metrics["forces_mae"])
"""

from mlpot.training.config import TrainConfig, from_dict, load, template
from mlpot.training.evaluation import evaluate_files
from mlpot.training.run import TrainResult, fit, train
from mlpot.training.trainer import evaluate

__all__ = ["TrainConfig", "TrainResult", "evaluate", "evaluate_files", "fit", "from_dict", "load", "template", "train"]
