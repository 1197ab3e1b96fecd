"""Time of a reproduction suite (issue 7: ``cpu-text`` "well under an hour on 2 CPU cores").

Reads a suite folder written by ``focalcal reproduce`` (or runs the ``ci`` suite into a
temporary folder first) and prints, per dataset and loss, the mean training time of a run and
its ratio to cross-entropy, the total training time, and the invocation's wall time against
the target. All numbers come from the runs' own ``status.json`` (measured by ``train``) and
``results.json`` of that one suite run.

Usage::

    python benchmarks/reproduce.py --suite-dir reproduce-cpu-text --target-min 60
    python benchmarks/reproduce.py            # runs the ci suite in a temporary folder
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path


def summarise(suite_dir: Path, target_min: float) -> str:
    results = json.loads((suite_dir / "results.json").read_text())
    inv = results.get("invocation", {})
    lines = [
        f"suite {results['suite']}: {suite_dir}",
        f"machine: {inv.get('machine', {}).get('processor')}, "
        f"{inv.get('machine', {}).get('cpu_count')} cores, GPU {inv.get('machine', {}).get('gpu')}",
        "",
        "| dataset | loss | runs | mean train s / run | ratio to CE |",
        "|---|---|---|---|---|",
    ]
    total = 0.0
    for ds in results["datasets"]:
        per_loss = {}
        for row in ds["rows"]:
            secs = [
                json.loads((suite_dir / r / "status.json").read_text())["train_seconds"]
                for r in row["runs"]
            ]
            per_loss[row["loss"]] = (len(secs), statistics.mean(secs))
            total += sum(secs)
        base = per_loss.get("ce", (0, float("nan")))[1]
        for loss, (n, mean) in per_loss.items():
            lines.append(f"| {ds['key']} | {loss} | {n} | {mean:.1f} | {mean / base:.2f} |")
    tuning = sum(
        json.loads(p.read_text())["train_seconds"]
        for p in (suite_dir / "tune-gamma").rglob("status.json")
    )
    wall = inv.get("wall_seconds", float("nan"))
    lines += [
        "",
        f"training time of the suite runs: {total / 60:.1f} min; γ search: {tuning / 60:.1f} min",
        f"wall time of the invocation: {wall / 60:.1f} min "
        f"(ratio to the {target_min:g}-min target: {wall / 60 / target_min:.2f})",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite-dir", type=Path, help="a folder written by focalcal reproduce")
    parser.add_argument("--target-min", type=float, default=60.0, help="time target (minutes)")
    args = parser.parse_args()
    if args.suite_dir is None:
        from focalcal.training.reproduce import reproduce

        tmp = Path(tempfile.mkdtemp(prefix="bench-reproduce-"))
        reproduce("ci", tmp, echo=lambda _: None)
        args.suite_dir = tmp
    print(summarise(args.suite_dir, args.target_min))


if __name__ == "__main__":
    main()
