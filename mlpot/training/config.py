"""Training configuration: one flat dataclass, read from YAML, validated.

Unknown keys are errors that suggest the closest known key. ``-o key=value``
overrides are parsed as YAML values; ``model.<name>=value`` sets a model
hyperparameter. ``template()`` is the commented default config.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import numbers
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from mlpot.models import MODELS, trainable


@dataclass
class TrainConfig:
    # data
    train_file: str | list = ""  # one path or a list; anything ase.io.read reads
    valid_file: str | list | None = None  # if unset, valid_fraction of train_file is held out
    valid_fraction: float = 0.05
    test_file: str | list | None = None
    test_fraction: float = 0.0  # held out of train_file for a final test (when no test_file)
    isolated_atoms_file: str | None = None  # per-element reference energies; else least squares
    energy_key: str = "energy"
    forces_key: str = "forces"
    stress_key: str = "stress"
    skip_bad_frames: bool = False
    inconsistent_stress: str = "warn"  # warn | drop: stress labels that contradict their forces across vacuum
    config_type_weights: dict = field(default_factory=dict)  # atoms.info["config_type"] -> relative loss weight
    # model
    model: dict = field(default_factory=lambda: {"name": "painn", "features": 64, "num_interactions": 3})
    cutoff: float = 5.0  # Å
    dtype: str = "float32"  # network float policy
    init_from: str | None = None  # model file to fine-tune: its parameters, species and references
    repulsion: bool = True  # ZBL core below the closest training pair of each kind (zero on the data)
    # loss
    energy_weight: float = 1.0  # per (eV/atom)^2
    forces_weight: float = 10.0  # per (eV/Å)^2
    stress_weight: float = 10.0  # per (eV/Å^3)^2
    weight_schedule: list = field(default_factory=list)  # [{epoch: 80, energy_weight: 100}]: after 80 epochs
    loss: str = "mse"  # mse | huber
    huber_delta: float = 0.01
    # optimisation
    batch_size: int = 8
    optimizer: str = "adam"  # adam | adamw
    amsgrad: bool = False
    weight_decay: float = 0.0  # adamw only
    learning_rate: float = 0.005
    lr_schedule: str = "cosine"  # cosine | plateau | constant
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01  # cosine floor, and plateau floor, as a fraction of learning_rate
    plateau_patience: int = 5
    plateau_factor: float = 0.5
    clip_grad_norm: float | None = 10.0
    ema_decay: float | None = 0.99
    early_stopping_patience: int | None = None  # epochs without validation improvement
    epochs: int = 100
    max_time: float | None = None  # minutes of the training loop (not reading data or the final evaluation)
    seed: int = 0  # initial parameters and batch order; the held-out split too unless split_seed is set
    split_seed: int | None = None  # seed of the drawn valid/test split (and cv folds); None: seed
    output_dir: str = "runs/train"
    progress: bool = True  # progress bar and summary lines (no terminal: a line a minute)
    plots: bool = True  # parity and learning-curve PNGs at the end (false: faster sweeps)

    @property
    def held_out_seed(self) -> int:
        """The seed that draws the validation and test frames (and cv folds): ``split_seed``, else ``seed``.
        Committee members trained with other seeds must share it, or one member's training frames
        are another's held-out ones."""
        return self.seed if self.split_seed is None else self.split_seed

    def replace(self, **changes) -> TrainConfig:
        return validate(dataclasses.replace(self, **changes))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


KEYS = [f.name for f in dataclasses.fields(TrainConfig)]
CHOICES = {
    "loss": ("mse", "huber"),
    "optimizer": ("adam", "adamw"),
    "lr_schedule": ("cosine", "plateau", "constant"),
    "dtype": ("float32", "float64"),
    "inconsistent_stress": ("warn", "drop"),
}


def _unknown(key, known, where: str) -> ValueError:
    key = str(key)  # YAML keys may be numbers (1: 2), which difflib cannot compare
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else f"; known keys: {', '.join(known)}"
    return ValueError(f"{where}: unknown key '{key}'{hint}")


def model_fields(name: str) -> list[str]:
    """Hyperparameters a model accepts (its dataclass fields minus the ones training sets)."""
    fixed = {"num_species", "cutoff", "dtype", "parent", "name"}
    return [f.name for f in dataclasses.fields(MODELS[name]) if f.init and f.name not in fixed]


def model_defaults(name: str) -> dict:
    """The default of each hyperparameter of ``model_fields`` that has one."""
    fields = {f.name: f for f in dataclasses.fields(MODELS[name])}
    return {key: fields[key].default for key in model_fields(name) if fields[key].default is not dataclasses.MISSING}


def validate(config: TrainConfig, where: str = "config") -> TrainConfig:
    """Refuse values that would run but train nothing, or wrongly (errors name ``where``, the file)."""
    if not config.train_file:
        raise ValueError(f"{where}: 'train_file' is required")
    config = _typed(config, where)
    for key, choices in CHOICES.items():
        if getattr(config, key) not in choices:
            raise ValueError(f"{where}: {key} must be one of {choices}, not {getattr(config, key)!r}")
    model = dict(config.model)
    name = model.pop("name", None)
    if not isinstance(name, str) or name not in trainable():
        assembled = isinstance(name, str) and name in MODELS  # the committee
        why = " (a committee is assembled from trained models: mlpot committee OUT A B ...)" if assembled else ""
        raise ValueError(f"{where}: model.name must be one of {trainable()}, not {name!r}{why}")
    for key in model:
        if key not in model_fields(name):
            raise _unknown(key, model_fields(name), f"{where}: model '{name}'")
    if config.valid_file is None and not 0 < config.valid_fraction < 1:
        raise ValueError(f"{where}: give valid_file or a valid_fraction between 0 and 1")
    if not 0 <= config.test_fraction < 1:
        raise ValueError(f"{where}: test_fraction must be in [0, 1)")
    if config.test_file is not None and config.test_fraction > 0:  # set, and silently unused
        raise ValueError(
            f"{where}: test_fraction {config.test_fraction:g} draws test frames from train_file only when there "
            "is no test_file; give one of them (test_fraction=0 or test_file=null)"
        )
    if config.valid_file is None and config.test_file is None and config.valid_fraction + config.test_fraction >= 1:
        raise ValueError(
            f"{where}: valid_fraction + test_fraction must be < 1 (they are drawn from train_file), got "
            f"{config.valid_fraction} + {config.test_fraction}"
        )
    positive = ("cutoff", "batch_size", "learning_rate", "epochs")
    for key in positive:
        if not getattr(config, key) > 0:
            raise ValueError(f"{where}: {key} must be positive, got {getattr(config, key)}")
    try:  # a model's own checks on its hyperparameters (MACE: l_max >= hidden_l), before any data is read
        MODELS[name](num_species=1, cutoff=config.cutoff, **model)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: model: {err}") from None
    for key in ("energy_weight", "forces_weight", "stress_weight", "warmup_epochs", "weight_decay", "seed"):
        if getattr(config, key) < 0:
            raise ValueError(f"{where}: {key} must be >= 0")
    if config.weight_decay > 0 and config.optimizer != "adamw":
        raise ValueError(
            f"{where}: weight_decay {config.weight_decay} is applied by optimizer adamw only; "
            f"set optimizer: adamw (or weight_decay: 0), the config has optimizer: {config.optimizer}"
        )
    if config.split_seed is not None and config.split_seed < 0:
        raise ValueError(f"{where}: split_seed must be >= 0 (or null: seed)")
    for key in ("seed", "split_seed"):  # JAX's PRNG key takes a 64-bit signed integer
        value = getattr(config, key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value >= 2**63):
            raise ValueError(f"{where}: {key} must be an integer below 2^63, got {_shown(value)}")
    weights = config.config_type_weights
    if not isinstance(weights, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0 for v in weights.values()
    ):
        raise ValueError(
            f"{where}: config_type_weights must map config types to positive numbers ({{Surface: 10}}), "
            f"got {_shown(weights)}"
        )
    ranges = {  # key: (test, what it must be); None always allowed where the type says so
        "huber_delta": (lambda v: v > 0, "> 0"),
        "clip_grad_norm": (lambda v: v > 0, "> 0 (or null: no clipping)"),
        "ema_decay": (lambda v: 0 <= v < 1, "in [0, 1) (or null: no EMA)"),
        "max_time": (lambda v: v > 0, "> 0 minutes (or null: no budget)"),
        "early_stopping_patience": (lambda v: v >= 1, ">= 1 epoch (or null)"),
        "plateau_patience": (lambda v: v >= 1, ">= 1 epoch"),
        "min_lr_ratio": (lambda v: 0 <= v <= 1, "in [0, 1]"),
        "plateau_factor": (lambda v: 0 < v < 1, "in (0, 1)"),
    }
    for key, (test, must) in ranges.items():
        value = getattr(config, key)
        if value is not None and not test(value):
            raise ValueError(f"{where}: {key} must be {must}, got {value}")
    if not isinstance(config.weight_schedule, (list, tuple)):
        raise ValueError(  # noqa: TRY004 - every config error is a ValueError, which the CLI reports in one line
            f"{where}: weight_schedule must be a list of mappings ([{{epoch: 80, energy_weight: 100}}]), "
            f"got {_shown(config.weight_schedule)}"
        )
    for k, entry in enumerate(config.weight_schedule):
        if not isinstance(entry, dict) or "epoch" not in entry:
            raise ValueError(f"{where}: weight_schedule[{k}] must be a mapping with an 'epoch' key")
        for key in entry:
            if key not in ("epoch", "energy_weight", "forces_weight", "stress_weight"):
                raise _unknown(
                    key, ["epoch", "energy_weight", "forces_weight", "stress_weight"], f"{where}: weight_schedule[{k}]"
                )
            number = entry[key]
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not 0 <= number < math.inf:
                raise ValueError(f"{where}: weight_schedule[{k}].{key} must be a number >= 0, got {number!r}")
        if not float(entry["epoch"]).is_integer():
            raise ValueError(f"{where}: weight_schedule[{k}].epoch must be a whole epoch, got {entry['epoch']!r}")
    stages = weight_stages(config)
    for (start, weights), (end, _) in zip(stages, [*stages[1:], (math.inf, None)]):
        if start < min(end, config.epochs) and not any(weights.values()):
            when = "" if start == 0 else f" from epoch {start} (weight_schedule)"
            raise ValueError(
                f"{where}: energy_weight, forces_weight and stress_weight are all 0{when}: the loss would fit nothing"
            )
    return config


def weight_stages(config: TrainConfig) -> list[tuple[int, dict]]:
    """(first epoch, {energy, forces, stress: weight}) of each stage of the loss weights: the base weights
    from epoch 0, then each ``weight_schedule`` entry (in epoch order) updating the weights it names."""
    values = {"energy": config.energy_weight, "forces": config.forces_weight, "stress": config.stress_weight}
    stages = [(0, dict(values))]
    for entry in sorted(config.weight_schedule, key=lambda e: e["epoch"]):
        values.update({key[: -len("_weight")]: float(v) for key, v in entry.items() if key != "epoch"})
        stages.append((int(entry["epoch"]), dict(values)))
    return stages


def from_dict(values: dict, where: str = "config") -> TrainConfig:
    for key in values:
        if key not in KEYS:
            raise _unknown(key, KEYS, where)
    defaults = TrainConfig()
    values = dict(values)
    if "model" in values:
        if values["model"] is not None and not isinstance(values["model"], dict):
            raise ValueError(
                f"{where}: model must be a mapping (model: {{name: mace, features: 32}}), got {values['model']!r}; "
                "on the command line set its entries: -o model.name=mace"
            )
        values["model"] = dict(values["model"] or {})
        values["model"].setdefault("name", defaults.model["name"])
    return validate(TrainConfig(**values), where)


# Model hyperparameters that may be 0 (spherical-harmonic degrees); every other one must be positive.
ZERO_ALLOWED = {"hidden_l", "l_max"}


def _typed(config: TrainConfig, where: str) -> TrainConfig:
    """Numbers, paths and model hyperparameters of the declared types (YAML, -o or the Python API)."""
    changes = {}
    for f in dataclasses.fields(TrainConfig):
        kind, value = f.type.removesuffix(" | None"), getattr(config, f.name)
        if value is None and kind != f.type:
            continue  # null is allowed where the type says so ("off", "unset"); elsewhere it is refused below
        if kind in ("float", "int", "bool"):
            changes[f.name] = _number(value, kind, f"{where}: {f.name}")
        elif f.type.startswith("str"):
            paths = list(value) if isinstance(value, (list, tuple)) and "list" in f.type else [value]
            if not paths or not all(isinstance(p, (str, Path)) and str(p) for p in paths):
                raise ValueError(
                    f"{where}: {f.name} must be {'a path or a list of paths' if 'list' in f.type else 'text'}, "
                    f"got {_shown(value)}"
                )
    if isinstance(config.weight_schedule, (list, tuple)):  # YAML 1.1 reads 1e3 as a string here too
        changes["weight_schedule"] = [
            {key: value if key == "epoch" else _yaml_float(value) for key, value in entry.items()}
            if isinstance(entry, dict)
            else entry
            for entry in config.weight_schedule
        ]
    if isinstance(config.config_type_weights, dict):
        changes["config_type_weights"] = {key: _yaml_float(v) for key, v in config.config_type_weights.items()}
    model = dict(config.model)
    name = model.get("name")
    if isinstance(name, str) and name in MODELS:  # any other name is refused by validate
        kinds = {f.name: f.type for f in dataclasses.fields(MODELS[name])}
        for key, value in model.items():
            if key == "name" or kinds.get(key) not in ("int", "float"):
                continue
            value = model[key] = _number(value, kinds[key], f"{where}: model.{key}")
            if not (value >= 0 if key in ZERO_ALLOWED else value > 0):
                raise ValueError(
                    f"{where}: model.{key} must be {'>= 0' if key in ZERO_ALLOWED else '> 0'}, got {value}"
                )
        changes["model"] = model
    return dataclasses.replace(config, **changes)


def _number(value, kind: str, what: str):
    """YAML's number as ``kind``. Floats may come as strings: YAML 1.1 reads ``1e3`` (no dot) as one.
    Nothing is truncated or guessed: 2.7 is not an int, and the string "false" is not a bool."""
    is_bool = isinstance(value, (bool, np.bool_))
    ok = not is_bool or kind == "bool"
    if ok and kind == "bool":
        ok = is_bool
    elif ok and kind == "int":  # numpy scalars too (a sweep over np.array([...]))
        ok = isinstance(value, numbers.Integral) or (isinstance(value, numbers.Real) and float(value).is_integer())
    elif ok:
        try:
            value = float(value)
        except (TypeError, ValueError):
            ok = False
        # .nan or .inf would pass every range test below (nan compares false) and train on NaN
        if ok and not math.isfinite(value):
            raise ValueError(f"{what} must be a finite number, got {value}")
    if not ok:
        raise ValueError(f"{what} must be a{'n' if kind == 'int' else ''} {kind}, got {_shown(value)}")
    return {"float": float, "int": int, "bool": bool}[kind](value)


def _yaml_float(value):
    """A number YAML 1.1 left as a string (``1e3``) as that number; anything else unchanged, for
    ``validate`` to refuse with its own message."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _shown(value) -> str:
    """A value as the user wrote it: an empty ``-o epochs=`` is YAML's null, not Python's None."""
    return "null" if value is None else repr(value)


def apply_overrides(values: dict, overrides) -> dict:
    """``["key=value", "model.features=32"]`` applied to a raw config dict (values parsed as YAML)."""
    values = dict(values)
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"override {item!r} is not key=value")
        key, text = item.split("=", 1)
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as err:  # its own message spans lines, with marks into a one-line text
            raise ValueError(
                f"override {item!r}: not a valid YAML value ({getattr(err, 'problem', None) or err})"
            ) from None
        if key.startswith("model."):
            model = values.get("model", TrainConfig().model)
            if model is None or isinstance(model, dict):  # "model:" left empty reads as null, as from_dict takes it
                values["model"] = {**(model or {}), key[len("model.") :]: value}
            # anything else is refused by from_dict, naming the file
        else:
            values[key] = value
    return values


class _RepeatedKey(yaml.YAMLError):
    pass


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's loaders keep the last of a repeated key: settings put above `mlpot template`'s output
    would silently lose to the template's own lines further down."""

    def construct_mapping(self, node, deep=False):
        seen = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # "<<: *defaults" may repeat; flattened below
                continue
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, Hashable):  # the base class refuses it with YAML's own message
                continue
            if key in seen:
                raise _RepeatedKey(
                    f"key {key!r} is given twice (lines {seen[key] + 1} and {key_node.start_mark.line + 1}), and "
                    "YAML would silently keep the last; keep one"
                )
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep)


PATH_KEYS = ("train_file", "valid_file", "test_file", "isolated_atoms_file", "init_from")


def load(path, overrides=None) -> TrainConfig:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    try:
        values = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}  # a SafeLoader: no Python objects
    except _RepeatedKey as err:
        raise ValueError(f"{path}: {err}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: a config must be a YAML mapping of key: value")  # noqa: TRY004
    config = from_dict(apply_overrides(values, overrides), str(path))
    typed_here = {item.split("=", 1)[0] for item in overrides or [] if "=" in item}
    return _resolve_paths(config, path.parent, typed_here)


def _resolve_paths(config: TrainConfig, base: Path, typed_here=()) -> TrainConfig:
    """Relative data paths: a path in the file is looked for beside the file first, one given with
    ``-o`` (``typed_here``: the keys) in the working directory first, where the user typed it."""

    def fix(p, cwd_first):
        if p is None:
            return None
        if isinstance(p, list):
            return [fix(q, cwd_first) for q in p]
        # Then the other folder (recipes run from the repository root name runs/...); a path found in
        # neither is reported relative to the first. Saved absolute (config.yaml of the run): a --resume
        # from another directory finds the data.
        first, second = (Path(p), base / p) if cwd_first else (base / p, Path(p))
        chosen = second if not first.exists() and second.exists() else first
        return str(Path(p).absolute() if Path(p).is_absolute() else chosen.absolute())

    return dataclasses.replace(config, **{k: fix(getattr(config, k), k in typed_here) for k in PATH_KEYS})


def dump(config: TrainConfig) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


TEMPLATE = """\
# mlpot training config (mlpot train CONFIG.yaml [-o key=value ...]).
# Units: eV, Å. A relative data or model path (train_file ... init_from) is looked up beside this
# file first, then in the working directory; output_dir is relative to the working directory.

# --- data: anything ase.io.read reads; a path or a list of paths
train_file: train.xyz
valid_file: null            # or hold out a fraction of train_file:
valid_fraction: 0.05
test_file: null             # optional; else test_fraction of train_file is held out
test_fraction: 0.0
isolated_atoms_file: null   # one-atom frames -> per-element reference energies; else least squares
energy_key: energy          # where labels live (atoms.calc.results, atoms.info or atoms.arrays)
forces_key: forces
stress_key: stress
skip_bad_frames: false      # true: drop invalid frames with a warning instead of failing
config_type_weights: {}     # e.g. {Surface: 10}: relative loss weight of training frames by atoms.info["config_type"]
inconsistent_stress: warn   # warn | drop: a slab's stress normal to its vacuum gap is fixed by its forces
                            # (sigma_nn = -(1/V) sum (r.n)(F.n)); labels more than 1 meV/Å^3 off are
                            # reported, and with drop left out of the loss (energy and forces are kept)

# --- model: name is a key of mlpot.models.MODELS, the rest are its hyperparameters
model:
  name: painn
  features: 64
  num_interactions: 3
cutoff: 5.0                 # Å
dtype: float32              # network precision (energy sums, forces, stress are float64)
init_from: null             # a .mlpot file to fine-tune (same model, cutoff and dtype): training starts
                            # from its parameters and keeps its species and reference energies
repulsion: true             # ZBL core below the closest training pair per species pair: zero on
                            # every training frame, stops MD collapsing into unseen short distances

# --- loss: w_E mean((dE/N)^2) + w_F mean(dF^2) + w_S mean(dsigma^2)
energy_weight: 1.0
forces_weight: 10.0
stress_weight: 10.0         # only frames with a stress label count
weight_schedule: []         # e.g. [{epoch: 80, energy_weight: 100}]: new weights after 80 epochs, from
                            # metrics.csv epoch 81 on (N = a finished run's last epoch: stage two on --resume)
loss: mse                   # mse | huber
huber_delta: 0.01

# --- optimisation
batch_size: 8
optimizer: adam             # adam | adamw
amsgrad: false
weight_decay: 0.0           # adamw only
learning_rate: 0.005
lr_schedule: cosine         # cosine (after warm-up) | plateau (reduce on validation plateau) | constant
warmup_epochs: 1.0
min_lr_ratio: 0.01
plateau_patience: 5
plateau_factor: 0.5
clip_grad_norm: 10.0        # null: no clipping
ema_decay: 0.99             # EMA of the parameters, used for validation and the saved model; null: off
early_stopping_patience: null   # epochs without a better validation loss
epochs: 100
max_time: null              # minutes of the training loop (not reading data or the final evaluation)
seed: 0                     # initial parameters, batch order and (without split_seed) the drawn split
split_seed: null            # draws valid/test frames (null: seed); fix it when training committee members
output_dir: runs/train
progress: true              # progress bar on a terminal; in a log file a line a minute
plots: true                 # parity and learning-curve PNGs next to the model
"""


def template() -> str:
    return TEMPLATE
