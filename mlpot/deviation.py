"""``mlpot deviation COMMITTEE FRAMES ...``: where a committee's members disagree, and which frames to label next.

The members of a committee (``mlpot committee``) agree where the training data was dense and
part where it was not, so their force deviation flags the structures of an MD run that the
potential cannot be trusted on. Per frame, as DeePMD-kit's model deviation (DP-GEN's selection):

  force_dev_max  = max_i sqrt(mean_k |F_ik - mean_k F_ik|^2)   eV/Å, atoms i, members k
  force_dev_mean = the same, averaged over atoms
  energy_std_per_atom = std_k E_k / N                           eV/atom

Frames below ``lo`` are already described well; frames at or above ``hi`` are usually
unphysical (a run that fell apart) and are not worth a DFT call; those in between are the
candidates to label and add to the training set. DP-GEN's typical bounds are 0.05 and
0.15 eV/Å; good ones depend on the system (look at the plot). ``--select`` writes the
candidates (a seeded random subset when ``--max`` is smaller, kept in file order, as DP-GEN
picks), each tagged with its deviation and where it came from.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import ase.io
import numpy as np
from ase.calculators.singlepoint import SinglePointCalculator
from tqdm.auto import tqdm

from mlpot.calculator import Calculator
from mlpot.graph import InputError, species_indices
from mlpot.modelfile import atomic_write, check_output_path, write_json
from mlpot.models.committee import members
from mlpot.potential import Potential, load
from mlpot.reading import forces_label, read_images

COLUMNS = ("force_dev_max", "force_dev_mean", "energy_std_per_atom")


def atom_force_deviation(calc: Calculator, atoms) -> np.ndarray:
    """(N,) eV/Å: sqrt(mean_k |F_ik - mean_k F_ik|^2) per atom, from a committee's ``mlpot.Calculator``."""
    return np.sqrt(np.sum(calc.get_property("forces_std", atoms) ** 2, axis=1))


def frame_deviations(potential: Potential, structures, labels=None, progress: bool = False, names=None) -> np.ndarray:
    """(F, 3) array of ``COLUMNS`` for ASE Atoms ``structures``; ``potential`` must be a committee.

    ``labels``: reference forces (N, 3) per structure (None where there are none) adds a fourth
    column, the committee's largest atomic force error max_i |F_i - F_i^ref| (eV/Å; NaN unlabelled):
    how far the deviation tracks the real error on labelled frames. ``names``: where each structure
    comes from ("file, frame k", default "structure k"), for the warning about frames that cannot be
    evaluated (atoms on one point, a non-finite energy): their row is inf (error NaN). An element the
    committee lacks raises ``InputError``."""
    if len(members(potential)) < 2:
        raise ValueError("a deviation needs a committee of models: build one with mlpot committee OUT A B ...")
    calc = Calculator(potential)
    rows, broken = [], []
    for k, atoms in enumerate(tqdm(structures, desc="deviation", unit="frame", disable=not progress, mininterval=1.0)):
        where = names[k] if names is not None else f"structure {k}"
        species_indices(atoms.numbers, potential.config.species, where)  # an element it lacks is the user's error
        try:
            per_atom = atom_force_deviation(calc, atoms)
        except (InputError, FloatingPointError) as err:
            # Atoms on top of each other, or flown so far apart that no cell holds them: the frame of a
            # run that fell apart. It counts as above any --hi, as DP-GEN would discard it, and the others
            # still get scored. (The calculator's message says "atoms given to mlpot.Calculator".)
            broken.append(f"{where}: {err}")
            rows.append([np.inf, np.inf, np.inf] + ([np.nan] if labels is not None else []))
            continue
        row = [per_atom.max(), per_atom.mean(), calc.get_property("energy_std", atoms) / len(atoms)]
        if labels is not None:
            reference = labels[k]
            error = calc.get_property("forces", atoms) - reference if reference is not None else None
            row.append(np.linalg.norm(error, axis=1).max() if error is not None else np.nan)
        rows.append(row)
    if broken:
        warnings.warn(
            f"{len(broken)} of {len(rows)} frame(s) could not be evaluated and count as at or above --hi "
            f"(deviation inf); first: {broken[0]}",
            stacklevel=2,
        )
    return np.array(rows, dtype=np.float64).reshape(-1, len(COLUMNS) + (labels is not None))


def calibration(force_dev_max: np.ndarray, force_err_max: np.ndarray) -> dict | str:
    """On the labelled frames: Spearman rank correlation of the largest atomic deviation with the
    largest atomic error, and the median error / deviation (about 1/sqrt(M - 1) for M members that err
    independently: 1 for two, 0.58 for four; more when they err alike; deviation bounds for error
    bounds E: E / it). Or why there is none: too few frames, labels that are the committee's own
    forces, members that agree."""
    from scipy.stats import spearmanr

    labelled = np.isfinite(force_err_max)
    if labelled.sum() < 3:
        return f"{int(labelled.sum())} evaluable frame(s) with force labels, 3 needed"
    dev, err = force_dev_max[labelled], force_err_max[labelled]
    if np.median(err) < 1e-6:  # eV/Å: round-off, not a DFT difference
        return (
            f"the force labels are the committee's own forces (largest atomic error: median {np.median(err):.1g} "
            "eV/Å), as in an mlpot md trajectory; calibrate on frames with DFT forces"
        )
    spread = dev > 1e-9
    if spread.sum() < 3 or np.ptp(dev[spread]) == 0:
        return (
            f"the members agree on {int(np.sum(~spread))} of {len(dev)} labelled frames, or deviate alike on all: "
            "no deviation to rank (the same model twice?)"
        )
    dev, err = dev[spread], err[spread]
    if np.ptp(err) == 0:  # Spearman's rho is undefined (NaN) for a constant ranking
        return f"the largest atomic error is the same on all {len(err)} labelled frames: no error to rank"
    return {
        "labelled_frames": int(spread.sum()),
        "spearman_dev_max_err_max": float(spearmanr(dev, err).statistic),
        "median_err_over_dev": float(np.median(err / dev)),
    }


def candidates(force_dev_max: np.ndarray, lo: float, hi: float, limit: int | None, seed: int) -> np.ndarray:
    """Indices of the frames with lo <= deviation < hi; a seeded random ``limit`` of them, in order."""
    chosen = np.flatnonzero((force_dev_max >= lo) & (force_dev_max < hi))
    if limit is not None and len(chosen) > limit:
        chosen = np.sort(np.random.default_rng(seed).choice(chosen, size=limit, replace=False))
    return chosen


def _write_frames(path, frames) -> None:
    """extxyz, written whole (``atomic_write``): an interrupted write leaves no half file."""
    text = io.StringIO()
    ase.io.write(text, frames, format="extxyz")
    atomic_write(path, text.getvalue().encode())


def plot(values: np.ndarray, lo: float, hi: float, path, title: str, errors=None) -> None:
    """Deviation against frame, the bands coloured; with ``errors``, beside it the error against
    the deviation of the labelled frames."""
    import matplotlib.pyplot as plt

    from mlpot.training.plots import save_figure  # sets the Agg backend: no display needed

    fig, axes = plt.subplots(1, 1 if errors is None else 2, figsize=(7 if errors is None else 11, 3.5), squeeze=False)
    ax = axes[0, 0]
    frames = np.arange(len(values))
    for mask, colour, label in (
        (values < lo, "tab:gray", "trusted"),
        ((values >= lo) & (values < hi), "tab:orange", "candidates"),
        (values >= hi, "tab:red", "discarded"),
    ):
        count = f"{int(mask.sum())}"
        if label == "discarded" and not np.isfinite(values).all():  # not drawn: no height on a log axis
            count += f", {int((~np.isfinite(values)).sum())} not evaluable"
        ax.plot(frames[mask], values[mask], ".", ms=4, color=colour, label=f"{label} ({count})")
    ax.legend(fontsize=8, loc="best")
    ax.xaxis.get_major_locator().set_params(integer=True)
    for bound, label in ((lo, "lo"), (hi, "hi")):
        if bound <= 0:  # --lo 0: no line at zero on a log axis
            continue
        ax.axhline(bound, color="k", ls="--", lw=0.8)
        ax.text(
            1.0, bound, f"{label} {bound:g} ", va="bottom", ha="right", fontsize=8, transform=ax.get_yaxis_transform()
        )
    ax.set_yscale("log")
    ax.set_xlabel("frame (files in the order given)")
    ax.set_ylabel("max atomic force deviation [eV/Å]")
    ax.set_title(title, fontsize=9)
    if errors is not None:
        labelled = np.isfinite(errors)
        right = axes[0, 1]
        right.loglog(values[labelled], errors[labelled], ".", ms=4)
        span = [
            min(values[labelled].min(), errors[labelled].min()),
            max(values[labelled].max(), errors[labelled].max()),
        ]
        right.plot(span, span, "k--", lw=0.8)
        right.set_xlabel("max atomic force deviation [eV/Å]")
        right.set_ylabel("max atomic force error [eV/Å]")
        right.set_title("labelled frames: error against deviation", fontsize=9)
    fig.tight_layout()
    save_figure(fig, path)


def _cmd_deviation(args) -> int:
    if not 0 <= args.lo < args.hi:
        raise ValueError(f"need 0 <= --lo < --hi, got --lo {args.lo:g} --hi {args.hi:g}")
    if args.max is not None and args.max < 1:
        raise ValueError(f"--max must be >= 1, got {args.max}")
    if args.seed < 0:  # numpy's generators refuse it, after every frame was scored
        raise ValueError(f"--seed must be >= 0, got {args.seed}")
    if args.select and Path(args.select).suffix.lower() not in (".xyz", ".extxyz"):
        raise ValueError(f"--select {args.select}: the frames to label are written as extxyz: name it .xyz or .extxyz")
    inputs = {f"the input file {f}": f for f in (args.model, *args.frames)}
    plot_path = args.plot or (Path(args.json).with_suffix(".deviation.png") if args.json else None)
    written = {}
    for option, path in (("--select", args.select), ("--json", args.json), ("--plot", plot_path)):
        if path:
            check_output_path(option, path, {**inputs, **written})
            written[f"the output of {option}"] = path
    if args.plot:
        from mlpot.training.plots import check_figure_path

        check_figure_path("--plot", args.plot, args.json)
    potential = load(args.model)
    if len(members(potential)) < 2:
        raise ValueError(f"{args.model} is a single model: a deviation needs a committee (mlpot committee OUT A B ...)")
    # Read as they are: the energy and stress labels are not used, and a frame of a run that fell apart
    # (NaN or coinciding positions) is scored as not evaluable by frame_deviations, not refused here
    structures, names = [], []
    for path in args.frames:
        images = read_images(path)
        structures += images
        names += [f"{path}, frame {k}" for k in range(len(images))]
    for atoms, where in zip(structures, names):  # before hours of scoring, not at the frame that has it
        species_indices(atoms.numbers, potential.config.species, where)
    labels = None
    if args.calibrate:  # only on request: an MD trajectory's frames carry the model's own forces
        labels = [forces_label(atoms, args.forces_key, where) for atoms, where in zip(structures, names)]
        if all(force is None for force in labels):
            raise ValueError(f"--calibrate: no frame of {', '.join(args.frames)} has a forces label")
    values = frame_deviations(potential, structures, labels, progress=True, names=names)
    dev = values[:, 0]
    errors = values[:, 3] if labels is not None else None
    chosen = candidates(dev, args.lo, args.hi, args.max, args.seed)
    in_band = int(np.sum((dev >= args.lo) & (dev < args.hi)))
    evaluated = dev[np.isfinite(dev)]
    summary = {
        "frames": len(structures),
        "lo_eV_per_A": args.lo,
        "hi_eV_per_A": args.hi,
        "below_lo": int(np.sum(dev < args.lo)),
        "candidates": in_band,
        "at_or_above_hi": int(np.sum(dev >= args.hi)),
        "not_evaluable": len(dev) - len(evaluated),  # counted in at_or_above_hi
        "selected": len(chosen),
        "force_dev_max_percentiles_eV_per_A": dict(  # of the evaluated frames
            zip(("p50", "p90", "p99", "max"), map(float, np.percentile(evaluated, [50, 90, 99, 100])))
        )
        if len(evaluated)
        else None,
    }
    unevaluated = f" ({summary['not_evaluable']} not evaluable)" if summary["not_evaluable"] else ""
    print(
        f"{len(structures)} frames: {summary['below_lo']} below lo {args.lo:g} eV/Å, {in_band} candidates, "
        f"{summary['at_or_above_hi']} at or above hi {args.hi:g} eV/Å{unevaluated}"
    )
    p = summary["force_dev_max_percentiles_eV_per_A"]
    if p:
        print(f"max atomic force deviation: median {p['p50']:.4f}, 90 % {p['p90']:.4f}, max {p['max']:.4f} eV/Å")
    checked = calibration(dev, errors) if errors is not None else None
    if isinstance(checked, str):
        warnings.warn(f"--calibrate: {checked}: no calibration", stacklevel=2)
    elif checked:
        summary["calibration"] = checked
        print(
            f"on {checked['labelled_frames']} frames with force labels: rank correlation of deviation and error "
            f"{checked['spearman_dev_max_err_max']:.2f}; error / deviation, median {checked['median_err_over_dev']:.2f}"
        )
    if args.select and not len(chosen):
        print(f"no frames to label: {args.select} not written")
    elif args.select:
        picked = []
        for k in chosen:
            atoms = structures[k].copy()
            results = getattr(structures[k].calc, "results", None)
            if args.calibrate and results:  # reference labels (the user says so): kept, not labelled twice
                atoms.calc = SinglePointCalculator(atoms, **results)
            atoms.info.update({name: float(v) for name, v in zip(COLUMNS, values[k])} | {"source": names[k]})
            picked.append(atoms)
        _write_frames(args.select, picked)
        print(f"{len(picked)} frames to label: {args.select}")
    if args.json:
        columns = (*COLUMNS, "force_err_max") if errors is not None else COLUMNS
        rows = [
            {"where": where, "evaluable": bool(np.isfinite(v[0])), **dict(zip(columns, map(float, v)))}
            for where, v in zip(names, values)
        ]
        document = {**summary, "selected_frames": [names[k] for k in chosen], "per_frame": rows}
        write_json(args.json, document)
        print(f"deviation JSON: {args.json}")
    if plot_path:
        title = f"{Path(args.model).name} on {', '.join(Path(p).name for p in args.frames)}"
        plot(dev, args.lo, args.hi, plot_path, title, errors if isinstance(checked, dict) else None)
        print(f"deviation plot: {plot_path}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "deviation",
        help="committee force deviation per frame; pick the frames to label next",
        description="Committee force deviation per frame (DeePMD-kit's model deviation, eV/Å). Frames between "
        "--lo and --hi are the ones to label next; below, the model is trusted; above, the structure is usually "
        "unphysical.",
    )
    p.add_argument("model", help="committee model file (mlpot committee)")
    p.add_argument("frames", nargs="+", help="structure files (e.g. an MD trajectory); no labels needed")
    p.add_argument("--lo", type=float, default=0.05, help="eV/Å: frames below are trusted (default 0.05)")
    p.add_argument("--hi", type=float, default=0.15, help="eV/Å: frames at or above are discarded (default 0.15)")
    p.add_argument("--select", metavar="OUT.xyz", help="write the candidate frames (extxyz) for labelling")
    p.add_argument("--max", type=int, default=None, help="at most this many candidates (seeded random subset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--calibrate",
        action="store_true",
        help="the frames carry reference (DFT) force labels: also report how the deviation ranks the real "
        "errors, and the median error / deviation (not for MD output, whose forces are the model's own)",
    )
    p.add_argument("--forces-key", default="forces", metavar="NAME", help="label name of the reference forces")
    p.add_argument("--json", help="per-frame deviations and the summary")
    p.add_argument("--plot", help="deviation vs frame (default: beside --json)")
    p.set_defaults(func=_cmd_deviation)
