"""``focalcal demo``: CE vs FLSD-53 vs Dual Focal Loss on packaged 20 Newsgroups embeddings.

No download: the data (11,314 train / 7,532 test documents as 384-d all-MiniLM-L6-v2 sentence
embeddings, float16) ship inside the package, see ``focalcal/data/demo/PROVENANCE.md``. Each
loss trains a 2×256 MLP with the ``cpu`` preset (the papers' SGD, summed loss and clipping, 20
epochs); then every run is evaluated (T fitted on the validation split, carved 10% from train
with seed 1) and the comparison table is printed and written to ``OUT/compare.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from .compare import compare_runs
from .config import make_config
from .runs import execute_run, run_state
from .suites import RunSpec

__all__ = ["DEMO_DATA", "DEMO_LOSSES", "demo_config", "run_demo"]

DEMO_DATA = Path(__file__).resolve().parents[1] / "data" / "demo" / "20news-minilm-l6-f16.npz"

#: (loss, γ) trained by the demo: cross-entropy, FLSD-53 (Mukhoti et al.), DFL γ=5 (Tao et al.).
DEMO_LOSSES: tuple[tuple[str, float | None], ...] = (
    ("ce", None),
    ("flsd53", None),
    ("dual_focal", 5.0),
)


def demo_config(
    loss: str, gamma: float | None, data: str | Path = DEMO_DATA, **overrides: Any
) -> Any:
    """The demo's config for one loss (``overrides`` replace any field, e.g. ``epochs``)."""
    values: dict[str, Any] = {
        "data_root": str(data),
        "model_options": {"hidden": 256, "depth": 2},
        "gamma": gamma,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return make_config("npz", "mlp", loss, preset="cpu", **values)


def run_demo(
    out_dir: str | Path = "focalcal-demo",
    *,
    epochs: int | None = None,
    n_bootstrap: int = 200,
    overwrite: bool = False,
    progress: bool = False,
    data: str | Path = DEMO_DATA,
    echo: Callable[[str], Any] = print,
) -> dict[str, Any]:
    """Train (or reuse) the three demo runs in ``out_dir``, evaluate, compare; returns the
    comparison (see :func:`focalcal.training.compare.compare_runs`).

    Runs go through :func:`focalcal.training.runs.execute_run`, as every suite run: finished
    runs are reused unless ``overwrite``, an interrupted run is resumed, and a folder holding a
    run of another configuration (e.g. other ``epochs``) is refused.
    """
    out = Path(out_dir)
    with _one_thread():
        run_dirs = [_demo_run(out, loss, gamma, epochs, n_bootstrap, overwrite, progress, data, echo)
                    for loss, gamma in DEMO_LOSSES]  # fmt: skip
        comparison = compare_runs(
            run_dirs, n_bootstrap=n_bootstrap, out_dir=out, diagrams=True, per_run=True
        )
    echo("")
    echo("20 Newsgroups (MiniLM embeddings), 2×256 MLP, test set; T fitted on validation:")
    echo(comparison["markdown"])
    echo(f"[demo] report: {out / 'compare.md'}; per-run reports: {out}/*/report.md")
    return comparison


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run with one intra-op thread: a 2×256 MLP step is too small to gain from more, and
    spinning OpenMP threads compete for the cores of a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _demo_run(
    out: Path,
    loss: str,
    gamma: float | None,
    epochs: int | None,
    n_bootstrap: int,
    overwrite: bool,
    progress: bool,
    data: str | Path,
    echo: Callable[[str], Any],
) -> Path:
    """Train, resume or reuse the demo run of ``loss`` in ``out/loss``, evaluated."""
    run_dir = out / loss
    config = demo_config(loss, gamma, data, epochs=epochs)
    spec = RunSpec("20ng", loss, config.seed, str(run_dir), config.to_dict())
    if not overwrite and run_state(spec) == "finished":
        echo(f"[demo] {loss}: reusing the finished run in {run_dir} (--overwrite retrains)")
    else:
        echo(f"[demo] training {loss}{f' (γ={gamma:g})' if gamma else ''} → {run_dir}")
    execute_run(
        spec, n_bootstrap=n_bootstrap, diagrams=True, overwrite=overwrite, progress=progress
    )
    return run_dir
