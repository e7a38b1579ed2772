"""mlpot's speed benchmark, side by side with its peers, in one command.

    .venv/bin/python benchmarks/run.py                  # mlpot only (our engine, ASE + our calculator)
    .venv/bin/python benchmarks/run.py --peers          # + apax, mlip, mace-torch (bash benchmarks/peers/setup.sh first)
    .venv/bin/python benchmarks/run.py --peers --quick  # smallest system of each kind only

Prints tables, writes JSON (``--json``, default benchmarks/results/benchmark.json),
a Markdown report (``--markdown``) and a PNG of atom-steps/s against N
(``--png``). Every engine runs in its own process (peers in their own
virtual environments), one process per engine and model, its cases smallest
first, with the same structures (benchmarks/structures.py), the same 5 Å
cutoff, random weights, NVE at dt = 1 fs from 300 K velocities and the same
timing protocol (benchmarks/peers/common.py). A peer that is not installed,
fails or runs out of time or memory is reported with its error, never left out.
Figures are speeds, never asserted: the machine may be shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
sys.path.insert(0, str(HERE))

import report
import structures


class Engine(NamedTuple):
    key: str  # label in the tables
    venv: str | None  # peer venv name under benchmarks/peers (None: this Python)
    script: str  # runner in benchmarks/peers
    model: str | None  # --model for runners with several
    block: int  # MD steps per timed block at the smallest size
    ours: str | None  # the mlpot engine it is compared with (ratio ours/peer)


OURS = [
    Engine("mlpot painn-fast", None, "run_mlpot_md.py", "painn-fast", 20, None),
    Engine("mlpot painn", None, "run_mlpot_md.py", "painn", 20, None),
    Engine("mlpot mace", None, "run_mlpot_md.py", "mace", 10, None),
    Engine("ASE VV + mlpot painn-fast", None, "run_mlpot_ase.py", "painn-fast", 5, "mlpot painn-fast"),
    Engine("ASE VV + mlpot mace", None, "run_mlpot_ase.py", "mace", 5, "mlpot mace"),
    Engine("mlpot lj", None, "run_mlpot_md.py", "lj", 50, None),
    Engine("ASE VV + mlpot lj", None, "run_mlpot_ase.py", "lj", 10, "mlpot lj"),
]
PEER_ENGINES = [  # each compared with our model of its kind: GMNN with our fast model, MACE with MACE
    Engine("apax GMNN", "apax", "run_apax.py", None, 20, "mlpot painn-fast"),
    Engine("mlip MACE", "mlip", "run_mlip.py", None, 10, "mlpot mace"),
    Engine("mace-torch MACE + ASE VV", "mace", "run_mace.py", None, 3, "mlpot mace"),
]


def peer_python(engine: Engine) -> tuple[str | None, str | None]:
    """(python of the engine's venv, or None and why it cannot run)."""
    if engine.venv is None:
        return sys.executable, None
    venv = PEERS / f".venv-{engine.venv}"
    status = (venv / "STATUS").read_text().strip() if (venv / "STATUS").is_file() else None
    if status is None:
        return None, f"not installed: run `bash benchmarks/peers/setup.sh {engine.venv}` first"
    if status != "ok":
        return None, f"install {status} (log: {venv / 'setup.log'})"
    return str(venv / "bin" / "python"), None


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children, MiB (Linux /proc)."""
    total = 0.0
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
        if int(status.parent.name) == pid or fields.get("PPid", "").strip() == str(pid):
            total += float(fields.get("VmRSS", "0 kB").split()[0]) / 1024.0
    return total


def run_engine(engine: Engine, cases, args) -> list[dict]:
    """One runner process for all ``cases`` of an engine; a record per case, whatever happens."""
    base = {"engine": engine.key, "peer": engine.venv or "mlpot", "compare_with": engine.ours}
    python, why = peer_python(engine)
    if python is None:
        return [dict(base, system=s, atoms=n, status="failed", error=why) for s, n in cases]
    command = [
        python,
        str(PEERS / engine.script),
        "--cases",
        ",".join(f"{s}:{n}" for s, n in cases),
        "--block",
        str(engine.block),
        "--seconds",
        str(args.seconds),
        "--limit",
        str(args.limit),
    ]
    if engine.model:
        command += ["--model", engine.model]
    print(f"[{engine.key}] {' '.join(command)}", flush=True)
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=out, stderr=err, text=True, cwd=HERE.parent)
        start, killed = time.monotonic(), None
        while process.poll() is None:
            time.sleep(0.5)
            if rss_mb(process.pid) > args.max_rss_mb:
                killed = f"killed: resident memory exceeded {args.max_rss_mb:.0f} MiB"
            elif time.monotonic() - start > args.timeout:
                killed = f"killed: engine time limit of {args.timeout:.0f} s reached"
            if killed:
                process.kill()
                process.wait()
        out.seek(0), err.seek(0)
        records = [json.loads(line) for line in out.read().splitlines() if line.startswith("{")]
        stderr_tail = " | ".join(err.read().strip().splitlines()[-3:])
    done = {(r["system"], r["atoms"]) for r in records}
    missing = sorted((c for c in cases if c not in done), key=lambda c: c[1])  # the runner's order
    for k, (system, n) in enumerate(missing):
        why = killed or f"runner exited with code {process.returncode}: {stderr_tail}"
        if k > 0:  # the runner died on the first missing case; these never started
            why = f"not run: the runner was stopped during the {missing[0][0]} {missing[0][1]}-atom case"
        records.append({"system": system, "atoms": n, "status": "failed", "error": why})
    for record in records:
        record.update(base, engine=engine.key)
        print(f"  {report.one_line(record)}", flush=True)
    return records


def ratios(records: list[dict]) -> list[dict]:
    """ours / peer for every figure where both ran: atom-steps/s (wall and CPU), compile time, peak RSS."""
    index = {(r["engine"], r["system"], r["atoms"]): r for r in records}
    out = []
    for peer in records:
        ours = index.get((peer.get("compare_with"), peer["system"], peer["atoms"]))
        if ours is None:
            continue
        row = {"ours": ours["engine"], "peer": peer["engine"], "system": peer["system"], "atoms": peer["atoms"]}
        if ours.get("status") == "ok" and peer.get("status") == "ok":
            row.update(
                speed=ours["atom_steps_per_s"] / peer["atom_steps_per_s"],
                speed_cpu=ours["atom_steps_per_cpu_s"] / peer["atom_steps_per_cpu_s"],
                compile=ours["compile_s"] / max(peer["compile_s"], 1e-9),
                rss=ours["peak_rss_mb"] / peer["peak_rss_mb"],
            )
        else:
            row["note"] = f"ours {ours.get('status')}, peer {peer.get('status')}"
        out.append(row)
    return out


def single_point(args) -> list[dict]:
    out = []
    for system in ("water", "cu"):
        for model in ("painn-fast", "mace"):
            command = [
                sys.executable,
                str(PEERS / "run_mlpot_single.py"),
                "--system",
                system,
                "--model",
                model,
                "--frames",
                "8" if args.quick else "32",
                "--repeats",
                "1" if args.quick else "2",
            ]
            print(f"[single point] {' '.join(command)}", flush=True)
            result = subprocess.run(
                command, capture_output=True, text=True, cwd=HERE.parent, timeout=args.timeout, check=False
            )
            lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
            record = (
                json.loads(lines[-1])
                if lines
                else {"system": system, "model": model, "status": "failed", "error": result.stderr.strip()[-300:]}
            )
            print(f"  {report.one_line_single(record)}", flush=True)
            out.append(record)
    return out


def training(args) -> list[dict]:
    command = [sys.executable, str(PEERS / "run_mlpot_train.py")] + (["--quick"] if args.quick else [])
    if not (PEERS / "run_mlpot_train.py").is_file():
        return [{"status": "not measured yet"}]
    print(f"[training] {' '.join(command)}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True, cwd=HERE.parent, timeout=args.timeout, check=False)
    records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return records or [{"status": "failed", "error": result.stderr.strip()[-300:]}]


def machine() -> dict:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average_at_start": os.getloadavg(),
        "gpu": _jax_device(),
    }


def _jax_device() -> str:
    """What the JAX engines ran on (they run in their own processes, with this environment)."""
    code = "import jax; d = jax.devices()[0]; print(d.platform, getattr(d, 'device_kind', ''))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    device = done.stdout.strip() if done.returncode == 0 else "unknown (jax did not start)"
    return device if not device.startswith("cpu") else "none (JAX ran on the CPU)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", action="store_true", help="also run apax, mlip and mace-torch")
    parser.add_argument("--quick", action="store_true", help="smallest system of each kind only")
    parser.add_argument("--only", help="comma-separated engine labels to run (default: all)")
    parser.add_argument("--json", type=Path, default=HERE / "results" / "benchmark.json")
    parser.add_argument("--markdown", type=Path, help="also write the tables as Markdown here")
    parser.add_argument("--png", type=Path, help="plot of atom-steps/s vs N (default: next to --json)")
    parser.add_argument("--seconds", type=float, default=3.0, help="steady-state seconds per case, at least")
    parser.add_argument("--limit", type=float, default=60.0, help="skip a case estimated to take longer (s)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="wall-time limit per engine process (s)")
    parser.add_argument("--max-rss-mb", type=float, default=8192.0, help="kill an engine above this memory")
    parser.add_argument("--no-extras", action="store_true", help="skip single-point and training figures")
    parser.add_argument(
        "--reuse",
        type=Path,
        help="take the records of engines not run now from this earlier JSON "
        "(their start time is kept in each record: say so when quoting ratios)",
    )
    args = parser.parse_args(argv)
    cases = structures.cases(quick=args.quick)
    engines = OURS + (PEER_ENGINES if args.peers else [])
    if args.only:
        wanted = {label.strip() for label in args.only.split(",")}
        engines = [e for e in engines if e.key in wanted]
    started = time.time()
    results = {
        "command": " ".join(["python", *sys.argv]),
        "machine": machine(),
        "started_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(started)),
        "md": [],
    }
    for engine in engines:
        results["md"].extend(run_engine(engine, cases, args))
    if args.reuse:
        earlier = json.loads(args.reuse.read_text())
        ran = {e.key for e in engines}
        kept = [dict(r, reused_from=earlier["started_utc"]) for r in earlier["md"] if r["engine"] not in ran]
        results["md"].extend(kept)
        results["reused"] = {"file": str(args.reuse), "started_utc": earlier["started_utc"], "records": len(kept)}
    results["ratios"] = ratios(results["md"])
    if not args.no_extras:
        results["single_point"] = single_point(args)
        results["training"] = training(args)
    results["wall_s"] = time.time() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    png = args.png or args.json.with_suffix(".png")
    gpu = results["machine"]["gpu"]
    report.plot(results["md"], png, "CPU" if gpu.startswith(("none", "unknown")) else f"{gpu} (JAX engines)")
    text = report.markdown(results, png)
    if args.markdown:
        args.markdown.write_text(text)
    print(text)
    print(f"wrote {args.json}, {png}" + (f", {args.markdown}" if args.markdown else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
