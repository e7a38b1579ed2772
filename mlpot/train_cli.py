"""CLI for fitting: ``mlpot train | eval | committee | template | cv | learning-curve``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

LABELS = ("energy", "forces", "stress")

EVAL_KEYS = (
    "energy_mae",
    "energy_rmse",
    "energy_mae_per_atom",
    "energy_rmse_per_atom",
    "forces_mae",
    "forces_rmse",
    "stress_mae",
    "stress_rmse",
    "n_frames",
    "n_frames_energy",
    "n_frames_forces",
    "n_frames_stress",
)


def _config(args):
    from mlpot.training.config import load

    return load(args.config, args.override)


def _cmd_train(args) -> int:
    from mlpot.training import run

    if args.resume and args.overwrite:
        raise ValueError("--resume continues the run in output_dir, --overwrite replaces it: give one")
    config = _config(args)
    held = run.held_run(Path(config.output_dir))
    if held and not (args.resume or args.overwrite):
        # a rerun of a killed run's command would replace its checkpoints within seconds
        raise ValueError(
            f"output_dir {config.output_dir} already holds a run ({held}): --resume continues it, "
            "--overwrite starts over and replaces it, or give another output_dir"
        )
    result = run.train(config, resume=args.resume, overwrite=args.overwrite)
    from mlpot.training.metrics import format_table, format_worst

    print(f"\nvalidation ({result.valid_metrics['n_frames']} frames, best model):")
    print(format_table(result.valid_metrics))
    if result.valid_metrics.get("worst_frames"):
        print(format_worst(result.valid_metrics["worst_frames"]))
    if result.test_metrics:
        print(f"\ntest ({result.test_metrics['n_frames']} frames):")
        print(format_table(result.test_metrics))
    print(f"\nmodel, metrics.csv{' and plots' if config.plots else ''} in {result.output_dir}/")
    if result.stop_reason.startswith("diverged"):
        # a script's `mlpot train ... && mlpot md ...` must not go on with a model that stopped short
        kept = "the best epoch before it" if result.history else "the initial parameters (no epoch finished)"
        print(f"mlpot train: the run {result.stop_reason}; model.mlpot holds {kept}", file=sys.stderr)
        return 1
    return 0


def _cmd_eval(args) -> int:
    from mlpot.training import plots
    from mlpot.training.evaluation import evaluate_files
    from mlpot.training.metrics import format_groups, format_table, format_worst, labelled_frames

    _check_outputs(args)  # a bad output path would only fail after the whole evaluation
    singles = _committee_members(args.model) if args.members else None
    keys = {q: getattr(args, f"{q}_key") or q for q in LABELS}
    metrics, collected = evaluate_files(
        args.model, args.data, args.batch_size, keys["energy"], keys["forces"], keys["stress"], args.by, args.worst
    )
    counts = labelled_frames(collected)
    _check_labels(args, keys, counts, metrics["n_frames"])
    metrics.update({f"n_frames_{q}": counts[q] for q in LABELS})
    print(format_table(metrics))
    if args.by:
        print(format_groups(metrics[f"by_{args.by}"], args.by))
    if args.worst:
        print(format_worst(metrics["worst_frames"]))
    if singles:  # what the committee gains over each of its models, on the same frames
        metrics["members"] = []
        for k, single in enumerate(singles, 1):
            own, own_collected = evaluate_files(
                single, args.data, args.batch_size, keys["energy"], keys["forces"], keys["stress"]
            )
            own.update({f"n_frames_{q}": n for q, n in labelled_frames(own_collected).items()})
            metrics["members"].append({key: own[key] for key in EVAL_KEYS if key in own})
            shown = [f"{q} MAE {own[f'{q}_mae'] * 1e3:.3f} {unit}" for q, unit in UNITS if f"{q}_mae" in own]
            if "energy_mae" in own and own.get("energy_mae_per_atom") is not None:  # as the table above names it
                shown[0] += f" ({own['energy_mae_per_atom'] * 1e3:.3f} meV/atom)"
            print(f"member {k}: {', '.join(shown)}")
    if args.json:  # before the plot: the numbers are the result, the picture a view of them
        from mlpot.modelfile import write_json

        ordered = {k: metrics[k] for k in EVAL_KEYS if k in metrics}
        ordered.update({k: v for k, v in metrics.items() if k not in ordered})
        write_json(args.json, ordered)
        print(f"metrics JSON: {args.json}")
    plot = Path(args.plot) if args.plot else _default_plot(args)
    plot.parent.mkdir(parents=True, exist_ok=True)  # as atomic_write does for --json
    plots.parity(collected, plot, ", ".join(Path(p).name for p in args.data))
    print(f"parity plot: {plot}")
    return 0


UNITS = (("energy", "meV/structure"), ("forces", "meV/Å"), ("stress", "meV/Å^3"))


def _committee_members(path) -> list:
    from mlpot.models.committee import members
    from mlpot.potential import load

    singles = members(load(path))
    if len(singles) < 2:
        raise ValueError(f"--members: {path} is a single model, not a committee (mlpot committee)")
    return singles


def _cmd_committee(args) -> int:
    from mlpot.modelfile import check_output_path, load
    from mlpot.models.committee import assemble

    check_output_path("committee output", args.output)
    output = Path(args.output)
    if output.exists():
        if any(Path(path).exists() and output.samefile(path) for path in args.models):
            raise ValueError(f"committee output {args.output} is one of its models: the first name is the output")
        if not args.overwrite:
            raise ValueError(f"committee output {args.output} exists: --overwrite replaces it")
    committee = assemble([load(path) for path in args.models], names=args.models)
    committee.save(args.output)
    print(f"committee of {len(args.models)} models: {args.output} (one force call per member)")
    return 0


def _check_outputs(args) -> None:
    """Refuse --json/--plot paths that cannot become files, before any work is done."""
    from mlpot.modelfile import check_output_path

    inputs = {f"the input file {given}": given for given in (args.model, *args.data)}
    # the plot is always written: without --plot, to its default path, which must be writable too
    for option, value in (("--json", args.json), ("--plot", args.plot or _default_plot(args))):
        if value:
            check_output_path(option, value, inputs)
    if args.plot:
        from mlpot.training.plots import check_figure_path

        check_figure_path("--plot", args.plot, args.json)


def _check_labels(args, keys: dict, counts: dict, n_frames: int) -> None:
    """Errors average over the labelled frames only: a key that matches nothing, or only some
    frames, must be said, not silently turn into fewer quantities or fewer frames."""
    from mlpot.training.evaluation import label_hint

    files = ", ".join(args.data)
    # (evaluate_files refuses a non-default name that labels nothing, and frames with neither energy
    # nor forces; here: a default name typed out, and partial labels)
    for q in LABELS:
        if getattr(args, f"{q}_key") is not None and counts[q] == 0:
            why = "; only periodic frames have stress" if q == "stress" else ""
            raise ValueError(f"no frame of {files} has the {q} label '{keys[q]}' (--{q}-key{why})")
    for q in LABELS:
        # A molecule has no stress: only a partly stress-labelled set is worth a word.
        if counts[q] < n_frames and (counts[q] or q != "stress"):
            note = f"note: {q}: {counts[q]} of {n_frames} frames labelled (key '{keys[q]}')"
            if counts[q]:
                note += f"; its errors are over those {counts[q]} frames only"
            elif getattr(args, f"{q}_key") is None:
                note += f"; {label_hint(args.data, (q,))}"
            print(note, file=sys.stderr)


def _default_plot(args) -> Path:
    """Beside the JSON when there is one; else <model>_<data>.parity.png here (never into models/)."""
    if args.json:
        return Path(args.json).with_suffix(".parity.png")
    return Path(f"{Path(args.model).stem}_{Path(args.data[0]).stem}.parity.png")


def _cmd_template(args) -> int:
    from mlpot.training.config import template

    print(template(), end="")
    return 0


def _cmd_cv(args) -> int:
    from mlpot.training.selection import cross_validate

    config = _config(args)
    summary = cross_validate(config, args.folds, overwrite=args.overwrite)
    for key, value in summary["summary"].items():
        spread = "(one fold)" if value["std"] is None else f"± {value['std'] * 1e3:.3f}"
        print(f"{key:24s} {value['mean'] * 1e3:10.3f} {spread} (meV units, std over {value['n_folds']} folds)")
    print(f"per-fold results: {Path(config.output_dir) / 'cv.json'}")
    return 0


def _cmd_learning_curve(args) -> int:
    from mlpot.training.selection import learning_curve

    config = _config(args)
    summary = learning_curve(config, args.sizes, overwrite=args.overwrite)
    for run in summary["runs"]:
        print(
            f"{run['train_frames']:6d} frames: energy MAE {run['energy_mae_per_atom'] * 1e3:8.3f} meV/atom, "
            f"force MAE {run['forces_mae'] * 1e3:8.2f} meV/Å"
        )
    print(f"plot: {Path(config.output_dir) / 'learning_curve.png'}")
    return 0


def _positive_int(text: str) -> int:
    """argparse type for counts: 0 used to fail deep inside with 'range() arg 3 must not be zero'."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _add_config_args(parser) -> None:
    parser.add_argument("config", help="YAML config (see `mlpot template`)")
    parser.add_argument(
        "-o",
        "--override",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key (repeatable), e.g. -o epochs=10 -o model.features=32",
    )


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="fit a potential to labelled frames")
    _add_config_args(p)
    p.add_argument("--resume", action="store_true", help="continue from output_dir/checkpoints/last.ckpt")
    p.add_argument(
        "--overwrite", action="store_true", help="start over in an output_dir that already holds a run (replaces it)"
    )
    p.set_defaults(func=_cmd_train)

    p = subparsers.add_parser("eval", help="errors of a model on labelled frames")
    p.add_argument("model", help="model file (.mlpot)")
    p.add_argument("data", nargs="+", help="labelled structure files")
    p.add_argument("--json", help="write the metrics to this JSON file")
    p.add_argument("--plot", help="parity plot path (default: beside --json, else MODEL_DATA.parity.png here)")
    p.add_argument("--batch-size", type=_positive_int, default=8)
    p.add_argument(
        "--by",
        metavar="KEY",
        help="also report errors per value of this atoms.info key, e.g. --by config_type (in the JSON as by_KEY)",
    )
    p.add_argument(
        "--worst",
        type=_positive_int,
        default=0,
        metavar="N",
        help="also list the N frames with the largest force RMSE (file, frame, errors; in the JSON as worst_frames)",
    )
    p.add_argument(
        "--members",
        action="store_true",
        help="for a committee, also each member's errors on the same frames (in the JSON as members)",
    )
    # None = not given: the default name may be absent (a note), a name the user gave may not (an error)
    for q in LABELS:
        p.add_argument(f"--{q}-key", metavar="NAME", help=f"label name of the {q} (default: {q})")
    p.set_defaults(func=_cmd_eval)

    p = subparsers.add_parser(
        "committee", help="one model file whose energy is the mean of trained models (more accurate, N x slower)"
    )
    p.add_argument("output", help="committee model file to write (.mlpot)")
    p.add_argument(
        "models", nargs="+", help="two or more trained model files with the same species (cutoffs may differ)"
    )
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.set_defaults(func=_cmd_committee)

    p = subparsers.add_parser("template", help="print a commented default training config")
    p.set_defaults(func=_cmd_template)

    p = subparsers.add_parser("cv", help="k-fold cross-validation of a training config")
    _add_config_args(p)
    p.add_argument("-k", "--folds", type=int, default=5)
    p.add_argument("--overwrite", action="store_true", help="replace runs of another config in output_dir")
    p.set_defaults(func=_cmd_cv)

    p = subparsers.add_parser("learning-curve", help="test error vs training-set size (log-log plot)")
    _add_config_args(p)
    p.add_argument(
        "--sizes",
        type=_positive_int,
        nargs="+",
        help="training-set sizes, each at most the frames left for training "
        "(default: 25 50 100 200 400 800, those the data has)",
    )
    p.add_argument("--overwrite", action="store_true", help="replace runs of another config in output_dir")
    p.set_defaults(func=_cmd_learning_curve)
