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
from .evaluate import evaluate_run
from .run import CONFIG_FILE, is_finished, train

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

    Finished runs are reused unless ``overwrite``; an interrupted run is resumed.
    """
    out = Path(out_dir)
    run_dirs = []
    with _one_thread():
        comparison = _train_and_compare(
            out, run_dirs, epochs, n_bootstrap, overwrite, progress, data, echo
        )
    echo("")
    echo("20 Newsgroups (MiniLM embeddings), 2×256 MLP, test set; T fitted on validation:")
    echo(comparison["markdown"])
    echo(f"[demo] report: {out / 'compare.md'}; per-run reports: {out}/*/report.md")
    return comparison


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run with one intra-op thread: a 2×256 MLP step is too small to gain from more, and on a
    busy CPU spinning OpenMP threads made a 2-thread epoch 16× slower than a 1-thread one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _train_and_compare(
    out: Path,
    run_dirs: list[Path],
    epochs: int | None,
    n_bootstrap: int,
    overwrite: bool,
    progress: bool,
    data: str | Path,
    echo: Callable[[str], Any],
) -> dict[str, Any]:
    for loss, gamma in DEMO_LOSSES:
        run_dir = out / loss
        run_dirs.append(run_dir)
        if is_finished(run_dir) and not overwrite:
            echo(f"[demo] {loss}: reusing the finished run in {run_dir} (--overwrite retrains)")
            continue
        resume = (run_dir / CONFIG_FILE).is_file() and not overwrite
        echo(f"[demo] training {loss}{f' (γ={gamma:g})' if gamma else ''} → {run_dir}")
        config = demo_config(loss, gamma, data, epochs=epochs)
        train(config, run_dir, resume=resume, overwrite=overwrite, progress=progress)
        evaluate_run(run_dir, n_bootstrap=n_bootstrap)
    return compare_runs(run_dirs, n_bootstrap=n_bootstrap, out_dir=out, diagrams=True)
