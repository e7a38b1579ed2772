"""PNG plots (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from mlpot.training.metrics import concatenate


def check_figure_path(option: str, path, numbers=None) -> None:
    """Refuse, before the work that draws it, a figure file whose suffix matplotlib cannot write, or one
    that is the file of the ``numbers`` (the command's --json), which the figure would overwrite."""
    from matplotlib.backend_bases import FigureCanvasBase

    if numbers and Path(numbers).resolve() == Path(path).resolve():
        raise ValueError(f"--json and {option} are the same file ({numbers}): the plot would overwrite the numbers")
    suffix = Path(path).suffix.lstrip(".").lower()
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix not in formats:
        raise ValueError(
            f"{option} {path}: matplotlib cannot write {'.' + suffix if suffix else 'a file without a suffix'}; "
            f"use one of {', '.join('.' + f for f in sorted(formats))} (.png for a quick look, .pdf or .svg to print)"
        )


def save_figure(fig, path) -> Path:
    """``fig`` to ``path`` whole (``atomic_write``: an interrupted save leaves the old file or none), closed."""
    from io import BytesIO

    from mlpot.modelfile import atomic_write

    buffer = BytesIO()
    fig.savefig(buffer, format=Path(path).suffix.lstrip(".").lower() or "png", dpi=110)
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return Path(path)


def _panel(ax, ref, pred, label, unit):
    ax.scatter(ref, pred, s=4, alpha=0.5, edgecolors="none")
    lo, hi = float(min(ref.min(), pred.min())), float(max(ref.max(), pred.max()))
    ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
    mae = float(np.mean(np.abs(pred - ref)))
    ax.set_title(f"{label}\nMAE {mae * 1e3:.2f} m{unit}", fontsize=9)
    ax.xaxis.set_major_locator(MaxNLocator(4))  # long absolute energies would overlap
    ax.set_xlabel(f"reference [{unit}]")
    ax.set_ylabel(f"predicted [{unit}]")


def parity(collected, path, title: str = "") -> Path:
    """Predicted vs reference: energy per atom, force components, stress (when labelled)."""
    data = concatenate(collected) if isinstance(collected, list) else collected
    (e_pred, e_ref), n_atoms = data["energy"], np.maximum(data["n_atoms"], 1)
    panels = []
    if e_ref.size:
        panels.append((e_ref / n_atoms, e_pred / n_atoms, "energy per atom", "eV/atom"))
    if data["forces"][1].size:
        panels.append((data["forces"][1].ravel(), data["forces"][0].ravel(), "force components", "eV/Å"))
    if data["stress"][1].size:
        panels.append((data["stress"][1], data["stress"][0], "stress components", "eV/Å³"))
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4 * max(len(panels), 1), 4), squeeze=False)
    for ax, (ref, pred, label, unit) in zip(axes[0], panels):
        _panel(ax, ref, pred, label, unit)
    fig.suptitle(f"parity ({title}, {data['n_frames']} frames)" if title else "parity")
    fig.tight_layout()
    return save_figure(fig, path)


def learning_curves(history: list, path) -> Path:
    """Train/validation loss and validation errors vs epoch (log y)."""
    epochs = [row["epoch"] for row in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    axes[0].semilogy(epochs, [row["train_loss"] for row in history], label="train")
    axes[0].semilogy(epochs, [row["valid_loss"] for row in history], label="validation")
    axes[0].set_ylabel("loss")
    for ax, key, label in (
        (axes[1], "energy_mae_per_atom", "energy error [meV/atom]"),
        (axes[2], "forces_mae", "force error [meV/Å]"),
    ):
        train_term = "train_energy_term" if "energy" in key else "train_forces_term"
        ax.semilogy(
            epochs, np.sqrt([row[train_term] for row in history]) * 1e3, label="train: √(mean batch loss term), running"
        )
        values = [row.get(f"valid_{key}") for row in history]
        if all(v is not None for v in values):
            ax.semilogy(epochs, np.array(values) * 1e3, label="validation (MAE)")
        ax.set_ylabel(label)
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    return save_figure(fig, path)


def learning_curve_study(sizes, errors: dict, path) -> Path:
    """Test error vs training-set size on log-log axes; ``errors`` maps label -> list (eV units)."""
    fig, ax = plt.subplots(figsize=(5, 4))
    for label, values in errors.items():
        ax.loglog(sizes, np.array(values) * 1e3, "o-", label=label)
    ax.set_xlabel("training frames")
    ax.set_ylabel("test error [meV, meV/Å]")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
