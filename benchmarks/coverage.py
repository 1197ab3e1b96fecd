"""Coverage of the nominal 95% bootstrap intervals of ECE, AdaECE and Classwise-ECE.

Synthetic models with a known population value (:mod:`focalcal.metrics.coverage`): logits
z ~ N(0, 3²) per class, the model reports softmax(z), labels follow softmax(s·z). For each cell
of the grid N × C × s, the population value of each metric (15 bins) is computed from
``--draws`` logit draws, then ``--repetitions`` test sets of N items are drawn and every interval
method is evaluated on the same ``--resamples`` bootstrap resamples of each. It prints, per cell,
the population value and, per method, the coverage (fraction of intervals containing the
population value) and the fraction of intervals containing their own estimate.

    python benchmarks/coverage.py                       # the full study (~30 min on 2 cores)
    python benchmarks/coverage.py --quick               # a small grid, for a smoke test

Target: coverage >= 0.90 in every cell whose population value is >= 1%.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from focalcal.metrics.bootstrap import INTERVAL_METHODS
from focalcal.metrics.coverage import POPULATION_METRICS, SyntheticModel, interval_coverage

TARGET = 0.90
RELEVANT = 0.01


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--classes", type=int, nargs="+", default=[10, 100])
    parser.add_argument("--scales", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    parser.add_argument("--draws", type=int, default=10_000_000)
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--quick", action="store_true", help="tiny grid (smoke test)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.classes, args.scales = [300], [5], [0.5, 1.0]
        args.draws, args.repetitions, args.resamples = 100_000, 10, 50
    return args


def _row(cell: dict) -> str:
    coverage = " | ".join(f"{cell['methods'][m]['coverage']:.2f}" for m in INTERVAL_METHODS)
    contains = " | ".join(
        f"{cell['methods'][m]['contains_estimate']:.2f}" for m in INTERVAL_METHODS
    )
    return (
        f"| {cell['metric']} | {cell['n']:,} | {cell['classes']} | {cell['scale']:g} | "
        f"{100 * cell['population']:.2f} | {coverage} | {contains} |"
    )


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    torch.set_num_threads(1)
    started, wall = time.process_time(), time.perf_counter()
    cells = []
    names = " | ".join(INTERVAL_METHODS)
    print(
        f"| metric | N | C | s | population (%) | coverage: {names} | contains estimate: {names} |"
    )
    print("|---" * (5 + 2 * len(INTERVAL_METHODS)) + "|")
    for classes in args.classes:
        for scale in args.scales:
            model = SyntheticModel(classes, scale)
            population = model.population_values(draws=args.draws)
            for n in args.sizes:
                for metric in POPULATION_METRICS:
                    result = interval_coverage(
                        model, metric, n=n, population=population[metric],
                        repetitions=args.repetitions, n_resamples=args.resamples,
                    )  # fmt: skip
                    cell = {
                        "metric": metric, "n": n, "classes": classes, "scale": scale,
                        "population": population[metric],
                        "methods": {m: r._asdict() for m, r in result.items()},
                    }  # fmt: skip
                    cells.append(cell)
                    print(_row(cell), flush=True)
    _summary(cells)
    print(
        f"\n{time.process_time() - started:.0f} s of CPU time, {time.perf_counter() - wall:.0f} s of wall time"
    )
    if args.json:
        args.json.write_text(json.dumps(cells, indent=2) + "\n")
    return 0


def _summary(cells: list[dict]) -> None:
    relevant = [c for c in cells if c["population"] >= RELEVANT]
    print(f"\nCells with population value >= {RELEVANT:.0%}: {len(relevant)} of {len(cells)}")
    for method in INTERVAL_METHODS:
        coverages = [c["methods"][method]["coverage"] for c in relevant]
        worst = min(coverages, default=float("nan"))
        meets = sum(v >= TARGET for v in coverages)
        print(f"  {method:10s} worst coverage {worst:.2f}; >= {TARGET} in {meets}/{len(relevant)}")


if __name__ == "__main__":
    raise SystemExit(main())
