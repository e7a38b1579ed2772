"""The training loop: resume == uninterrupted, bounded compiles, budgets, schedules, outputs."""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest
from ase import Atoms
from ase.stress import voigt_6_to_full_3x3_stress
from flax import serialization
from test_train_helpers import crystals, molecules, register_tiny, tiny_model

from mlpot import data, load
from mlpot.graph import bucket_size
from mlpot.modelfile import from_bytes
from mlpot.training import TrainConfig
from mlpot.training import run as run_mod
from mlpot.training.checkpoint import read_payload, write_payload
from mlpot.training.optim import PlateauState
from mlpot.training.prepare import assemble, describe
from mlpot.training.run import build, fit
from mlpot.training.trainer import run_epoch, weights_at


@pytest.fixture(autouse=True)
def _tiny_model(monkeypatch):
    tiny_model(monkeypatch)


def _frames(n_mol=14, n_cryst=4, uniform=True):
    """Training frames first, then 2 validation frames, then 2 more training frames (see ``_prepared``).

    ``uniform``: all molecules CH4 and all crystals 2-atom Si, so batches fall in few shapes (fast tests)."""
    if uniform:
        images = molecules(n_mol, names=("CH4",)) + crystals(n_cryst, sizes=(1,))
    else:
        images = molecules(n_mol) + crystals(n_cryst)
    return [
        data.Frame(
            a,
            a.calc.results["energy"],
            a.calc.results["forces"],
            a.calc.results.get("stress") if a.pbc.all() else None,
            f"synthetic {k}",
        )
        for k, a in enumerate(images)
    ]


def _config(tmp_path, name="run", **changes):
    values = {
        "train_file": "unused.xyz",
        "model": {"name": register_tiny()},
        "cutoff": 3.0,
        "batch_size": 4,
        "epochs": 3,
        "learning_rate": 0.01,
        "warmup_epochs": 0.5,
        "output_dir": str(tmp_path / name),
        "progress": False,
    }
    values.update(changes)
    return TrainConfig(**values)


def _prepared(config, frames):
    # stress labels in ASE's Voigt form -> 3x3, as read_frames does
    frames = [f._replace(stress=voigt_6_to_full_3x3_stress(f.stress) if f.stress is not None else None) for f in frames]
    return assemble(config, frames[:-4] + frames[-2:], frames[-4:-2])


def _saved_state(out, name="last.ckpt"):
    payload = read_payload(out / "checkpoints" / name)
    return payload["state"], json.loads(payload["progress"])


def test_resume_equals_uninterrupted(tmp_path):
    frames = _frames(n_mol=16, n_cryst=0)  # 16 CH4: 14 train, 2 valid
    straight = _config(tmp_path, "straight", epochs=2)
    fit(straight, _prepared(straight, frames))
    killed = _config(tmp_path, "killed", epochs=2)
    first = fit(killed, _prepared(killed, frames), stop_after=1)
    assert len(first.history) == 1
    after_one, _ = _saved_state(tmp_path / "killed")
    resumed = fit(killed, _prepared(killed, frames), resume=True)
    assert [row["epoch"] for row in resumed.history] == [1, 2]
    a, progress_a = _saved_state(tmp_path / "straight")
    b, progress_b = _saved_state(tmp_path / "killed")
    assert int(a["step"]) == int(b["step"]) == 2 * 4  # 14 training frames / batch 4 -> 4 steps per epoch
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(leaves_a) == len(leaves_b) > 3
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_array_equal(x, y)  # params, optimiser moments, EMA: bit for bit
    assert progress_a["history"][-1]["valid_loss"] == progress_b["history"][-1]["valid_loss"]
    # and the second epoch did something: the parameters moved on from the first
    moved = jax.tree_util.tree_leaves(after_one["params"])
    assert not all(np.allclose(x, y) for x, y in zip(moved, jax.tree_util.tree_leaves(a["params"])))


@pytest.mark.parametrize("finite_loss", [False, True], ids=["nan_loss", "nan_after_the_last_step"])
def test_a_diverged_epoch_leaves_the_last_finite_state_to_resume_from(tmp_path, monkeypatch, capsys, finite_loss):
    # finite_loss: the epoch's last update overflowed after the losses it averages were computed
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, "run", epochs=3)
    real = run_mod.run_epoch

    def diverge_in_epoch_2(loop, state, epoch, *args):
        state, row = real(loop, state, epoch, *args)
        if epoch == 1:  # as a too-high learning rate does: NaN parameters (and loss)
            state = jax.tree_util.tree_map(lambda x: x * np.nan if x.dtype.kind == "f" else x, state)
            row = row if finite_loss else {**row, "train_loss": float("nan")}
        return state, row

    monkeypatch.setattr(run_mod, "run_epoch", diverge_in_epoch_2)
    result = fit(config, _prepared(config, frames))
    assert result.stop_reason.startswith("diverged") and "diverged (non-finite" in capsys.readouterr().out
    assert "in epoch 2" in result.stop_reason
    saved, progress = _saved_state(tmp_path / "run")
    assert progress["epoch"] == 1 and [row["epoch"] for row in progress["history"]] == [1]
    assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(saved) if np.asarray(x).dtype.kind == "f")
    monkeypatch.setattr(run_mod, "run_epoch", real)
    resumed = fit(config, _prepared(config, frames), resume=True)  # e.g. with a lower learning_rate
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3]
    assert all(np.isfinite(row["train_loss"]) for row in resumed.history)


def test_a_first_epoch_that_diverges_leaves_its_start_to_resume_from(tmp_path, monkeypatch):
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, "run", epochs=2)
    real = run_mod.run_epoch

    def diverge(loop, state, epoch, *args):
        state, row = real(loop, state, epoch, *args)
        return jax.tree_util.tree_map(lambda x: x * np.nan if x.dtype.kind == "f" else x, state), row

    monkeypatch.setattr(run_mod, "run_epoch", diverge)
    assert "in epoch 1" in fit(config, _prepared(config, frames)).stop_reason
    saved, progress = _saved_state(tmp_path / "run")  # there was no checkpoint to resume from
    assert progress["epoch"] == 0 and int(saved["step"]) == 0
    monkeypatch.setattr(run_mod, "run_epoch", real)
    assert [row["epoch"] for row in fit(config, _prepared(config, frames), resume=True).history] == [1, 2]


def test_a_fresh_run_that_finds_no_best_model_keeps_its_own_not_an_older_one(tmp_path, monkeypatch):
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, "run", epochs=1)
    fit(config, _prepared(config, frames))
    model = tmp_path / "run" / "model.mlpot"
    run_mod.save(load(model), model, extra={"epoch": 1, "marked": True})  # an older run's model in the folder
    real = run_mod.run_epoch

    def nan_loss(*args):
        state, row = real(*args)
        return state, {**row, "train_loss": float("nan")}

    monkeypatch.setattr(run_mod, "run_epoch", nan_loss)
    fit(config, _prepared(config, frames))  # the Python API does not refuse a used folder
    assert "marked" not in from_bytes(model.read_bytes())[1]


def test_a_resume_with_another_batch_size_keeps_its_place_in_the_schedule(tmp_path):
    # The cosine runs on epochs: counted in optimiser steps, 3 epochs at 4 steps each read as 6 of the
    # 6 epochs at batch 8 (2 steps each), and the rest of the run sat at the floor.
    frames = _frames(n_mol=16, n_cryst=0)  # 14 training frames
    common = {"epochs": 6, "warmup_epochs": 0.0, "learning_rate": 0.01}
    straight = fit(_config(tmp_path, "straight", **common), _prepared(_config(tmp_path, "straight"), frames))
    first = _config(tmp_path, "run", **common)
    fit(first, _prepared(first, frames), stop_after=3)
    wider = _config(tmp_path, "run", batch_size=8, **common)
    resumed = fit(wider, _prepared(wider, frames), resume=True)
    lr = [row["lr"] for row in resumed.history]
    lr_straight = [row["lr"] for row in straight.history]
    assert lr[:3] == lr_straight[:3]
    # each epoch's logged rate is that of its last step: of 2 at batch 8, of 4 at batch 4
    from mlpot.training.optim import learning_rate

    expected = [learning_rate(wider, e * 2 + 1, 2, PlateauState(1.0, np.inf, 0)) for e in (3, 4, 5)]
    assert lr[3:] == pytest.approx(expected, rel=1e-12)
    assert lr[3] == pytest.approx(lr_straight[3], rel=0.3) and lr[3] > lr[4] > lr[5] > wider.learning_rate * 1e-3


def test_a_resume_compiles_its_step_as_often_as_a_straight_run(tmp_path):
    # a checkpoint read back as numpy arrays compiled the step once for them and again for jax arrays
    frames = _frames(n_mol=16, n_cryst=0)
    straight = _config(tmp_path, "straight", epochs=3)
    compiles = fit(straight, _prepared(straight, frames)).compiles
    killed = _config(tmp_path, "killed", epochs=3)
    fit(killed, _prepared(killed, frames), stop_after=1)
    assert fit(killed, _prepared(killed, frames), resume=True).compiles == compiles


def test_a_resume_killed_before_its_first_write_still_chooses_the_best_model_afresh(tmp_path):
    # config.yaml is rewritten at the start of the resume: the reset of the choice must reach the
    # checkpoint first, or a second resume would see no change and keep stage one's best loss.
    frames = _frames()
    first = _config(tmp_path, epochs=2, loss="huber", huber_delta=0.01)
    fit(first, _prepared(first, frames))
    second = _config(tmp_path, epochs=4, loss="mse")
    fit(second, _prepared(second, frames), resume=True, stop_after=0)  # killed before any epoch ended
    result = fit(second, _prepared(second, frames), resume=True)
    _assert_best_is_a_resumed_epoch(result, tmp_path / "run")


def test_a_corrupt_best_checkpoint_does_not_block_a_resume_from_an_intact_last_one(tmp_path):
    # best.ckpt only tells the resume what loss to beat: refusing the run (and advising a start over)
    # would throw away an intact last.ckpt
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, epochs=2)
    fit(config, _prepared(config, frames), stop_after=1)
    best = tmp_path / "run" / "checkpoints" / "best.ckpt"
    best.write_bytes(best.read_bytes()[:-100])
    with pytest.warns(UserWarning, match=r"best.ckpt: corrupt or truncated checkpoint .*: ignored, the run resumes"):
        result = fit(config, _prepared(config, frames), resume=True)
    assert [row["epoch"] for row in result.history] == [1, 2]


def test_resume_refuses_a_new_cutoff_or_split_and_allows_a_new_budget(tmp_path):
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, "run", epochs=1)
    fit(config, _prepared(config, frames))
    refused = (
        ({"cutoff": 3.5}, "cutoff 3.0 -> 3.5"),
        ({"valid_fraction": 0.2}, "valid_fraction"),
        ({"seed": 1}, r"split seed \(split_seed, else seed\) 0 -> 1"),
        ({"split_seed": 2}, "split seed .* 0 -> 2"),
        ({"repulsion": False}, "repulsion True -> False"),  # the checkpoint's ZBL core would stay
        ({"amsgrad": True}, "amsgrad False -> True"),  # the optimiser state has another shape
        ({"clip_grad_norm": None}, "clip_grad_norm 10.0 -> None"),
        ({"optimizer": "adamw", "weight_decay": 0.01}, "optimizer 'adam' -> 'adamw'; weight_decay"),
    )
    for changes, named in refused:
        changed = _config(tmp_path, "run", epochs=2, **changes)
        with pytest.raises(ValueError, match=f"--resume .*run: {named}.*put these back"):
            fit(changed, _prepared(changed, frames), resume=True)
    longer = _config(tmp_path, "run", epochs=2, learning_rate=0.001, max_time=5.0, clip_grad_norm=5.0)  # values may
    assert [row["epoch"] for row in fit(longer, _prepared(longer, frames), resume=True).history] == [1, 2]


def test_a_resume_of_a_run_that_spent_its_time_trains_no_more_and_mends_a_short_csv(tmp_path):
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, "run", epochs=2)
    fit(config, _prepared(config, frames))
    _, progress = _saved_state(tmp_path / "run")
    last = progress["history"][-1]["time_s"] - progress["history"][-2]["time_s"]
    csv_path = tmp_path / "run" / "metrics.csv"
    csv_path.write_text("\n".join(csv_path.read_text().splitlines()[:2]) + "\n")  # killed before the CSV write
    # a budget that the next epoch (as long as the last) would overrun: no epoch at the floor rate
    spent = _config(tmp_path, "run", epochs=10, max_time=(progress["elapsed"] + 0.5 * last) / 60.0)
    result = fit(spent, _prepared(spent, frames), resume=True)
    assert result.stop_reason.startswith("time budget") and len(result.history) == 2
    assert len(csv_path.read_text().splitlines()) == 1 + 2


def _assert_best_is_a_resumed_epoch(result, out):
    """Epochs 1-2 ran under another loss, whose values are all below the new ones: model.mlpot must
    still be the best of the resumed epochs 3-4."""
    losses = [row["valid_loss"] for row in result.history]
    assert min(losses[2:]) > max(losses[:2])
    _, extra = from_bytes((out / "model.mlpot").read_bytes())
    assert extra["epoch"] == 3 + int(np.argmin(losses[2:]))


def test_a_resume_under_another_loss_shape_chooses_the_best_model_afresh(tmp_path):
    # Huber (0.5 e^2 inside delta, linear beyond) is below the MSE at every error, so without a fresh
    # choice no MSE epoch could replace a Huber one, and model.mlpot would stay stage one's.
    frames = _frames()
    first = _config(tmp_path, epochs=2, loss="huber", huber_delta=0.01)
    fit(first, _prepared(first, frames))
    second = _config(tmp_path, epochs=4, loss="mse")
    result = fit(second, _prepared(second, frames), resume=True)
    _assert_best_is_a_resumed_epoch(result, tmp_path / "run")


def test_the_plateau_factor_moves_only_under_the_plateau_schedule(tmp_path):
    from types import SimpleNamespace

    for schedule, factor in (("cosine", 1.0), ("plateau", 0.25)):
        config = _config(tmp_path, lr_schedule=schedule, plateau_patience=1, plateau_factor=0.5, min_lr_ratio=0.01)
        progress = run_mod._new_progress()
        for epoch, loss in enumerate((1.0, 2.0, 3.0), start=1):  # two epochs without improvement
            run_mod._epoch_end(SimpleNamespace(config=config), progress, {"epoch": epoch, "valid_loss": loss})
        assert progress["plateau"][0] == factor  # a resume that switches to plateau starts at the full rate


def test_a_resume_that_restarts_the_choice_but_runs_no_epoch_keeps_the_best_model(tmp_path):
    # the budget is spent: no epoch measures the new loss, so the old best stays (not the last EMA)
    frames = _frames()
    first = _config(tmp_path, epochs=2, loss="huber", huber_delta=0.01)
    fit(first, _prepared(first, frames))
    model = tmp_path / "run" / "model.mlpot"
    run_mod.save(load(model), model, extra={"epoch": 1, "marked": True})  # whichever epoch won: this one
    spent = _config(tmp_path, epochs=2, loss="mse")
    fit(spent, _prepared(spent, frames), resume=True)
    _, extra = from_bytes(model.read_bytes())
    assert extra.get("marked") is True


def test_a_best_model_written_after_the_last_checkpoint_must_be_beaten(tmp_path):
    # A kill inside the flush, after model.mlpot and best.ckpt but before last.ckpt: the resumed run
    # repeats the epochs since last.ckpt and may only replace that model by beating its loss.
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, "run", epochs=1)
    fit(config, _prepared(config, frames))
    out = tmp_path / "run"
    _, progress = _saved_state(out)
    earlier = {**progress, "epoch": 0, "best_valid": float("inf")}  # last.ckpt as it was one flush before
    run_mod._adopt_a_newer_best(out, earlier)
    assert earlier["best_valid"] == progress["best_valid"]
    same_epoch = {**progress, "best_valid": 7.0}  # best.ckpt no newer than last.ckpt: nothing to adopt
    run_mod._adopt_a_newer_best(out, same_epoch)
    assert same_epoch["best_valid"] == 7.0


def test_checkpoints_are_written_together_at_most_once_per_interval_and_at_the_end(tmp_path, monkeypatch):
    writes = []
    real_save = run_mod.save_checkpoint

    def counting_save(path, state, progress, model_config):
        writes.append((path.name, progress["epoch"]))
        real_save(path, state, progress, model_config)

    monkeypatch.setattr(run_mod, "save_checkpoint", counting_save)
    monkeypatch.setattr(run_mod, "CHECKPOINT_INTERVAL_S", 1e9)  # no flush before the run ends
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, "rare", epochs=4)
    result = fit(config, _prepared(config, frames))
    losses = [row["valid_loss"] for row in result.history]
    best_epoch = 1 + int(np.argmin(losses))
    # one write of each file, at the end; best.ckpt and model.mlpot hold the best epoch, not the last
    assert sorted(writes) == sorted([("best.ckpt", best_epoch), ("last.ckpt", 4)])
    assert from_bytes((result.output_dir / "model.mlpot").read_bytes())[1]["epoch"] == best_epoch
    _, progress = _saved_state(result.output_dir)
    assert [row["epoch"] for row in progress["history"]] == [1, 2, 3, 4]
    assert len((result.output_dir / "metrics.csv").read_text().splitlines()) == 1 + 4
    # the same run writing every epoch ends with the same files
    writes.clear()
    monkeypatch.setattr(run_mod, "CHECKPOINT_INTERVAL_S", 0.0)
    every = _config(tmp_path, "every", epochs=4)
    fit(every, _prepared(every, frames))
    assert [name for name, _ in writes].count("last.ckpt") == 4
    a, b = _saved_state(result.output_dir)[0], _saved_state(tmp_path / "every")[0]
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)
    assert (result.output_dir / "model.mlpot").read_bytes() == (tmp_path / "every" / "model.mlpot").read_bytes()
    a, progress_a = _saved_state(result.output_dir, "best.ckpt")
    b, progress_b = _saved_state(tmp_path / "every", "best.ckpt")
    assert progress_a["epoch"] == progress_b["epoch"] == best_epoch  # (their wall times differ)
    for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_time_budget_counts_the_book_keeping_between_epochs(tmp_path, monkeypatch):
    real_write = run_mod._write_csv

    def slow_write(path, history):
        time.sleep(0.5)
        real_write(path, history)

    monkeypatch.setattr(run_mod, "_write_csv", slow_write)
    monkeypatch.setattr(run_mod, "CHECKPOINT_INTERVAL_S", 0.0)
    config = _config(tmp_path, epochs=3)
    result = fit(config, _prepared(config, _frames(n_mol=16, n_cryst=0)))
    times = [row["time_s"] for row in result.history]
    assert min(np.diff(times)) >= 0.5  # each later epoch's time includes the slow write after the one before


def test_compiles_once_per_shape_bucket(tmp_path):
    frames = _frames(n_mol=10, uniform=False)  # molecules of 3 to 8 atoms, crystals of 2 and 4: many sizes
    config = _config(tmp_path)
    prepared = _prepared(config, frames)
    loop, state, _, _ = build(config, prepared)
    seen = set()
    for epoch in range(3):
        order = np.random.default_rng([config.seed, epoch]).permutation(len(prepared.train.frames))
        for k in range(0, len(order), config.batch_size):
            graph, _ = data.collate(prepared.train, order[k : k + config.batch_size], config.batch_size)
            seen.add((graph.num_nodes, graph.num_edges, graph.num_graphs))
        state, _ = run_epoch(loop, state, epoch, PlateauState(1.0, np.inf, 0))
    # one compile per distinct padded shape (learning rate, weights, data values never recompile) ...
    assert loop.step_fn._cache_size() == len(seen)
    # ... and shapes are set by the node bucket alone, so they are bounded by the bucket ladder
    sizes = sorted(len(f.atoms) for f in prepared.train.frames)
    smallest, largest = sum(sizes[:2]), sum(sizes[-4:])  # smallest batch is the 2-frame remainder
    ladder = {bucket_size(n + 1) for n in range(smallest, largest + 1)}
    assert len({s[0] for s in seen}) == len(seen) <= len(ladder)


def test_time_budget_and_outputs(tmp_path):
    config = _config(tmp_path, epochs=50, max_time=1e-6, plots=True)
    result = fit(config, _prepared(config, _frames()))
    assert len(result.history) == 1  # the first epoch shows one more would not fit in the budget
    out = result.output_dir
    for name in (
        "model.mlpot",
        "metrics.csv",
        "config.yaml",
        "learning_curves.png",
        "parity_valid.png",
        "results.json",
        "checkpoints/best.ckpt",
        "checkpoints/last.ckpt",
    ):
        assert (out / name).is_file(), name
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"epoch", "train_loss", "valid_loss", "valid_forces_mae", "valid_stress_mae", "lr"} <= set(header)
    # results.json names the validation frames the model gets most wrong, worst first
    worst = json.loads((out / "results.json").read_text())["valid"]["worst_frames"]
    valid_names = {f.where for f in _prepared(config, _frames()).valid.frames}
    assert 0 < len(worst) <= 5 and {row["where"] for row in worst} <= valid_names
    rmse = [row["forces_rmse"] for row in worst]
    assert rmse == sorted(rmse, reverse=True) and worst == result.valid_metrics["worst_frames"]
    model = load(out / "model.mlpot")
    assert model.config.name == register_tiny()
    # reference energies: least squares on the training frames' compositions (not the validation ones)
    frames = _frames()
    fitted = data.fit_reference_energies(frames[:-4] + frames[-2:], model.config.species)
    np.testing.assert_allclose(model.config.reference_energies, fitted, rtol=0, atol=1e-8)
    assert np.abs(fitted).max() > 0.1
    # a data-derived hyperparameter the model declares is filled in from the training frames
    train = _prepared(config, frames).train
    mean = sum(len(p[2]) for p in train.parts) / sum(len(p[0]) for p in train.parts)
    assert model.config.hyperparameters["avg_num_neighbors"] == pytest.approx(mean, rel=1e-6)


def test_weight_schedule_changes_weights_at_the_chosen_epoch(tmp_path):
    config = _config(
        tmp_path,
        energy_weight=1.0,
        weight_schedule=[{"epoch": 2, "energy_weight": 100.0}, {"epoch": 4, "forces_weight": 0.5}],
    )
    assert [float(weights_at(config, e).energy) for e in range(5)] == [1, 1, 100, 100, 100]
    assert float(weights_at(config, 4).forces) == 0.5 and float(weights_at(config, 3).forces) == 10.0


def test_best_model_is_chosen_again_after_a_weight_change(tmp_path):
    # From epoch 3 on the energy weighs 1e6 times more: every validation loss of that stage is far
    # above stage one's, yet the shipped model must be the best of the new stage, not a stale one.
    from mlpot.modelfile import from_bytes

    config = _config(tmp_path, epochs=5, weight_schedule=[{"epoch": 2, "energy_weight": 1e7}])
    result = fit(config, _prepared(config, _frames()))
    losses = [row["valid_loss"] for row in result.history]
    assert min(losses[2:]) > max(losses[:2])  # the premise: stage two's losses are not comparable
    _, extra = from_bytes((tmp_path / "run" / "model.mlpot").read_bytes())
    assert extra["epoch"] == 3 + int(np.argmin(losses[2:]))


@pytest.mark.parametrize("legacy", [False, True], ids=["checkpoint", "checkpoint_without_weights"])
def test_best_model_is_chosen_again_when_a_resume_changes_the_weights(tmp_path, legacy):
    # Stage two started by a resume: the first resumed epoch already has the new weights. A checkpoint
    # written before the weights were recorded in it must not keep stage one's best either.

    frames = _frames()
    first = _config(tmp_path, epochs=2)
    fit(first, _prepared(first, frames))
    if legacy:
        path = tmp_path / "run" / "checkpoints" / "last.ckpt"
        payload = read_payload(path)
        progress = json.loads(payload["progress"])
        del progress["loss_weights"]
        payload["progress"] = json.dumps(progress)
        write_payload(path, payload)
    second = _config(tmp_path, epochs=4, weight_schedule=[{"epoch": 2, "energy_weight": 1e7}])
    result = fit(second, _prepared(second, frames), resume=True)
    _assert_best_is_a_resumed_epoch(result, tmp_path / "run")


def test_early_stopping(tmp_path):
    # a vanishing learning rate: validation never improves after epoch 1, so patience 2 stops at epoch 3
    config = _config(tmp_path, epochs=30, learning_rate=1e-12, warmup_epochs=0, early_stopping_patience=2)
    result = fit(config, _prepared(config, _frames()))
    assert len(result.history) == 3


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"lerning_rate": 1}, "did you mean 'learning_rate'"),
        ({"model": {"name": "painn", "featurs": 8}}, "did you mean 'features'"),
        ({"loss": "l1"}, "loss must be one of"),
        ({"model": {"name": "nope"}}, "model.name must be one of"),
        # values that would run and train nothing, or climb the loss, or cut a number silently
        ({"loss": "huber", "huber_delta": 0}, r"huber_delta must be > 0"),
        ({"clip_grad_norm": -1}, r"clip_grad_norm must be > 0"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ({"max_time": 0}, "max_time must be > 0 minutes"),
        ({"min_lr_ratio": 2}, r"min_lr_ratio must be in \[0, 1\]"),
        ({"early_stopping_patience": 0}, "early_stopping_patience must be >= 1"),
        ({"epochs": 2.7}, "epochs must be an int, got 2.7"),
        ({"progress": "false"}, "progress must be a bool, got 'false'"),
        ({"weight_schedule": [{"epoch": 5, "energy_weight": -1}]}, r"weight_schedule\[0\].energy_weight must be"),
        ({"weight_schedule": [{"epoch": "5"}]}, r"weight_schedule\[0\].epoch must be a number"),
        # these reached JAX or the file system before: ZeroDivisionError, TypeError, dict() errors
        ({"model": {"name": "painn", "features": 0}}, "model.features must be > 0, got 0"),
        ({"model": {"name": "mace", "hidden_l": 0, "l_max": -1}}, "model.l_max must be >= 0"),
        ({"model": {"name": "mace", "num_basis": 2.5}}, "model.num_basis must be an int"),
        # cross-field checks that failed only after all the data had been read
        ({"model": {"name": "mace", "hidden_l": 3, "l_max": 2}}, r"model: MACE: l_max \(2\) must be >= hidden_l"),
        ({"valid_fraction": 0.6, "test_fraction": 0.5}, "valid_fraction \\+ test_fraction must be < 1"),
        ({"model": "painn"}, "model must be a mapping.*-o model.name=mace"),
        ({"train_file": 5}, "train_file must be a path or a list of paths, got 5"),
        ({"valid_file": ["a.xyz", None]}, "valid_file must be a path or a list of paths"),
        ({"output_dir": ["a"]}, "output_dir must be text"),
    ],
)
def test_config_errors(changes, message):
    from mlpot.training.config import from_dict

    with pytest.raises(ValueError, match=message):
        from_dict({"train_file": "x.xyz", **changes}, "recipe.yaml")
    with pytest.raises(ValueError, match="^recipe.yaml: "):  # the file is named, not 'config'
        from_dict({"train_file": "x.xyz", **changes}, "recipe.yaml")


def test_config_checks_hold_for_the_python_api_and_name_a_yaml_syntax_error(tmp_path):
    from mlpot.training.config import load

    with pytest.raises(ValueError, match="^config: epochs must be an int, got '3'"):
        TrainConfig(train_file="x.xyz", epochs="3").replace()
    broken = tmp_path / "broken.yaml"
    broken.write_text("train_file: x.xyz\nepochs: [3\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        load(broken)


def test_output_dir_that_is_a_file_or_a_resume_without_checkpoint_fails_before_any_work(tmp_path):
    (tmp_path / "afile").write_text("")
    frames = _frames(n_mol=8, n_cryst=0)
    with pytest.raises(ValueError, match="output_dir .*afile is a file"):
        run_mod.train(_config(tmp_path, "afile", valid_fraction=0.25), frames=frames)
    with pytest.raises(FileNotFoundError, match="--resume: no checkpoint"):
        run_mod.train(_config(tmp_path, "missing", valid_fraction=0.25), resume=True, frames=frames)
    assert not (tmp_path / "missing").exists()  # no empty folder left behind


def test_a_folder_that_holds_a_run_is_not_trained_into_without_resume_or_overwrite(tmp_path):
    # a second run there would write its config over the old run's, and a resume after a kill would then
    # carry on the old run's parameters and history with every check passing
    (tmp_path / "held" / "checkpoints").mkdir(parents=True)
    (tmp_path / "held" / "checkpoints" / "last.ckpt").write_bytes(b"the old run")
    config = _config(tmp_path, "held", valid_fraction=0.25)
    with pytest.raises(ValueError, match=r"already holds a run \(.*last.ckpt\): resume=True continues it, overwrite="):
        run_mod.train(config, frames=_frames(n_mol=8, n_cryst=0))
    assert (tmp_path / "held" / "checkpoints" / "last.ckpt").read_bytes() == b"the old run"
    assert not (tmp_path / "held" / "config.yaml").exists()


def test_a_fine_tune_into_its_base_models_own_folder_does_not_remove_the_base(tmp_path):
    (tmp_path / "run").mkdir()
    base = tmp_path / "run" / "model.mlpot"
    base.write_bytes(b"the base model")
    config = _config(tmp_path, "run", valid_fraction=0.25, init_from=str(base))
    with pytest.raises(ValueError, match=r"init_from .*model.mlpot is a file of output_dir .*--overwrite\) removes"):
        run_mod.train(config, frames=_frames(n_mol=8, n_cryst=0), overwrite=True)
    assert base.read_bytes() == b"the base model"


def test_a_resume_that_reads_other_labels_chooses_the_best_model_afresh(tmp_path):
    from mlpot.training import config as config_mod
    from mlpot.training.run import _check_resume

    config = _config(tmp_path)
    saved = tmp_path / "config.yaml"
    saved.write_text(config_mod.dump(config))
    # other labels: a best loss measured on the old ones would never be beaten, and nothing resumed saved
    for key, value in (
        ("energy_key", "REF_energy"),
        ("forces_key", "F"),
        ("stress_key", "S"),
        ("inconsistent_stress", "drop"),
    ):
        assert _check_resume(saved, dataclasses.replace(config, **{key: value})) == [key]
    # a fraction that draws nothing (its file is given) may change; one that draws may not
    given = dataclasses.replace(config, valid_file="v.xyz", test_file="t.xyz")
    saved.write_text(config_mod.dump(given))
    assert _check_resume(saved, dataclasses.replace(given, valid_fraction=0.2, test_fraction=0.3)) == []
    saved.write_text(config_mod.dump(config))
    with pytest.raises(ValueError, match="valid_fraction 0.05 -> 0.2 since the run began"):
        _check_resume(saved, dataclasses.replace(config, valid_fraction=0.2))
    # a file given where frames were drawn (or the reverse) is new validation frames: chosen afresh
    assert _check_resume(saved, dataclasses.replace(config, valid_file="v.xyz")) == ["valid_file"]
    with pytest.warns(UserWarning, match="isolated_atoms_file free.xyz is not used on a resume"):
        assert _check_resume(saved, dataclasses.replace(config, isolated_atoms_file="free.xyz")) == []


def test_all_pair_distances_are_compared_only_where_the_short_ones_agree(monkeypatch):
    # NVT frames share composition and volume: comparing all N^2 distances of each cost seconds a frame
    from ase.build import bulk

    base = bulk("Si", "diamond", 5.43, cubic=True) * (2, 2, 2)
    frames = []
    for seed in range(6):
        atoms = base.copy()
        atoms.rattle(0.05, seed=seed)
        frames.append(atoms)
    copy = frames[2].copy()
    copy.rotate(40, (1, 2, 3), rotate_cell=True)
    copy = copy[np.random.default_rng(0).permutation(len(copy))]
    computed = []
    full = data._sorted_distances
    monkeypatch.setattr(data, "_sorted_distances", lambda atoms: computed.append(len(atoms)) or full(atoms))
    assert data.symmetric_copy_pairs(frames[:5], [frames[5], copy]) == [(2, 1)]
    assert len(computed) == 2  # the copy and its original
    # the short distances are the start of the full sorted list, pair of elements by pair of elements
    short = data._short_distances(frames[0])[14014]
    np.testing.assert_allclose(short, full(frames[0])[: len(short)], rtol=0, atol=1e-12)
    assert 0 < len(short) < len(full(frames[0]))
    # frames the search refuses (checked where training frames are read) fall back to the full comparison
    empty, far = Atoms(), frames[0].copy()
    far.positions[0] += 2e5
    assert data.symmetric_copy_pairs([empty, far], [Atoms(), far.copy()]) == [(0, 0), (1, 1)]


def test_held_out_frames_that_are_training_or_validation_frames_or_copies_of_them_are_named(tmp_path):
    import ase.io

    from mlpot.training.prepare import prepare

    images = [f.atoms for f in _frames(n_mol=8, n_cryst=0)]
    from ase.calculators.singlepoint import SinglePointCalculator
    from scipy.spatial.transform import Rotation

    order = [4, 2, 0, 1, 3]  # a training frame re-indexed, rotated, reflected and moved
    turn = Rotation.from_rotvec([1.2, 0.3, -0.2]).as_matrix() @ np.diag([-1.0, 1.0, 1.0])
    turned = images[3][order]
    turned.positions = images[3].positions[order] @ turn.T + (3.0, -1.0, 0.5)
    forces = images[3].calc.results["forces"][order] @ turn.T
    turned.calc = SinglePointCalculator(turned, energy=images[3].calc.results["energy"], forces=forces)
    paths = {name: tmp_path / f"{name}.xyz" for name in ("train", "valid", "test")}
    ase.io.write(paths["train"], images[:6])
    ase.io.write(paths["valid"], [images[6], images[2]])  # its frame 1 is a training frame
    ase.io.write(paths["test"], [images[7], images[6], turned])  # frame 1 is a validation frame, 2 a copy
    files = {f"{name}_file": str(path) for name, path in paths.items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepare(_config(tmp_path, **files))
    messages = [str(w.message) for w in caught if "copies of them" in str(w.message)]
    why = "or copies of them (rotated, reflected or re-indexed: same elements, volume and interatomic distances), so "
    tail = "their errors are not hold-out errors (first: "
    assert messages == [
        f"1 of 2 validation frames are training frames {why}{tail}{paths['valid']}, frame 1 = {paths['train']}, frame 2)",
        f"1 of 3 test frames are training frames {why}{tail}{paths['test']}, frame 2 = {paths['train']}, frame 3)",
        f"1 of 3 test frames are validation frames {why}{tail}{paths['test']}, frame 1 = {paths['valid']}, frame 0)",
    ]


def test_symmetric_copies_of_a_strained_cell_are_found_and_other_strains_are_not():
    # mlearn's elastic frames: one strained cell along x, y and z, the atoms in another order
    from ase.build import bulk

    from mlpot.data import symmetric_copy_pairs

    base = bulk("Si", "diamond", 5.43, cubic=True)
    base.rattle(0.02, seed=1)
    along_x = base.copy()
    along_x.set_cell(base.cell.array @ np.diag([1.01, 1, 1]), scale_atoms=True)
    along_y = along_x.copy()  # the same crystal with x and y swapped (a reflection) and re-indexed
    along_y.set_cell(along_x.cell.array[[1, 0, 2]][:, [1, 0, 2]])
    along_y.positions = along_x.positions[:, [1, 0, 2]]
    along_y = along_y[np.random.default_rng(0).permutation(len(along_y))]
    stronger = base.copy()
    stronger.set_cell(base.cell.array @ np.diag([1.02, 1, 1]), scale_atoms=True)
    moved = along_x.copy()
    moved.positions[0] += (0.01, 0.0, 0.0)  # 0.01 Å: another frame
    assert symmetric_copy_pairs([base, along_x], [along_y, stronger, moved, base]) == [(1, 0), (0, 3)]


def test_a_stress_key_that_labels_no_frame_is_an_error(tmp_path):
    frames = _frames(n_mol=0, n_cryst=4)
    path = tmp_path / "si.xyz"
    ase_frames = [f.atoms for f in frames]
    import ase.io

    ase.io.write(path, ase_frames)
    from mlpot.training.prepare import prepare

    with pytest.raises(data.InputError, match="no periodic training frame has a stress label 'strss'"):
        prepare(_config(tmp_path, train_file=str(path), stress_key="strss", valid_fraction=0.25))
    assert prepare(_config(tmp_path, train_file=str(path), valid_fraction=0.25)).train.frames[0].stress is not None


def test_config_reads_yaml_numbers_as_written():
    from mlpot.training.config import from_dict

    # YAML 1.1 reads 1e3 (no dot) as a string; a whole float is a fine int
    config = from_dict({"train_file": "x.xyz", "max_time": "1e3", "epochs": 20.0, "clip_grad_norm": 5})
    assert config.max_time == 1000.0 and config.epochs == 20 and isinstance(config.epochs, int)
    assert config.clip_grad_norm == 5.0 and isinstance(config.clip_grad_norm, float)
    nested = from_dict(
        {
            "train_file": "x.xyz",
            "weight_schedule": [{"epoch": 2, "energy_weight": "1e3"}],
            "config_type_weights": {"Surface": "1e1"},
        }
    )
    assert nested.weight_schedule == [{"epoch": 2, "energy_weight": 1000.0}]
    assert nested.config_type_weights == {"Surface": 10.0}


def test_learning_rate_warmup_cosine_time_and_plateau(tmp_path):
    from mlpot.training.optim import learning_rate, update_plateau

    config = _config(tmp_path, learning_rate=1.0, epochs=10, warmup_epochs=1, min_lr_ratio=0.1)
    flat = PlateauState(1.0, np.inf, 0)
    assert learning_rate(config, 0, 10, flat) == pytest.approx(0.1)  # warm-up: 1/10 of the way
    assert learning_rate(config, 10, 10, flat) == pytest.approx(1.0)  # cosine starts at the peak
    assert learning_rate(config, 100, 10, flat) == pytest.approx(0.1)  # and ends at the floor
    # a time budget that is 100 % used anneals to the floor whatever the step count
    assert learning_rate(config, 11, 10, flat, time_fraction=1.0) == pytest.approx(0.1)
    plateau_config = _config(
        tmp_path, lr_schedule="plateau", plateau_patience=2, plateau_factor=0.5, learning_rate=1.0, warmup_epochs=0
    )
    state = PlateauState(1.0, np.inf, 0)
    for loss in (1.0, 1.0, 1.0):  # improves once, then two epochs without improvement
        state = update_plateau(plateau_config, state, loss)
    assert state.factor == 0.5 and learning_rate(plateau_config, 50, 10, state) == 0.5


def test_fine_tuning_starts_from_the_model_file_and_keeps_its_references(tmp_path):
    frames = _frames(n_mol=18, n_cryst=0)
    base_config = _config(tmp_path, "base", epochs=3)
    base = fit(base_config, _prepared(base_config, frames))
    path = base.output_dir / "model.mlpot"
    # a step too small to move the parameters: the first epoch evaluates the base model itself
    still = {"learning_rate": 1e-12, "epochs": 1, "ema_decay": None}
    tuned_config = _config(tmp_path, "tuned", init_from=str(path), **still)
    # fine-tuning data with other energies: fitting afresh would give other reference energies
    shifted = [f._replace(energy=f.energy + 0.3 * len(f.atoms)) for f in frames]
    tuned = fit(tuned_config, _prepared(tuned_config, shifted))
    assert tuned.potential.config == load(path).config
    for x, y in zip(jax.tree_util.tree_leaves(tuned.potential.params), jax.tree_util.tree_leaves(load(path).params)):
        np.testing.assert_allclose(x, y, rtol=0, atol=1e-9)
    # fitted afresh, the shifted data would move CH4's reference energy by 5 x 0.3 eV
    fresh = _prepared(_config(tmp_path, "fresh"), shifted).model_config
    assert fresh.species == (1, 6)
    delta = np.subtract(fresh.reference_energies, base.potential.config.reference_energies)
    assert delta @ [4, 1] == pytest.approx(1.5, abs=1e-6)
    # forces do not see the shift: the fine-tuned model's validation forces are the base model's
    assert tuned.valid_metrics["forces_mae"] == pytest.approx(base.valid_metrics["forces_mae"], rel=1e-6)
    # so an isolated-atoms file, which would set the references of a new model, does nothing here: said
    isolated = _config(tmp_path, "tuned", init_from=str(path), isolated_atoms_file=str(tmp_path / "free.xyz"))
    with pytest.warns(UserWarning, match=r"free.xyz is not used: fine-tuning \(init_from\) keeps the reference"):
        prepared = _prepared(isolated, frames)
    assert prepared.model_config == load(path).config
    # the printed references say whose they are; one composition's least-squares note is not theirs
    said = describe(prepared, isolated)
    assert f"(init_from {path}'s)" in said and "few distinct compositions" not in said
    assert "(the checkpoint's)" in describe(prepared, isolated, load(path).config)  # a resume keeps its model's
    fresh_config = _config(tmp_path, "fresh")
    assert "few distinct compositions" in describe(_prepared(fresh_config, shifted), fresh_config)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"cutoff": 3.5}, "cutoff 3.0 Å and dtype float32 there"),
        ({"model": {"name": "painn"}}, "the config's model.name is 'painn'"),
        ({"n_cryst": 2}, r"elements the model was not trained on \(Si; first: synthetic 1[89]\)"),
        ({"committee": True}, "a committee is not trained; fine-tune each member"),
        ({"repulsion": False}, r"trained with repulsion True \(a ZBL core\), the config has repulsion False"),
    ],
)
def test_fine_tuning_refuses_a_different_model_or_new_elements(tmp_path, changes, message):
    from mlpot.models.committee import assemble

    frames = _frames(n_mol=18, n_cryst=0)
    base_config = _config(tmp_path, "base", epochs=1)
    path = fit(base_config, _prepared(base_config, frames)).output_dir / "model.mlpot"
    if changes.pop("committee", False):
        with pytest.warns(UserWarning, match="same model"):
            assemble([load(path), load(path)]).save(path := tmp_path / "committee.mlpot")
    n_cryst = changes.pop("n_cryst", 0)
    config = _config(tmp_path, "tuned", init_from=str(path), **changes)
    with pytest.raises(ValueError, match=message):
        _prepared(config, _frames(n_mol=18, n_cryst=n_cryst))


def test_fine_tuning_on_closer_frames_lowers_the_core_so_it_stays_zero_on_them(tmp_path):
    from mlpot.repulsion import closest_pairs

    frames = _frames(n_mol=18, n_cryst=0)
    base_config = _config(tmp_path, "base", epochs=1)
    path = fit(base_config, _prepared(base_config, frames)).output_dir / "model.mlpot"
    old = np.array(load(path).config.repulsion_radii)
    squeezed = []  # compressed data: what init_from is for (hot, dense or reactive frames)
    for f in frames:
        atoms = f.atoms.copy()
        atoms.positions *= 0.85
        squeezed.append(f._replace(atoms=atoms))
    config = _config(tmp_path, "tuned", init_from=str(path))
    with pytest.warns(UserWarning, match=r"the training frames come closer than its ZBL core \(H-H 1\.\d+ -> 1\.\d+ Å"):
        prepared = _prepared(config, squeezed)
    new = np.array(prepared.model_config.repulsion_radii)
    assert new[0, 0] < old[0, 0] and new[0, 1] < old[0, 1]  # H-H and C-H come closer
    assert new[1, 1] == old[1, 1]  # one C per CH4: a pair the frames never show keeps its radius
    training = [f.atoms for f in squeezed[:-4] + squeezed[-2:]]
    assert np.all(closest_pairs(training, (1, 6)) >= new + 0.1 - 1e-4)  # every training pair outside its core
    assert prepared.model_config.reference_energies == load(path).config.reference_energies
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the base model's own frames are outside its core: nothing changes
        assert _prepared(config, frames).model_config == load(path).config


def test_fine_tuning_accepts_a_config_that_spells_out_a_default_the_file_leaves_out(tmp_path):
    frames = _frames(n_mol=18, n_cryst=0)
    base_config = _config(tmp_path, "base", epochs=1)
    path = fit(base_config, _prepared(base_config, frames)).output_dir / "model.mlpot"
    assert "num_basis" not in load(path).config.hyperparameters  # the base config left it at its default, 4
    spelled = _config(tmp_path, "tuned", init_from=str(path), model={"name": register_tiny(), "num_basis": 4})
    assert _prepared(spelled, frames).model_config == load(path).config
    other = _config(tmp_path, "tuned", init_from=str(path), model={"name": register_tiny(), "num_basis": 6})
    with pytest.raises(ValueError, match="model.num_basis is 4 there, 6 in the config"):
        _prepared(other, frames)


@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_validation_loss_is_the_training_loss_on_the_validation_frames(tmp_path, kind):
    from mlpot.training.loss import loss_terms, total_loss
    from mlpot.training.trainer import validate

    frames = _frames(n_mol=14, n_cryst=4)  # molecules without stress, crystals with: every term counts
    config = _config(tmp_path, loss=kind, huber_delta=0.01, energy_weight=3.0, stress_weight=7.0, batch_size=2)
    prepared = _prepared(config, frames)
    loop, state, _, _ = build(config, prepared)
    row = validate(loop, state, epoch=0)
    # the loss function of the training step, on one batch holding every validation frame
    graph, labels = data.collate(prepared.valid, np.arange(len(prepared.valid.frames)), 8)
    pred = loop.predict_fn(state.ema, graph)
    weights = weights_at(config, 0)
    expected = float(total_loss(loss_terms(pred, labels, graph, kind, 0.01), weights))
    assert row["valid_loss"] == pytest.approx(expected, rel=1e-5)
    if kind == "huber":  # and not the RMSE form, which weighs large errors quadratically
        keys = ("energy_rmse_per_atom", "forces_rmse", "stress_rmse")
        rmse_form = sum(float(w) * row[f"valid_{k}"] ** 2 for w, k in zip(weights, keys))
        assert row["valid_loss"] < 0.9 * rmse_form


def test_relative_data_paths_are_found_beside_the_config_first(tmp_path, monkeypatch):
    from mlpot.training.config import load

    (tmp_path / "recipes").mkdir()
    for where in (tmp_path / "recipes", tmp_path):
        (where / "data.xyz").write_text("x")
    (tmp_path / "only_here.xyz").write_text("x")
    recipe = tmp_path / "recipes" / "r.yaml"
    recipe.write_text("train_file: data.xyz\nvalid_file: only_here.xyz\ntest_file: missing.xyz\n")
    monkeypatch.chdir(tmp_path)  # a data.xyz here too: the config's own must win
    config = load(Path("recipes/r.yaml"))
    # absolute, so the run's saved config.yaml still finds them from another directory (--resume)
    assert config.train_file == str(tmp_path / "recipes" / "data.xyz")
    assert Path(config.valid_file) == tmp_path / "only_here.xyz"  # found only from the working directory
    assert Path(config.test_file) == tmp_path / "recipes" / "missing.xyz"  # named where the config says


def test_held_out_frames_with_an_element_the_training_frames_lack_are_refused(tmp_path):
    # The species came from train + validation + test: a Si frame in the validation file added Si to a
    # CH4 model with reference energy 0 and an untrained embedding, scored it, and the calculator then
    # gave Si a number.
    frames = _frames(n_mol=8, n_cryst=2)  # 8 CH4, then 2 Si crystals
    config = _config(tmp_path)
    with pytest.raises(data.InputError, match=r"synthetic 8: validation frame with element\(s\) Si"):
        assemble(config, frames[:6], frames[6:])
    assert assemble(config, frames[:6] + frames[9:], frames[6:9]).model_config.species == (1, 6, 14)


def test_resume_reads_new_data_with_the_checkpoints_elements(tmp_path):
    # A resume on a train_file holding an element the model lacks trained those atoms as another element
    # (Si as H: species indices from the new data, embeddings from the checkpoint).
    methane, silicon = _frames(n_mol=12, n_cryst=0), _frames(n_mol=0, n_cryst=4)
    config = _config(tmp_path, epochs=1, valid_fraction=0.25)
    run_mod.train(config, frames=methane)
    longer = _config(tmp_path, epochs=2, valid_fraction=0.25)
    with pytest.raises(data.InputError, match=r"element\(s\) \[?'?Si'?\]?,? not (in|among) the model's"):
        run_mod.train(longer, resume=True, frames=methane[:8] + silicon)
    with pytest.raises(ValueError, match="prepared for elements"):  # the Python API's prepared data, checked too
        fit(longer, assemble(longer, methane[:8] + silicon, methane[8:]), resume=True)
    assert [row["epoch"] for row in run_mod.train(longer, resume=True, frames=methane).history] == [1, 2]


def test_evaluate_files_refuses_label_names_that_label_nothing(tmp_path):
    # The Python API returned energy_mae None (a typo in energy_key), or no metrics at all, silently.
    from mlpot.training.evaluation import evaluate_files

    frames = _frames(n_mol=4, n_cryst=0)
    path = tmp_path / "f.xyz"
    import ase.io

    ase.io.write(path, [f.atoms for f in frames])
    config = _config(tmp_path, valid_fraction=0.25)
    potential = run_mod.train(config, frames=frames).potential
    assert evaluate_files(potential, path)[0]["n_frames"] == 4
    with pytest.raises(ValueError, match=r"has the energy label 'nope' \(energy_key"):
        evaluate_files(potential, path, energy_key="nope")
    bare = [f.atoms.copy() for f in frames]  # copies carry no calculator: no labels at all
    ase.io.write(tmp_path / "bare.xyz", bare)
    with pytest.raises(ValueError, match="nothing to evaluate"):
        evaluate_files(potential, tmp_path / "bare.xyz")


def test_cross_validation_takes_a_dict_as_train_does(tmp_path):
    frames = _frames(n_mol=8, n_cryst=0)
    values = {**_config(tmp_path, epochs=1, plots=False).to_dict(), "valid_fraction": 0.25}
    from mlpot.training.selection import cross_validate

    cv = cross_validate(values, k=2, frames=frames)
    assert cv["k"] == 2 and sum(fold["n_frames"] for fold in cv["folds"]) == len(frames)  # each frame tested once
    assert all(np.isfinite(fold["forces_mae"]) and fold["forces_mae"] > 0 for fold in cv["folds"])
    assert cv["summary"]["forces_mae"]["mean"] == pytest.approx(np.mean([fold["forces_mae"] for fold in cv["folds"]]))


def test_numpy_scalars_and_tuples_of_paths_are_accepted_as_the_api_did():
    config = TrainConfig(
        train_file=("a.xyz", "b.xyz"), epochs=np.int64(10), batch_size=np.int32(4), plots=np.bool_(True)
    )
    checked = config.replace(model={"name": "painn", "features": np.int64(8)})
    assert checked.epochs == 10 and isinstance(checked.epochs, int) and checked.model["features"] == 8


def test_cross_validation_runs_every_fold_when_an_element_is_rare(tmp_path):
    # Species from the training part only would stop the study at the fold whose training part lacks
    # the rare element, after the earlier folds had trained.
    frames = _frames(n_mol=6, n_cryst=1)  # one Si crystal among CH4
    frames = [f._replace(stress=None if f.stress is None else voigt_6_to_full_3x3_stress(f.stress)) for f in frames]
    from mlpot.training.selection import cross_validate

    config = _config(tmp_path, epochs=1, plots=False, valid_fraction=0.25)
    # the fold that holds the crystal out scores it with an untrained Si: said, not averaged in silently
    with pytest.warns(UserWarning, match=r"fold .: no training frame has Si, yet held-out frames do \(first: "):
        assert len(cross_validate(config, k=2, frames=frames)["folds"]) == 2
    for n, k in ((3, 2), (2, 2), (1, 3)):  # a fold's remainder of 1 frame cannot both train and validate
        with pytest.raises(ValueError, match=rf"{n} frames in {k} folds leave [01] beside a fold"):
            cross_validate(config, k=k, frames=frames[:n])


def test_studies_run_every_run_when_a_weighted_config_type_is_rare_and_refuse_a_misspelt_one(tmp_path):
    from mlpot.training.selection import cross_validate, learning_curve

    frames = _frames(n_mol=9, n_cryst=0)
    frames[0].atoms.info["config_type"] = "Surface"  # the one frame of its type
    config = _config(tmp_path, epochs=1, plots=False, valid_fraction=0.25, config_type_weights={"Surface": 10.0})
    with pytest.warns(UserWarning, match="fold .: no training frame has config_type 'Surface'"):
        assert len(cross_validate(config, k=3, frames=frames)["folds"]) == 3
    curve = dataclasses.replace(config, output_dir=str(tmp_path / "curve"), test_fraction=0.1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the smallest subset may or may not hold the Surface frame
        assert len(learning_curve(curve, sizes=[1, 6], frames=frames)["runs"]) == 2
    misspelt = dataclasses.replace(config, output_dir=str(tmp_path / "misspelt"), config_type_weights={"Surfce": 10})
    with pytest.raises(ValueError, match="no training frame has config_type 'Surfce'"):
        cross_validate(misspelt, k=3, frames=frames)
    assert not (tmp_path / "misspelt" / "fold_0").exists()  # refused before any fold ran


def test_a_stress_key_on_molecules_only_is_not_an_error(tmp_path):
    from mlpot.training.prepare import prepare

    frames = _frames(n_mol=8, n_cryst=0)
    config = _config(tmp_path, stress_key="REF_stress", valid_fraction=0.25)
    assert prepare(config, frames).train.frames


def test_a_cutoff_that_leaves_the_atoms_without_neighbours_is_warned_about(tmp_path):
    # 0.3 Å is below every bond: the model would learn lone atoms and zero forces, and still run.
    frames = _frames(n_mol=8, n_cryst=0)
    with pytest.warns(UserWarning, match=r"cutoff 0.3 Å: \d+ of \d+ training frames have no atom pair within it"):
        _prepared(_config(tmp_path, cutoff=0.3), frames)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _prepared(_config(tmp_path, cutoff=3.0), frames)


def test_energies_given_per_atom_are_warned_about(tmp_path):
    # Frames of 2 to 8 atoms: totals fit sum_s n_s e_s, energies per atom fit sum_s (n_s / N) e_s.
    frames = _frames(n_mol=10, n_cryst=6, uniform=False)
    frames = [f._replace(where=f"dft.xyz, frame {k}") for k, f in enumerate(frames)]
    sizes = {len(f.atoms) for f in frames}
    assert max(sizes) >= 2 * min(sizes)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        _prepared(_config(tmp_path), frames)
    per_atom = [f._replace(energy=f.energy / len(f.atoms)) for f in frames]
    with pytest.warns(UserWarning, match=r"'energy' labels of dft.xyz look like energies per atom, not per frame"):
        _prepared(_config(tmp_path), per_atom)
    species = (1, 6, 7, 8, 14)
    as_total, as_per_atom = data.per_atom_energy_fits(per_atom, species)
    assert as_total > 3 * as_per_atom
    as_total, as_per_atom = data.per_atom_energy_fits(frames, species)  # and the other way round
    assert as_per_atom > 3 * as_total
    # one size: either reading fits, so nothing can be told
    assert data.per_atom_energy_fits(_frames(n_mol=8, n_cryst=0), (1, 6)) is None


def test_cross_validation_spread_is_the_sample_std_over_the_folds_that_have_the_metric():
    from mlpot.training.selection import _mean_std

    summary = _mean_std([{"forces_mae": 1.0, "stress_mae": 0.5}, {"forces_mae": 3.0}, {"forces_mae": 2.0}])
    assert summary["forces_mae"]["mean"] == pytest.approx(2.0)
    assert summary["forces_mae"]["std"] == pytest.approx(1.0)  # ddof=1; the population std would be 0.816
    assert summary["forces_mae"]["n_folds"] == 3
    assert summary["stress_mae"] == {"mean": 0.5, "std": None, "n_folds": 1}


def test_progress_without_a_terminal_prints_epoch_lines(tmp_path, capsys, monkeypatch):
    """`nohup mlpot train ... > log`: no redrawn bar, but flushed lines for the first epoch, then at most one
    per LOG_INTERVAL_S, and the last epoch; they carry the validation errors that metrics.csv has."""
    monkeypatch.setattr(run_mod, "LOG_INTERVAL_S", 1e9)  # only the first and the last epoch
    config = _config(tmp_path, epochs=4, progress=True, plots=False)
    fit(config, _prepared(config, _frames()))
    out = capsys.readouterr()
    lines = [line for line in out.out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/4", "4/4"]
    assert "\r" not in out.err + out.out  # no bar
    last = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[-1].split(",")
    header = (tmp_path / "run" / "metrics.csv").read_text().splitlines()[0].split(",")
    assert f"val {float(last[header.index('valid_loss')]):.3g}" in lines[-1]
    monkeypatch.setattr(run_mod, "LOG_INTERVAL_S", 0.0)  # every epoch, and the last one once
    config = _config(tmp_path, "every", epochs=3, progress=True, plots=False)
    fit(config, _prepared(config, _frames()))
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]


def test_split_seed_holds_the_held_out_frames_when_the_seed_changes(tmp_path):
    """Committee members get other seeds; with one split_seed they share validation and test frames."""
    from mlpot.training.prepare import split_frames

    frames = _frames(n_mol=20, n_cryst=0)
    held_out = {}
    for name, changes in (("a", {}), ("b", {"seed": 1, "split_seed": 0}), ("c", {"seed": 1})):
        config = _config(tmp_path, name, test_fraction=0.2, valid_fraction=0.2, **changes)
        _, valid, test = split_frames(config, frames)
        held_out[name] = ([f.where for f in valid], [f.where for f in test])
    assert held_out["b"] == held_out["a"]
    assert held_out["c"] != held_out["a"]  # without split_seed, the seed draws another split
    with pytest.raises(ValueError, match="split_seed must be >= 0"):
        _config(tmp_path, "d", split_seed=-1).replace()
    with pytest.raises(ValueError, match="seed must be an integer below 2\\^63, got 1180591620717411303424"):
        _config(tmp_path, "e", seed=2**70).replace()  # JAX's PRNG key would raise an OverflowError


def test_a_corrupt_checkpoint_is_refused_and_an_older_one_without_a_checksum_still_read(tmp_path):
    from mlpot.training.checkpoint import LEGACY_MAGIC, load_checkpoint, save_checkpoint

    path = tmp_path / "last.ckpt"
    state = {"w": np.arange(20.0)}
    save_checkpoint(path, state, {"epoch": 3}, {"name": "x"})
    loaded, progress, _ = load_checkpoint(path, state)
    assert progress["epoch"] == 3 and np.array_equal(loaded["w"], state["w"])
    raw = bytearray(path.read_bytes())
    at = raw.rindex(np.float64(10.0).tobytes()) + 7  # the exponent byte of w[10]: 10.0 -> 160.0, silently
    raw[at] ^= 0x04
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="last.ckpt: corrupt or truncated checkpoint"):
        load_checkpoint(path, state)
    legacy = tmp_path / "old.ckpt"  # format 1, from before the checksum
    save_checkpoint(legacy, state, {"epoch": 4}, {"name": "x"})
    legacy.write_bytes(LEGACY_MAGIC + serialization.msgpack_serialize(read_payload(legacy)))
    assert load_checkpoint(legacy, state)[1]["epoch"] == 4


def test_a_resume_refuses_a_train_file_whose_change_redraws_the_held_out_frames(tmp_path):
    # Frames appended to train_file (an active-learning round) gave another permutation: frames the model
    # had trained on became validation frames, and the best-so-far loss compared two sets of frames.
    methane = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, epochs=1, valid_fraction=0.25)
    run_mod.train(config, frames=methane[:12])
    longer = _config(tmp_path, epochs=2, valid_fraction=0.25)
    with pytest.raises(
        ValueError,
        match=r"validation frames drawn from train_file are not those the run held out \(9 training frames "
        r"then, 12 now.*init_from=.*model.mlpot",
    ):
        run_mod.train(longer, resume=True, frames=methane)
    assert [row["epoch"] for row in run_mod.train(longer, resume=True, frames=methane[:12]).history] == [1, 2]
    # a valid_file that became a drawn fraction: the frames drawn now were training frames
    given = _config(tmp_path, "given", epochs=1, valid_file="v.xyz")
    fit(given, assemble(given, methane[:12], methane[12:14]))
    drawn = _config(tmp_path, "given", epochs=2, valid_fraction=0.2)
    with pytest.raises(ValueError, match="validation frames drawn from train_file are not those the run held out"):
        fit(drawn, assemble(drawn, methane[:10], methane[10:12]), resume=True)


def test_a_resume_on_relabelled_frames_keeps_the_split_and_chooses_the_best_model_afresh(tmp_path):
    # energy_key names other labels of the same frames: not a new split (that is refused), a new measure
    methane = _frames(n_mol=12, n_cryst=0)
    config = _config(tmp_path, epochs=1, valid_fraction=0.25)
    run_mod.train(config, frames=methane)
    saved = _saved_state(tmp_path / "run")[1]["split"]
    relabelled = [f._replace(energy=f.energy + 0.1) for f in methane]
    longer = _config(tmp_path, epochs=2, valid_fraction=0.25)
    result = run_mod.train(longer, resume=True, frames=relabelled)
    assert [row["epoch"] for row in result.history] == [1, 2]
    now = _saved_state(tmp_path / "run")[1]["split"]
    assert now["valid"] == saved["valid"] and now["valid_labels"] != saved["valid_labels"]
    assert run_mod._check_split(tmp_path / "run", longer, saved, now) == ["validation frames"]


def test_a_resume_on_a_valid_file_with_other_frames_chooses_the_best_model_afresh(tmp_path):
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, epochs=1, valid_file="v.xyz")
    fit(config, assemble(config, frames[:12], frames[12:14]))
    saved = _saved_state(tmp_path / "run")[1]["split"]
    other = {"valid": data.frames_digest(frames[14:16]), "valid_labels": data.frames_digest(frames[14:16], True)}
    now = {**saved, **other}
    assert run_mod._check_split(tmp_path / "run", config, saved, now) == ["validation frames"]
    assert run_mod._check_split(tmp_path / "run", config, saved, dict(saved)) == []
    assert run_mod._check_split(tmp_path / "run", config, None, now) == []  # a checkpoint from before the digests
    # new training frames beside a given validation file: what a resume on more data is for
    assert run_mod._check_split(tmp_path / "run", config, saved, {**saved, "train": "x"}) == []
    longer = _config(tmp_path, epochs=2, valid_file="v.xyz")
    result = fit(longer, assemble(longer, frames[:12], frames[14:16]), resume=True)
    assert _saved_state(tmp_path / "run")[1]["split"] == now
    assert result.history[-1]["epoch"] == 2


def test_a_fine_tune_resumes_without_its_base_model_file(tmp_path):
    # The checkpoint holds the model; the resume still loaded (and checked) the base: FileNotFoundError.
    frames = _frames(n_mol=12, n_cryst=0)
    base = run_mod.train(_config(tmp_path, "base", epochs=1, valid_fraction=0.25), frames=frames)
    moved = tmp_path / "base.mlpot"
    (base.output_dir / "model.mlpot").rename(moved)
    tune = _config(tmp_path, "tune", epochs=1, valid_fraction=0.25, init_from=str(moved))
    run_mod.train(tune, frames=frames)
    moved.unlink()
    longer = dataclasses.replace(tune, epochs=2)
    assert [row["epoch"] for row in run_mod.train(longer, resume=True, frames=frames).history] == [1, 2]


def test_a_resume_accepts_a_model_hyperparameter_spelt_out_at_its_default(tmp_path):
    from mlpot.training import config as config_mod

    config = _config(tmp_path)
    saved = tmp_path / "config.yaml"
    saved.write_text(config_mod.dump(config))
    default = config_mod.model_defaults(register_tiny())["num_basis"]
    spelt = dataclasses.replace(config, model={"name": register_tiny(), "num_basis": default})
    assert run_mod._check_resume(saved, spelt) == []
    other = dataclasses.replace(config, model={"name": register_tiny(), "num_basis": default + 1})
    with pytest.raises(ValueError, match="model .* since the run began"):
        run_mod._check_resume(saved, other)
    saved.write_text(config_mod.dump(config).replace(register_tiny(), "a_model_since_removed"))
    with pytest.raises(ValueError, match="model .*a_model_since_removed.* since the run began"):  # not KeyError
        run_mod._check_resume(saved, config)


def test_a_killed_resume_leaves_no_results_of_the_run_it_continued(tmp_path, monkeypatch):
    # results.json (epochs 2) stayed beside the model of epoch 3 after a resume was killed in epoch 4
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, epochs=2)
    fit(config, _prepared(config, frames))
    out = tmp_path / "run"
    assert (out / "results.json").is_file() and (out / "parity_valid.png").is_file()
    real, calls = run_mod.run_epoch, []

    def killed_in_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(run_mod, "run_epoch", killed_in_the_second)
    longer = _config(tmp_path, epochs=4)
    with pytest.raises(KeyboardInterrupt):
        fit(longer, _prepared(longer, frames), resume=True)
    assert not any((out / name).exists() for name in run_mod.FINISHED_OUTPUTS)
    monkeypatch.setattr(run_mod, "run_epoch", real)
    fit(longer, _prepared(longer, frames), resume=True)
    assert json.loads((out / "results.json").read_text())["epochs"] == 4


def test_a_warm_up_longer_than_the_run_is_named(tmp_path):
    frames = _frames(n_mol=16, n_cryst=0)
    config = _config(tmp_path, epochs=1, warmup_epochs=2.0)
    with pytest.warns(UserWarning, match="warmup_epochs 2 > epochs 1: the learning rate rises for the whole run"):
        fit(config, _prepared(config, frames))


def test_loss_weights_that_are_all_zero_in_any_stage_are_refused(tmp_path):
    from mlpot.training.config import validate

    zero = {"energy_weight": 0.0, "forces_weight": 0.0, "stress_weight": 0.0}
    late = [{"epoch": 2, "forces_weight": 10.0}]  # epochs 0-1 would fit nothing (zero gradients)
    with pytest.raises(ValueError, match=r"are all 0: the loss would fit nothing"):
        validate(_config(tmp_path, weight_schedule=late, **zero))
    off = [{"epoch": 1, **zero}]
    with pytest.raises(ValueError, match=r"are all 0 from epoch 1 \(weight_schedule\)"):
        validate(_config(tmp_path, weight_schedule=off))
    validate(_config(tmp_path, weight_schedule=[{"epoch": 0, "forces_weight": 10.0}], **zero))  # replaced at once
    validate(_config(tmp_path, epochs=3, weight_schedule=[{"epoch": 3, **zero}]))  # a stage the run never reaches
    staged = _config(
        tmp_path, energy_weight=1.0, forces_weight=2.0, weight_schedule=[{"epoch": 2, "energy_weight": 5.0}]
    )
    assert [tuple(map(float, weights_at(staged, epoch)[:2])) for epoch in (0, 1, 2, 9)] == [
        (1, 2),
        (1, 2),
        (5, 2),
        (5, 2),
    ]


def test_cross_validation_names_the_test_frames_it_does_not_use(tmp_path):
    from mlpot.training.selection import _study_checks

    frames = _frames(n_mol=8, n_cryst=0)
    for given, named in (({"test_file": "t.xyz"}, "test_file t.xyz"), ({"test_fraction": 0.2}, "test_fraction 0.2")):
        with pytest.warns(UserWarning, match=f"{named} is not used: each fold's test frames are the fold itself"):
            _study_checks(_config(tmp_path, **given), frames, "cross-validation")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _study_checks(_config(tmp_path, test_file="t.xyz"), frames, "learning curve")  # which uses it
