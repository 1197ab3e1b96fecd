"""Start-up cost: import time of focalcal's entry points as ratios to ``import torch``, and the
wall time of ``focalcal --help``, all measured in one run.

Each measurement runs in a fresh interpreter (nothing cached in ``sys.modules``). An import is
timed inside that interpreter, around the ``import`` statement only, so the interpreter's own
start-up does not count; ``focalcal --help`` is timed from outside, as a user waits for it
(``python -m focalcal.cli --help``, which is what the ``focalcal`` script runs), next to an
empty ``python -c pass`` for the floor this machine's interpreter start-up sets. The runs are
interleaved in rounds so that a change in the machine's load affects every row alike; each
ratio is the median over rounds of the ratio within a round.

Targets: ``focalcal.losses`` <= 1.1x ``import torch``; ``focalcal --help`` < 0.5 s.

Usage::

    python benchmarks/startup.py             # 7 rounds
    python benchmarks/startup.py --repeats 15 --markdown
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

MODULES = ("torch", "focalcal.losses", "focalcal.metrics", "focalcal.cli")
_TIMED_IMPORT = (
    "import time\nstart = time.perf_counter()\nimport {module}\nprint(time.perf_counter() - start)"
)


def import_seconds(module: str) -> float:
    """Seconds of ``import module`` in a fresh interpreter."""
    code = _TIMED_IMPORT.format(module=module)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def wall_seconds(argv: list[str]) -> float:
    """Wall-clock seconds of running ``python ARGV`` to completion."""
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], capture_output=True, check=True)
    return time.perf_counter() - start


def measure(repeats: int) -> dict[str, list[float]]:
    """``name -> seconds per round`` for every import and command, interleaved in rounds."""
    rounds: dict[str, list[float]] = {}
    for _ in range(repeats):
        for module in MODULES:
            rounds.setdefault(module, []).append(import_seconds(module))
        rounds.setdefault("focalcal --help", []).append(
            wall_seconds(["-m", "focalcal.cli", "--help"])
        )
        rounds.setdefault("python -c pass", []).append(wall_seconds(["-c", "pass"]))
    return rounds


def table(rounds: dict[str, list[float]]) -> list[tuple[str, float, str]]:
    """Rows ``(what, median seconds, ratio to import torch or target)``."""
    torch_times = rounds["torch"]
    rows = []
    for module in MODULES:
        ratios = [t / base for t, base in zip(rounds[module], torch_times, strict=True)]
        rows.append(
            (
                f"import {module}",
                statistics.median(rounds[module]),
                f"{statistics.median(ratios):.2f}x",
            )
        )
    for command in ("focalcal --help", "python -c pass"):
        rows.append((command, statistics.median(rounds[command]), "wall"))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    rows = table(measure(args.repeats))
    if args.markdown:
        print("| what | median s | ratio to `import torch` |\n|---|---:|---:|")
        for what, seconds, ratio in rows:
            print(f"| `{what}` | {seconds:.3f} | {ratio} |")
        return
    for what, seconds, ratio in rows:
        print(f"{what:28s} {seconds:7.3f} s  {ratio}")
    print(f"({args.repeats} rounds, median; {sys.version.split()[0]}, fresh interpreters)")


if __name__ == "__main__":
    main()
