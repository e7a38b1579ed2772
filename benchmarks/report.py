"""Tables (Markdown) and the atom-steps/s plot for benchmarks/run.py's results."""

from __future__ import annotations

from pathlib import Path


def _num(value, digits: int = 3) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def one_line(r: dict) -> str:
    head = f"{r['system']} {r['atoms']}: {r.get('status')}"
    if r.get("status") != "ok":
        return f"{head} ({r.get('error')})"
    return (
        f"{head}, {r['atom_steps_per_s']:,.0f} atom-steps/s, {r['ns_per_day']:.3g} ns/day, "
        f"compile {r['compile_s']:.1f} s, RSS {r['peak_rss_mb']:.0f} MiB"
    )


def one_line_single(r: dict) -> str:
    if r.get("status") != "ok":
        return f"{r.get('system')} {r.get('model')}: {r.get('status')} ({r.get('error')})"
    return (
        f"{r['system']} {r['model']}: calculator {r['calculator']['structures_per_s']:.3g} structures/s, "
        f"batched predict {r['batched_predict']['structures_per_s']:.3g} structures/s"
    )


def md_table(records: list[dict]) -> str:
    lines = [
        (
            "| engine | parameters | system | atoms | atom-steps/s | ns/day (1 fs) | µs per atom-step "
            "| atom-steps per CPU-s | compile s | peak RSS MiB | status |"
        ),
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        ok = r.get("status") == "ok"
        cells = [r["engine"], f"{r['num_params']:,}" if r.get("num_params") else "-", r["system"], str(r["atoms"])]
        if ok:
            cells += [
                _num(r["atom_steps_per_s"]),
                _num(r["ns_per_day"]),
                _num(1e6 / r["atom_steps_per_s"]),
                _num(r["atom_steps_per_cpu_s"]),
                _num(r["compile_s"]),
                _num(r["peak_rss_mb"]),
                "ok",
            ]
        else:
            cells += ["-"] * 5 + [_num(r.get("peak_rss_mb")), f"{r.get('status')}: {r.get('error', '')}"[:160]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_table(rows: list[dict]) -> str:
    lines = [
        (
            "| ours | peer | system | atoms | speed ours/peer (wall) | speed ours/peer (CPU time) "
            "| compile ours/peer | peak RSS ours/peer |"
        ),
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        if "speed" in r:
            cells = [_num(r["speed"]) + "×", _num(r["speed_cpu"]) + "×", _num(r["compile"]), _num(r["rss"])]
        else:
            cells = [r.get("note", "-"), "-", "-", "-"]
        lines.append("| " + " | ".join([r["ours"], r["peer"], r["system"], str(r["atoms"])] + cells) + " |")
    return "\n".join(lines)


def single_table(records: list[dict]) -> str:
    lines = [
        (
            "| system | model | atoms/frame | Calculator structures/s | first call s | batched predict structures/s "
            "| first batch s | status |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        if r.get("status") == "ok":
            c, b = r["calculator"], r["batched_predict"]
            cells = [
                _num(c["structures_per_s"]),
                _num(c["first_call_s"]),
                _num(b["structures_per_s"]),
                _num(b["first_call_s"]),
                "ok",
            ]
        else:
            cells = ["-"] * 4 + [f"{r.get('status')}: {r.get('error', '')}"[:160]]
        lines.append(
            "| "
            + " | ".join([str(r.get("system")), str(r.get("model")), str(r.get("atoms_per_frame", "-"))] + cells)
            + " |"
        )
    return "\n".join(lines)


def training_table(records: list[dict]) -> str:
    if not records or "frames_per_s" not in records[0]:
        return "Training throughput: " + ", ".join(
            str(r.get("status")) + (f" ({r['error']})" if r.get("error") else "") for r in records
        )
    lines = [
        "| data | model | train frames | batch | epochs timed | frames/s per epoch | first epoch s | status |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in records:
        lines.append(
            "| "
            + " | ".join(
                [
                    r["data"],
                    r["model"],
                    str(r["frames"]),
                    str(r["batch_size"]),
                    str(r.get("epochs_timed", "-")),
                    _num(r.get("frames_per_s")),
                    _num(r.get("first_epoch_s")),
                    r["status"],
                ]
            )
            + " |"
        )
    return "\n".join(lines)


def markdown(results: dict, png: Path) -> str:
    m = results["machine"]
    parts = [
        f"Command: `{results['command']}`; started {results['started_utc']} UTC, took {results['wall_s']:.0f} s.",
        (
            f"Machine: {m['cpu']}, {m['cores']} cores, load average at start {m['load_average_at_start']}; "
            f"GPU: {m['gpu']}."
        ),
    ]
    if "reused" in results:
        parts.append(
            f"Records of engines not run by this command come from the run started "
            f"{results['reused']['started_utc']} UTC ({results['reused']['file']})."
        )
    parts += [
        "",
        "### MD throughput",
        "",
        md_table(results["md"]),
        "",
        "### Ratios ours / peer (speed > 1: we are faster; compile and RSS < 1: we use less)",
        "",
        ratio_table(results["ratios"]),
        "",
        f"![atom-steps/s vs N]({png.name})",
    ]
    if "single_point" in results:
        parts += ["", "### Single-point throughput (mlpot)", "", single_table(results["single_point"])]
    if "training" in results:
        parts += ["", "### Training throughput (mlpot)", "", training_table(results["training"])]
    return "\n".join(parts) + "\n"


def plot(records: list[dict], path: Path, device: str = "CPU") -> None:
    """atom-steps/s (left) and µs per atom-step (right) against N, log-log; water circles, Cu squares."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 6.5))
    engines = list(dict.fromkeys(r["engine"] for r in records))
    colours = plt.cm.tab10.colors
    for k, engine in enumerate(engines):
        for system, marker, style in (("water", "o", "-"), ("cu", "s", "--")):
            ok = sorted(
                (r for r in records if r["engine"] == engine and r["system"] == system and r.get("status") == "ok"),
                key=lambda r: r["atoms"],
            )
            if not ok:
                continue
            n = [r["atoms"] for r in ok]
            rate = [r["atom_steps_per_s"] for r in ok]
            label = f"{engine} ({system})"
            axes[0].plot(n, rate, style, marker=marker, color=colours[k % 10], label=label)
            axes[1].plot(n, [1e6 / x for x in rate], style, marker=marker, color=colours[k % 10], label=label)
    for ax, ylabel in zip(axes, ("atom-steps / s (higher is faster)", "µs per atom-step (flat = O(N))")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("atoms N")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.suptitle(f"MD throughput, {device}, random-weight models, dt = 1 fs (shared machine: noisy)")
    fig.tight_layout(rect=(0, 0.2, 1, 1))
    if handles:  # below the panels, so it hides no data
        fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
