"""``train(config)``: data -> trained, evaluated, saved potential, with its evidence.

Writes into ``config.output_dir``:
  model.mlpot            best EMA parameters (by validation loss)
  metrics.csv            one row per epoch (losses, lr, validation errors)
  config.yaml            the resolved config
  checkpoints/last.ckpt  full state after the latest epoch (``resume=True`` continues from it)
  checkpoints/best.ckpt  full state at the best validation loss
  parity_valid.png, parity_test.png, learning_curves.png
  results.json           validation and test metrics of the best model, and the validation frames it
                         gets most wrong (``valid.worst_frames``)

The first four are written one after another (each atomically) at the end of the first
epoch that ends ``CHECKPOINT_INTERVAL_S`` seconds after the last write, and when the run
ends: a killed run loses that much work and the epoch it was in (a resume repeats them, bit
for bit without ``max_time``; a timed cosine follows the clock), and sub-second epochs (a
GPU) do not spend their time serialising.

With ``progress`` on and no terminal (``nohup mlpot train ... > log``), a redrawn bar
would fill the log with carriage returns; instead one flushed line per ``LOG_INTERVAL_S``
(and for the first and last epoch) says where the run is.
"""

from __future__ import annotations

import csv
import io
import math
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import yaml
from tqdm.auto import tqdm

from mlpot import data
from mlpot.modelfile import atomic_write, check_output_folder, save, write_json
from mlpot.potential import ModelConfig, Potential, require_x64
from mlpot.training import config as config_mod
from mlpot.training import plots
from mlpot.training.checkpoint import checkpoint_model_config, checkpoint_progress, load_checkpoint, save_checkpoint
from mlpot.training.evaluation import worst_frames
from mlpot.training.optim import PlateauState, make_optimizer, update_plateau
from mlpot.training.prepare import Prepared, describe, prepare
from mlpot.training.trainer import (
    Loop,
    TrainState,
    evaluate,
    init_state,
    jitted_predict,
    make_train_step,
    postfix,
    run_epoch,
    time_left,
    validate,
    weights_at,
)

# With 0.47-s epochs on an H100, writing both checkpoints (each holding the whole metric
# history) and the CSV every epoch took 25-30 % of the wall time by epoch 2,000.
CHECKPOINT_INTERVAL_S = 10.0
LOG_INTERVAL_S = 60.0  # progress lines in a log file (no terminal)
WORST_FRAMES = 5  # validation frames named in results.json and by `mlpot train`: where the model is weakest


class TrainResult(NamedTuple):
    potential: Potential  # best (EMA) parameters
    history: list  # per-epoch dicts (the rows of metrics.csv)
    valid_metrics: dict
    test_metrics: dict | None
    output_dir: Path
    compiles: int = 0  # programs the train step compiled in this call (bounded by the shape buckets)
    stop_reason: str = ""  # why the epochs ended (budget, early stopping, "diverged ...")


def _new_progress() -> dict:
    return {
        "epoch": 0,
        "plateau": [1.0, float("inf"), 0],
        "best_valid": float("inf"),
        "bad_epochs": 0,
        "history": [],
        "elapsed": 0.0,
    }


def _write_csv(path: Path, history: list) -> None:
    keys = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys)
    writer.writeheader()
    writer.writerows(history)
    atomic_write(path, buffer.getvalue().encode())


def next_epoch_estimate(last_epoch_seconds: float, epochs_run: int) -> float:
    """Seconds the next epoch will take, for the ``max_time`` check.

    The first epoch of a process includes XLA compilation (minutes for MACE on
    a CPU), so it says nothing about the next one: estimate 0 after it, and the
    last epoch's time otherwise (before the first, a resumed run's last epoch in
    its checkpoint, so a resume of a run that spent its budget trains no more).
    """
    return 0.0 if epochs_run == 1 else last_epoch_seconds


def _last_epoch_seconds(history: list) -> float:
    """The last recorded epoch's length (0 for a new run)."""
    times = [0.0, 0.0] + [row.get("time_s", 0.0) for row in history[-2:]]
    return times[-1] - times[-2]


def _stop_reason(config, progress: dict, epoch_seconds: float) -> str | None:
    if progress["epoch"] >= config.epochs:
        return "epoch budget reached"
    if config.early_stopping_patience and progress["bad_epochs"] >= config.early_stopping_patience:
        return f"early stopping: no validation improvement in {config.early_stopping_patience} epochs"
    if not time_left(config, progress["elapsed"], epoch_seconds):
        return f"time budget of {config.max_time} min reached"
    return None


def _epoch_end(loop, progress, row) -> bool:
    """Book-keeping after an epoch: plateau, early stopping, best loss; True if the epoch is the new best."""
    config = loop.config
    weights = [float(w) for w in weights_at(config, row["epoch"] - 1)]
    # Checkpoints from before this book-keeping lack the key: the previous epoch ran under this
    # config's schedule as far as can be known.
    previous = progress.get("loss_weights") or [float(w) for w in weights_at(config, max(row["epoch"] - 2, 0))]
    if previous != weights:
        _restart_selection(progress)  # a new stage: its validation losses are not comparable
    progress["loss_weights"] = weights
    if config.lr_schedule == "plateau":  # else its factor decays unused, and a resume that switches to it starts low
        progress["plateau"] = list(update_plateau(config, PlateauState(*progress["plateau"]), row["valid_loss"]))
    progress["history"].append(row)
    improved = row["valid_loss"] < progress["best_valid"]
    # early stopping counts epochs without a meaningful (0.01 % relative) improvement
    meaningful = row["valid_loss"] < progress["best_valid"] * (1 - 1e-4)
    progress["bad_epochs"] = 0 if meaningful else progress["bad_epochs"] + 1
    if improved:
        progress["best_valid"] = row["valid_loss"]
    return improved


def _restart_selection(progress: dict) -> None:
    """Validation losses from here on measure something else: the best model, early stopping and the
    plateau scheduler start afresh."""
    progress["best_valid"], progress["bad_epochs"] = float("inf"), 0
    progress["plateau"] = [progress["plateau"][0], float("inf"), 0]


def _adopt_a_newer_best(out: Path, progress: dict) -> None:
    """A kill inside ``_flush``, after the best model but before last.ckpt, leaves model.mlpot and
    best.ckpt from a later epoch than last.ckpt. The resumed run repeats those epochs, not bit for bit
    (a timed cosine follows the clock), so to replace that model it must beat that model's loss."""
    path = out / "checkpoints" / "best.ckpt"
    if not path.is_file():
        return
    try:
        best = checkpoint_progress(path)
    except ValueError as err:
        # best.ckpt only raises the bar here; last.ckpt, which the run resumes from, is intact
        warnings.warn(
            f"{err.args[0].split(';')[0]}: ignored, the run resumes from last.ckpt (best.ckpt is rewritten at the next "
            "best epoch)",
            stacklevel=2,
        )
        return
    if best["epoch"] > progress["epoch"] and best.get("loss_weights") == progress.get("loss_weights"):
        progress["best_valid"] = min(progress["best_valid"], best["best_valid"])


def _snapshot(progress: dict) -> dict:
    """A copy of ``progress`` that later epochs do not change (rows and lists are replaced, never edited)."""
    return {**progress, "history": list(progress["history"])}


def _flush(out: Path, state, progress: dict, best, model_config: ModelConfig) -> None:
    """Write the best model and checkpoint (``best``: (state, progress) of the best epoch not yet
    written, or None), the last checkpoint and the CSV."""
    if best is not None:
        best_state, best_progress = best
        extra = {"epoch": best_progress["epoch"]}
        save(Potential(model_config, best_state.ema), out / "model.mlpot", extra=extra)
        save_checkpoint(out / "checkpoints" / "best.ckpt", best_state, best_progress, model_config.to_dict())
    save_checkpoint(out / "checkpoints" / "last.ckpt", state, progress, model_config.to_dict())
    _write_csv(out / "metrics.csv", progress["history"])


_INIT_CACHE: dict = {}


def _saved_model_config(saved: dict) -> ModelConfig:
    """The ``ModelConfig`` of a checkpoint's ``model_config`` dict (JSON lists back to a species tuple)."""
    return ModelConfig(**{**saved, "species": tuple(saved["species"])})


def _create(model_config: ModelConfig, seed: int) -> Potential:
    """``Potential.create``, reusing initial parameters across runs (CV folds, learning curves): they
    depend on the architecture, species count and seed, not on reference energies or scale."""
    arch = model_config.replace(reference_energies=(), energy_scale=())
    key = (arch.key(), seed)
    if key not in _INIT_CACHE:
        _INIT_CACHE.clear()
        _INIT_CACHE[key] = Potential.create(arch, seed).params
    return Potential(model_config, _INIT_CACHE[key])


def build(config, prepared: Prepared, resume: bool = False):
    """(loop, initial or resumed state, progress, model_config) for a run."""
    out = Path(config.output_dir)
    model_config = prepared.model_config
    if prepared.initial_params is not None:  # fine-tuning (a resume below still wins)
        potential = Potential(model_config, prepared.initial_params)
    else:
        potential = _create(model_config, config.seed)
    optimizer = make_optimizer(config)
    state, progress = init_state(potential, optimizer), _new_progress()
    if resume:
        state, progress, saved = load_checkpoint(out / "checkpoints" / "last.ckpt", state)
        model_config = _saved_model_config(saved)
        if model_config.species != prepared.model_config.species:
            # the data were indexed by other species: every atom would train as another element
            raise ValueError(
                f"--resume {out}: the data were prepared for elements {prepared.model_config.species}, the "
                f"checkpoint's model has {model_config.species} (prepare with species=the checkpoint's)"
            )
        potential = Potential(model_config, state.params)
    compute_stress = data.has_stress(prepared.train.frames + prepared.valid.frames)
    loop = Loop(
        config,
        potential,
        prepared.train,
        prepared.valid,
        make_train_step(potential, optimizer, config, compute_stress),
        jitted_predict(potential, compute_stress),
    )
    return loop, state, progress, model_config


def _check_resume(saved_path: Path, config) -> list[str]:
    """Refuse a resume whose config changes the model or the validation split; return the settings
    it changes that change what the validation loss measures.

    A resume takes the model from the checkpoint, so a new model, cutoff or dtype would be
    ignored without a word; a new valid_fraction, test_fraction or (where frames are drawn)
    split seed draws another split, and the best-so-far loss would then compare different frames.
    Budgets, rates and weights may change: that is what a resume is for. So may the loss shape
    (``loss``, ``huber_delta``), the labels read and ``valid_file``, but the best model is then chosen
    afresh. (Which frames are held out, whatever the config says, is ``_check_split``'s.)
    """
    if not saved_path.exists():
        return []
    saved, now = yaml.safe_load(saved_path.read_text()) or {}, config.to_dict()
    keys = ["model", "cutoff", "dtype", "repulsion"]
    # a hyperparameter spelt out at its default value is the same model
    spelt = lambda model: (
        {**config_mod.model_defaults(model["name"]), **model}
        if isinstance(model, dict) and model.get("name") in config_mod.MODELS
        else model
    )
    before, after = {**saved, "model": spelt(saved.get("model"))}, {**now, "model": spelt(now["model"])}
    changed = [
        f"{key} {saved.get(key)!r} -> {now[key]!r}" for key in keys if key in saved and before[key] != after[key]
    ]
    drawn_then, drawn_now = _drawn_fractions(saved), _drawn_fractions(now)
    # a switch between a file and a drawn fraction: _check_split refuses one to a drawn fraction
    changed += [
        f"{key} {drawn_then[key]!r} -> {drawn_now[key]!r}"
        for key in drawn_then
        if key in saved and None not in (drawn_then[key], drawn_now[key]) and drawn_then[key] != drawn_now[key]
    ]
    if _optimiser_state_shape(saved) != _optimiser_state_shape(now):
        # the checkpoint's optimiser state has the old chain's shape: flax would fail on a path inside it
        before = _with_defaults(saved)
        keys = ("clip_grad_norm", "amsgrad", "optimizer", "weight_decay")
        changed += [f"{key} {before[key]!r} -> {now[key]!r}" for key in keys if before[key] != now[key]]
    drawn = not config.valid_file or (not config.test_file and config.test_fraction > 0)
    saved_seed = saved.get("seed") if saved.get("split_seed") is None else saved["split_seed"]
    if drawn and "seed" in saved and saved_seed != config.held_out_seed:
        changed.append(f"split seed (split_seed, else seed) {saved_seed!r} -> {config.held_out_seed!r}")
    if changed:
        raise ValueError(
            f"--resume {saved_path.parent}: {'; '.join(changed)} since the run began. A resume keeps the model and "
            "the validation split: put these back, or start a new output_dir (init_from=<model> to fine-tune)"
        )
    if saved.get("isolated_atoms_file") != now["isolated_atoms_file"]:
        warnings.warn(
            f"isolated_atoms_file {now['isolated_atoms_file']} is not used on a resume (it was "
            f"{saved.get('isolated_atoms_file')}): the model keeps the reference energies it began with",
            stacklevel=3,
        )
    # the labels read are what the loss measures: a best loss on other labels would never be beaten
    measures = ["loss", "valid_file", "energy_key", "forces_key", "stress_key", "inconsistent_stress"]
    # drawn frames from a new train_file: _check_split refuses them, but a checkpoint from before its
    # digests can only be judged by the name
    measures += ["train_file"] if not config.valid_file else []
    if "huber" in (saved.get("loss"), now["loss"]):
        measures.append("huber_delta")
    return [key for key in measures if key in saved and saved[key] != now[key]]


def _split_digests(prepared: Prepared) -> dict:
    """``frames_digest`` of the training, validation and test frames (None: no test frames), and of the
    validation frames with their energy labels ("valid_labels": other labels re-choose the best model)."""
    test = prepared.test.frames if prepared.test is not None else None
    parts = {"train": prepared.train.frames, "valid": prepared.valid.frames, "test": test}
    digests = {name: None if part is None else data.frames_digest(part) for name, part in parts.items()}
    return {**digests, "valid_labels": data.frames_digest(prepared.valid.frames, labels=True)}


def _check_split(out: Path, config, saved: dict | None, now: dict) -> list[str]:
    """Refuse a resume whose held-out frames, drawn from train_file, are not those the run began with;
    return ["validation frames"] where the validation frames (valid_file's) or their energy labels changed
    (the best model is then chosen afresh).

    The config can be the same while the data are not: frames appended to train_file (an active-learning
    round) give another permutation, which would hold out frames the model has already trained on and
    compare the best-so-far loss across two sets of frames. So would a switch from valid_file (or
    test_file) to a drawn fraction. (Checkpoints from before the digests: None, nothing checked.)
    """
    if not saved:
        return []
    drawn = {"valid": not config.valid_file, "test": not config.test_file and config.test_fraction > 0}
    names = {"valid": "validation", "test": "test"}
    moved = [part for part in ("valid", "test") if drawn[part] and saved.get(part) != now[part]]
    if moved:
        count = lambda digest: digest.split(":")[0] if digest else "0"
        raise ValueError(
            f"--resume {out}: the {' and '.join(names[p] for p in moved)} frames drawn from train_file are not "
            f"those the run held out ({count(saved.get('train'))} training frames then, {count(now['train'])} "
            "now: train_file changed, or a valid_file/test_file became a drawn fraction), so some of them are "
            "frames the model has trained on. Put the data back, or start a new output_dir with "
            f"init_from={out / 'model.mlpot'} to go on training on the new data"
        )
    changed = any(saved.get(key) != now[key] for key in ("valid", "valid_labels"))
    return ["validation frames"] if changed else []


def _drawn_fractions(config: dict) -> dict:
    """The held-out fractions that ``split_frames`` draws with (None: its file is given, it draws nothing)."""
    return {
        f"{part}_fraction": None if config.get(f"{part}_file") else config.get(f"{part}_fraction")
        for part in ("valid", "test")
    }


def _with_defaults(config: dict) -> dict:
    """A saved config.yaml with the defaults of the keys it lacks (older runs wrote fewer keys)."""
    return {**config_mod.TrainConfig().to_dict(), **config}


def _optimiser_state_shape(config: dict) -> tuple:
    """What decides the optimiser state's structure (``make_optimizer``): a clip or not, Adam or
    AMSGrad moments, decoupled weight decay or not. Their values (a clip norm, a decay) may change."""
    value = _with_defaults(config)
    decay = value["optimizer"] == "adamw" and (value["weight_decay"] or 0) > 0
    return bool(value["clip_grad_norm"]), bool(value["amsgrad"]), decay


def _finite(state: TrainState) -> bool:
    """Every parameter and EMA parameter is finite."""
    leaves = jax.tree_util.tree_leaves((state.params, state.ema))
    return bool(jnp.all(jnp.stack([jnp.all(jnp.isfinite(leaf)) for leaf in leaves])))


def _output_folder(config, resume: bool) -> Path:
    """``output_dir``, checked before any work: a folder that can be made and written in, holding a
    checkpoint to resume."""
    out = Path(config.output_dir)
    check_output_folder("output_dir", out)
    if resume and not (out / "checkpoints" / "last.ckpt").is_file():
        raise FileNotFoundError(f"--resume: no checkpoint {out / 'checkpoints' / 'last.ckpt'} (nothing to resume)")
    return out


def fit(config, prepared: Prepared, resume: bool = False, stop_after: int | None = None) -> TrainResult:
    """Train on prepared data. ``stop_after``: end this call after that many epochs (as if killed)."""
    config = config_mod.validate(config)
    require_x64("mlpot training")
    out = _output_folder(config, resume)
    out.mkdir(parents=True, exist_ok=True)
    remeasured = _check_resume(out / "config.yaml", config) if resume else []
    loop, state, progress, model_config = build(config, prepared, resume)  # refuses data of other elements first
    split = _split_digests(prepared)
    if resume:
        remeasured += _check_split(out, config, progress.get("split"), split)
        # they describe the run as it ended: a killed resume must not leave them beside a newer model
        remove_run_outputs(out, only=FINISHED_OUTPUTS)
        _adopt_a_newer_best(out, progress)
        if remeasured:
            _restart_selection(progress)
            # on disk before config.yaml forgets the old settings: a kill before the first epoch's write
            # would otherwise leave a resume that no longer sees the change, and keeps the old best loss
            save_checkpoint(out / "checkpoints" / "last.ckpt", state, progress, model_config.to_dict())
            if config.progress:
                print(f"resume: {', '.join(remeasured)} changed, so the best model is chosen afresh from here on")
        if progress["history"]:  # a kill between last.ckpt and the CSV left it short
            _write_csv(out / "metrics.csv", progress["history"])
    progress["split"] = split
    atomic_write(out / "config.yaml", config_mod.dump(config).encode())
    if config.warmup_epochs > config.epochs:
        warnings.warn(
            f"warmup_epochs {config.warmup_epochs:g} > epochs {config.epochs}: the learning rate rises for the "
            f"whole run and never reaches learning_rate {config.learning_rate:g}",
            stacklevel=2,
        )
    steps = -(-len(prepared.train.frames) // config.batch_size)
    log_lines = config.progress and not sys.stderr.isatty()
    bar = tqdm(
        total=config.epochs * steps,
        initial=progress["epoch"] * steps,
        disable=not config.progress or log_lines,
        unit="batch",
        dynamic_ncols=True,
        mininterval=1.0,
    )
    epoch_seconds, run_epochs, reason = _last_epoch_seconds(progress["history"]), 0, None
    best, unwritten, mark = None, False, time.perf_counter()
    flushed, logged, finished = mark, None, None  # finished: the last complete epoch's row
    while (reason := _stop_reason(config, progress, next_epoch_estimate(epoch_seconds, run_epochs))) is None:
        if stop_after is not None and run_epochs >= stop_after:
            reason = "stopped by caller"
            break
        epoch = progress["epoch"]
        bar.set_description(f"epoch {epoch + 1}/{config.epochs}")
        before = state
        state, row = run_epoch(loop, state, epoch, PlateauState(*progress["plateau"]), bar, progress["elapsed"])
        if not math.isfinite(row["train_loss"]) or not _finite(state):
            # Keep the last finite state: it is what last.ckpt holds and what --resume, with a lower
            # learning_rate, starts again from (a NaN checkpoint would only diverge again). The loss is
            # the mean of losses taken before each update, so an epoch's last update can overflow unseen.
            state = before
            what = "loss" if not math.isfinite(row["train_loss"]) else "parameters after the last step"
            reason = f"diverged (non-finite {what}) in epoch {epoch + 1}: lower learning_rate or check the data"
            break
        row = {"epoch": epoch + 1, **row, **validate(loop, state, epoch)}
        # wall time since the last epoch ended, so the budget also counts the book-keeping after it
        now = time.perf_counter()
        epoch_seconds, mark = now - mark, now
        progress["elapsed"] += epoch_seconds
        progress["epoch"] = epoch + 1
        row["time_s"] = progress["elapsed"]
        if _epoch_end(loop, progress, row):
            best = (state, _snapshot(progress))
        unwritten = True
        if now - flushed >= CHECKPOINT_INTERVAL_S:
            _flush(out, state, progress, best, model_config)
            best, unwritten, flushed = None, False, time.perf_counter()
        if config.max_time:  # ETA from whichever budget ends first
            remaining = max(0.0, config.max_time * 60.0 - progress["elapsed"])
            bar.total = min(config.epochs, progress["epoch"] + int(remaining / epoch_seconds)) * steps
        bar.set_postfix(postfix(row))
        finished = row
        if log_lines and (logged is None or now - logged >= LOG_INTERVAL_S):
            _log_line(config, row)
            logged = now
        run_epochs += 1
    bar.close()
    if log_lines and finished is not None and logged != mark:  # the last epoch, unless just logged
        _log_line(config, finished)
    if unwritten or not (out / "checkpoints" / "last.ckpt").is_file():
        # also a run that diverged in its first epoch: its start is what a --resume at a lower rate needs
        _flush(out, state, progress, best, model_config)
    if config.progress or reason.startswith("diverged"):
        print(f"training stopped: {reason}")
    if not math.isfinite(progress["best_valid"]) and not (resume and (out / "model.mlpot").is_file()):
        # no finite validation loss and no model: keep the latest EMA. (A resume that restarted the choice
        # and ran no epoch keeps the best model it found, not the last epoch's EMA.)
        save(Potential(model_config, state.ema), out / "model.mlpot", extra={"epoch": progress["epoch"]})
    result = _finish(config, prepared, out, progress, model_config, loop.predict_fn)
    return result._replace(compiles=loop.step_fn._cache_size(), stop_reason=reason)


def _log_line(config, row: dict) -> None:
    shown = " ".join(f"{key} {value}" for key, value in postfix(row).items())
    minutes = row["time_s"] / 60.0
    print(f"epoch {row['epoch']}/{config.epochs} {minutes:.1f} min lr {row['lr']:.3g} {shown}", flush=True)


def _finish(config, prepared, out, progress, model_config, predict_fn) -> TrainResult:
    """Evaluate the best model on validation and test frames; write plots and results.json."""
    best = Potential(model_config, load_best_params(out))
    valid_metrics, valid_pairs = evaluate(best, prepared.valid, config.batch_size, predict_fn)
    valid_metrics["worst_frames"] = worst_frames(prepared.valid.frames, valid_pairs, WORST_FRAMES)
    if config.plots:
        plots.parity(valid_pairs, out / "parity_valid.png", "validation")
    test_metrics = None
    if prepared.test is not None:
        test_fn = jitted_predict(best, data.has_stress(prepared.test.frames))
        test_metrics, test_pairs = evaluate(best, prepared.test, config.batch_size, test_fn)
        if config.plots:
            plots.parity(test_pairs, out / "parity_test.png", "test")
    if progress["history"] and config.plots:
        plots.learning_curves(progress["history"], out / "learning_curves.png")
    results = {
        "valid": valid_metrics,
        "test": test_metrics,
        "epochs": progress["epoch"],
        "elapsed_s": progress["elapsed"],
    }
    write_json(out / "results.json", results)
    return TrainResult(best, progress["history"], valid_metrics, test_metrics, out)


def load_best_params(out: Path):
    from mlpot.modelfile import load

    return load(out / "model.mlpot").params


def as_config(config) -> config_mod.TrainConfig:
    """A validated ``TrainConfig`` from a TrainConfig, a dict or a YAML path (what every entry point takes)."""
    if isinstance(config, (str, Path)):
        return config_mod.load(config)
    if isinstance(config, dict):
        return config_mod.from_dict(config)
    return config_mod.validate(config)


# what a run writes when it ends, from its best model
FINISHED_OUTPUTS = (
    "results.json",
    "parity_valid.png",
    "parity_test.png",  # a new run without test frames (or plots: false) writes none to replace it
    "learning_curves.png",
)
# what an output_dir holds of a finished or killed run: a new run there removes all of it first, so that
# nothing of the old one is resumed or read back as the new one's
RUN_OUTPUTS = ("checkpoints/last.ckpt", "checkpoints/best.ckpt", "model.mlpot", "metrics.csv") + FINISHED_OUTPUTS


def remove_run_outputs(out: Path, extra: tuple[str, ...] = (), only: tuple[str, ...] | None = None) -> None:
    """Remove ``RUN_OUTPUTS`` and ``extra`` from ``out`` (``only``: just these)."""
    for name in only if only is not None else (*RUN_OUTPUTS, *extra):
        (out / name).unlink(missing_ok=True)


def held_run(out: Path) -> Path | None:
    """The file that shows ``out`` holds a run (its last checkpoint or its model), or None."""
    return next((path for path in (out / "checkpoints" / "last.ckpt", out / "model.mlpot") if path.is_file()), None)


def train(
    config, resume: bool = False, frames=None, stop_after: int | None = None, overwrite: bool = False
) -> TrainResult:
    """Python API: ``train(TrainConfig | dict | path)``. See the module docstring for outputs.

    ``output_dir`` holding a run is refused unless ``resume`` (continue it) or ``overwrite``: remove
    its model and checkpoints once the data have been read and checked (a typo in a file name must not
    cost the old model), before the first epoch (a kill after that must not resume the old run).
    """
    if resume and overwrite:
        raise ValueError("resume continues the run in output_dir, overwrite replaces it: give one")
    config = as_config(config)
    out = _output_folder(config, resume)  # before reading data, which can take minutes
    if not (resume or overwrite) and (held := held_run(out)):
        # a new run there would mix with the old one: a later resume would carry on the old parameters
        raise ValueError(
            f"output_dir {out} already holds a run ({held}): resume=True continues it, overwrite=True starts "
            "over and replaces it, or give another output_dir"
        )
    if (
        overwrite
        and config.init_from
        and Path(config.init_from).resolve() in {(out / n).resolve() for n in RUN_OUTPUTS}
    ):
        # a fine-tune into its base model's own folder: the base would be gone before the first epoch
        raise ValueError(
            f"init_from {config.init_from} is a file of output_dir {out}, which overwrite (--overwrite) removes "
            "before the first epoch; copy the base model elsewhere or give another output_dir"
        )
    # a resume reads the data as the checkpoint's model does: same species, same indices
    saved = checkpoint_model_config(out / "checkpoints" / "last.ckpt") if resume else None
    # the checkpoint holds the model, its reference energies included: a resume needs neither the base
    # model (it may have moved since) nor the isolated atoms
    reading = config.replace(init_from=None, isolated_atoms_file=None) if resume else config
    prepared = prepare(reading, frames, tuple(saved["species"]) if saved else None)
    if overwrite:
        remove_run_outputs(out)
    if config.progress:
        resumed = _saved_model_config(saved) if saved else None
        print(describe(prepared, config, resumed))
    return fit(config, prepared, resume=resume, stop_after=stop_after)
