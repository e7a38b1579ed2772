"""Error metrics on host (numpy): only real, labelled entries ever enter them.

``collect`` pulls the real entries of one padded batch out of the
predictions; ``summarise`` turns a list of those into the metrics dict:

  energy_mae / energy_rmse / energy_r2                    eV per structure
  energy_mae_per_atom / energy_rmse_per_atom / ..._r2     eV per atom
  forces_mae / forces_rmse / forces_r2                    eV/Å per component
  forces_mae_<El> / forces_rmse_<El>                      per element
  stress_mae / stress_rmse / stress_r2                    eV/Å^3 (frames with stress)
  n_frames

``labelled_frames`` counts, per quantity, the frames that carry that label:
errors average over those frames only, which ``n_frames`` alone would hide.
"""

from __future__ import annotations

import numpy as np
from ase.data import chemical_symbols

from mlpot.data import Labels
from mlpot.graph import Graph


def collect(pred, labels: Labels, graph: Graph, species) -> dict:
    """Real, labelled (prediction, reference) pairs of one batch, as numpy arrays."""
    graph_mask = np.asarray(graph.graph_mask)
    n_node = np.asarray(graph.n_node)
    e_mask = np.asarray(labels.energy_mask) & graph_mask
    node_mask = np.asarray(graph.node_mask) & np.asarray(labels.forces_mask)[np.asarray(graph.node_graph)]
    s_mask = np.asarray(labels.stress_mask) & graph_mask
    f_mask = np.asarray(labels.forces_mask) & graph_mask
    energy = np.asarray(pred.energy)
    return {
        "n_frames": int(graph_mask.sum()),
        "labelled_frames": {"energy": int(e_mask.sum()), "forces": int(f_mask.sum()), "stress": int(s_mask.sum())},
        "energy": (energy[e_mask], np.asarray(labels.energy)[e_mask]),
        "n_atoms": n_node[e_mask],
        "forces": (np.asarray(pred.forces)[node_mask], np.asarray(labels.forces)[node_mask]),
        "elements": np.asarray(species)[np.asarray(graph.species)[node_mask]],
        "stress": (np.asarray(pred.stress)[s_mask].reshape(-1), np.asarray(labels.stress)[s_mask].reshape(-1)),
    }


def labelled_frames(collected: list[dict]) -> dict:
    """Frames with an energy, forces and stress label, summed over ``collect`` outputs."""
    return {key: sum(c["labelled_frames"][key] for c in collected) for key in ("energy", "forces", "stress")}


def concatenate(collected: list[dict]) -> dict:
    out = {"n_frames": sum(c["n_frames"] for c in collected)}
    for key in ("energy", "forces", "stress"):
        out[key] = tuple(np.concatenate([c[key][k] for c in collected]) for k in (0, 1))
    for key in ("n_atoms", "elements"):
        out[key] = np.concatenate([c[key] for c in collected])
    return out


def _errors(pred, ref, prefix: str) -> dict:
    if pred.size == 0:
        return {}
    error = (pred - ref).ravel()
    spread = np.sum((ref - ref.mean()) ** 2)
    r2 = 1.0 - np.sum(error**2) / spread if spread > 0 else float("nan")
    return {
        f"{prefix}_mae": float(np.mean(np.abs(error))),
        f"{prefix}_rmse": float(np.sqrt(np.mean(error**2))),
        f"{prefix}_r2": float(r2),
    }


def summarise(collected: list[dict] | dict) -> dict:
    """Metrics (see module docstring) from ``collect`` outputs."""
    data = concatenate(collected) if isinstance(collected, list) else collected
    metrics = {"n_frames": data["n_frames"]}
    (e_pred, e_ref), n_atoms = data["energy"], data["n_atoms"]
    metrics.update(_errors(e_pred, e_ref, "energy"))
    per_atom = _errors(e_pred / np.maximum(n_atoms, 1), e_ref / np.maximum(n_atoms, 1), "energy")
    metrics.update({k + "_per_atom": v for k, v in per_atom.items()})
    metrics.update(_errors(*data["forces"], "forces"))
    f_pred, f_ref = data["forces"]
    for z in np.unique(data["elements"]):
        rows = data["elements"] == z
        element = _errors(f_pred[rows], f_ref[rows], "forces")
        metrics[f"forces_mae_{chemical_symbols[z]}"] = element["forces_mae"]
        metrics[f"forces_rmse_{chemical_symbols[z]}"] = element["forces_rmse"]
    metrics.update(_errors(*data["stress"], "stress"))
    return metrics


def format_table(metrics: dict) -> str:
    """A human-readable table in meV units."""
    rows = [("frames", f"{metrics['n_frames']}")]
    units = [
        ("energy", "meV/structure", 1e3),
        ("energy_per_atom", "meV/atom", 1e3),
        ("forces", "meV/Å", 1e3),
        ("stress", "meV/Å^3", 1e3),
    ]
    for name, unit, factor in units:
        key = name.replace("_per_atom", "")
        suffix = "_per_atom" if name.endswith("_per_atom") else ""
        mae = metrics.get(f"{key}_mae{suffix}")
        if mae is None:
            continue
        rmse, r2 = metrics[f"{key}_rmse{suffix}"], metrics[f"{key}_r2{suffix}"]
        rows.append((f"{name} [{unit}]", f"MAE {mae * factor:10.3f}   RMSE {rmse * factor:10.3f}   R² {r2:.5f}"))
    for key in sorted(k for k in metrics if k.startswith("forces_mae_")):
        element = key.split("_")[-1]
        rows.append(
            (
                f"forces {element} [meV/Å]",
                (f"MAE {metrics[key] * 1e3:10.3f}   RMSE {metrics['forces_rmse_' + element] * 1e3:10.3f}"),
            )
        )
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def format_groups(groups: dict, key: str) -> str:
    """One row per group of ``evaluate_files(..., group_by=key)``: MAEs in meV units."""
    header = (key, "frames", "E meV/atom", "F meV/Å", "σ meV/Å^3")
    rows = [header]
    for name, m in groups.items():
        cells = [m.get(k) for k in ("energy_mae_per_atom", "forces_mae", "stress_mae")]
        rows.append((name, str(m["n_frames"]), *("-" if c is None else f"{c * 1e3:.3f}" for c in cells)))
    width = [max(len(row[c]) for row in rows) for c in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width[c]) if c == 0 else cell.rjust(width[c]) for c, cell in enumerate(row))
        for row in rows
    ]
    return "MAE by " + key + ":\n" + "\n".join(lines)


def format_worst(rows: list[dict]) -> str:
    """The frames of ``evaluation.worst_frames``, worst first: errors in meV units."""

    def cell(value, factor=1e3, sign="") -> str:
        return "-" if value is None else f"{value * factor:{sign}.3f}"

    header = ("frame", "atoms", "F RMSE meV/Å", "max comp. |dF| meV/Å", "dE meV/atom")
    table = [header] + [
        (
            r["where"],
            str(r["atoms"]),
            cell(r["forces_rmse"]),
            cell(r["forces_max_error"]),
            cell(r["energy_error_per_atom"], sign="+"),
        )
        for r in rows
    ]
    width = [max(len(row[c]) for row in table) for c in range(len(header))]
    lines = ["  ".join(c.ljust(width[k]) if k == 0 else c.rjust(width[k]) for k, c in enumerate(row)) for row in table]
    kind = "force RMSE" if any(r["forces_rmse"] is not None for r in rows) else "energy error"
    return f"worst {len(rows)} frames by {kind}:\n" + "\n".join(lines)
