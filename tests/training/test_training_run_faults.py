"""Run folders under faults: real kills of a training process, truncated and hostile files.

Every fault here is the real one: a ``SIGKILL`` of a real ``focalcal train`` process (while it
writes a checkpoint, and while it evaluates), files truncated or emptied by the test, and a
pickle that would run code if it were unpickled.
"""

from __future__ import annotations

import dataclasses
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("lightning")

from focalcal.training import CorruptRunFileError, evaluate_run, make_config, train
from focalcal.training.demo import DEMO_DATA
from focalcal.training.run import read_run_config

TEMPORARY = ".*.tmp"  # the atomic writers' temporaries: .<name>.<16 hex>.tmp


@pytest.fixture(scope="module")
def news(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4-class slice of the packaged 20 Newsgroups embeddings (60 train, 40 test per class)."""
    with np.load(DEMO_DATA, allow_pickle=False) as d:
        data = {k: d[k] for k in d.files}
    pick = {
        split: np.concatenate([np.flatnonzero(data[f"y_{split}"] == c)[:n] for c in range(4)])
        for split, n in (("train", 60), ("test", 40))
    }
    path = tmp_path_factory.mktemp("news") / "news4.npz"
    np.savez(
        path,
        **{f"{a}_{s}": data[f"{a}_{s}"][pick[s]] for a in ("x", "y") for s in ("train", "test")},
        class_names=data["class_names"][:4],
    )
    return path


def _config(data: Path, epochs: int = 2, hidden: int = 32, **values):
    return make_config(
        "npz", "mlp", "ce", preset="cpu", data_root=str(data), epochs=epochs, milestones=[1],
        batch_size=64, model_options={"hidden": hidden}, deterministic=True, **values,
    )  # fmt: skip


@pytest.fixture(scope="module")
def finished(news: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "finished"
    train(_config(news), run, progress=False)
    return run


def _copy(run: Path, dest: Path) -> Path:
    subprocess.run(["cp", "-r", str(run), str(dest)], check=True)
    return dest


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "focalcal.cli", *args]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}


def _train_args(data: Path, out: Path, epochs: int, hidden: int, *extra: str) -> list[str]:
    return [
        "train", "--dataset", "npz", "--data-root", str(data), "--model", "mlp",
        "--model-option", f"hidden={hidden}", "--loss", "ce", "--preset", "cpu",
        "--epochs", str(epochs), "--milestones", "1", "--batch-size", "64", "--deterministic",
        "--no-progress", "--out", str(out), *extra,
    ]  # fmt: skip


# --------------------------------------------------------------------------- resume


def test_resume_with_another_recipe_is_refused_naming_the_fields(news, finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    (run / "status.json").unlink()  # an unfinished run
    changed = dataclasses.replace(read_run_config(run), epochs=4, loss="focal", devices=1)
    with pytest.raises(ValueError, match="another recipe") as err:
        train(changed, run, resume=True, progress=False)
    text = str(err.value)
    assert "epochs: 2 → 4" in text and "loss: 'ce' → 'focal'" in text
    assert "devices" not in text.split("(only")[0]  # a runtime field may change
    assert "--overwrite" in text
    assert not (run / "status.json").exists()  # nothing was trained


def test_resume_with_only_runtime_changes_continues(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    (run / "status.json").unlink()
    config = dataclasses.replace(read_run_config(run), num_workers=0, precision="32")
    assert train(config, run, resume=True, progress=False) == run
    assert (run / "status.json").is_file()


# --------------------------------------------------------------------------- corrupt files


def test_truncated_checkpoint_names_the_file_and_the_remedy(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    (run / "status.json").unlink()
    ckpt = run / "checkpoints" / "last.ckpt"
    ckpt.write_bytes(ckpt.read_bytes()[: ckpt.stat().st_size // 2])
    with pytest.raises(CorruptRunFileError, match="truncated or corrupt checkpoint") as err:
        train(read_run_config(run), run, resume=True, progress=False)
    assert str(ckpt) in str(err.value) and "delete it" in str(err.value)
    ckpt.write_bytes(b"")  # empty
    with pytest.raises(CorruptRunFileError, match=str(ckpt)):
        train(read_run_config(run), run, resume=True, progress=False)


class _Payload:
    """Unpickling this runs code: it creates the file ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_malicious_checkpoint_is_refused_without_running_it(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    marker = tmp_path / "payload-ran"
    with open(run / "checkpoints" / "last.ckpt", "wb") as fh:
        pickle.dump({"state_dict": _Payload(marker)}, fh)
    with pytest.raises(CorruptRunFileError, match="refused to load") as err:
        evaluate_run(run, recompute_logits=True, n_bootstrap=0, diagrams=False)
    assert "weights_only=False" not in str(err.value) and "delete it" in str(err.value)
    assert not marker.exists()
    pickle.loads(pickle.dumps(_Payload(marker)))  # the payload is real: unpickling runs it
    assert marker.exists()


@pytest.mark.parametrize("damage", ["truncate", "empty"])
def test_corrupt_logits_name_the_file_and_recompute_logits(finished, tmp_path, damage):
    run = _copy(finished, tmp_path / "run")
    logits = run / "logits.npz"
    logits.write_bytes(
        logits.read_bytes()[: logits.stat().st_size // 2] if damage == "truncate" else b""
    )
    with pytest.raises(CorruptRunFileError, match="corrupt logits file") as err:
        evaluate_run(run, n_bootstrap=0, diagrams=False)
    assert str(logits) in str(err.value) and "--recompute-logits" in str(err.value)
    # the remedy works: the logits are recomputed from the checkpoint
    assert evaluate_run(run, n_bootstrap=0, diagrams=False, recompute_logits=True)["n_test"] == 160


@pytest.mark.parametrize("content", [b"", b'{"dataset": "npz", "mod'])
def test_corrupt_config_names_the_file(finished, tmp_path, content):
    run = _copy(finished, tmp_path / "run")
    (run / "config.json").write_bytes(content)
    with pytest.raises(CorruptRunFileError, match="not a readable run config") as err:
        evaluate_run(run, n_bootstrap=0, diagrams=False)
    assert str(run / "config.json") in str(err.value) and "--overwrite" in str(err.value)


# --------------------------------------------------------------------------- real kills


def _kill_when(proc: subprocess.Popen, ready, deadline: float) -> bool:
    """SIGKILL ``proc`` as soon as ``ready()``; False if it ended (or time ran out) first."""
    try:
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                return False
            time.sleep(0.0005)
        proc.send_signal(signal.SIGKILL)
        return True
    finally:
        proc.wait()


def test_kill_during_checkpoint_write_leaves_no_temporaries_once_resumed(news, tmp_path):
    """A large model makes each checkpoint write last milliseconds; the test kills the process
    while a temporary checkpoint exists (a few tries, bounded in time)."""
    deadline = time.monotonic() + 90
    caught = 0
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        proc = subprocess.Popen(
            _cli(*_train_args(news, run, 12, 1024, "--no-evaluate")),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env(),
        )  # fmt: skip
        ckpts = run / "checkpoints"
        if not _kill_when(proc, lambda d=ckpts: any(d.glob(TEMPORARY)), deadline):
            continue
        if not list(ckpts.glob(TEMPORARY)):
            continue  # the rename won the race: try again
        caught += 1
        config = read_run_config(run)
        assert train(config, run, resume=True, progress=False) == run
        assert not list(run.rglob(TEMPORARY))
        assert (run / "status.json").is_file() and (run / "logits.npz").is_file()
        break
    assert caught, "no kill landed while a checkpoint was being written"


def test_kill_during_evaluation_is_completed_by_resume(news, tmp_path):
    deadline = time.monotonic() + 120
    for attempt in range(3):
        run = tmp_path / f"run{attempt}"
        args = _train_args(news, run, 2, 32, "--n-bootstrap", "2000")
        proc = subprocess.Popen(
            _cli(*args), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=_env()
        )
        killed = _kill_when(proc, lambda r=run: (r / "status.json").is_file(), deadline)
        if killed and not (run / "metrics.json").exists():
            break
    else:
        pytest.fail("no kill landed between the end of training and the end of evaluation")
    assert proc.returncode == -signal.SIGKILL
    # what `focalcal train --resume --out RUN` does: resume (nothing left to train), evaluate
    stamp = (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns
    assert train(read_run_config(run), run, resume=True, progress=False) == run
    assert (run / "checkpoints" / "last.ckpt").stat().st_mtime_ns == stamp  # not retrained
    evaluate_run(run, n_bootstrap=100)
    assert (run / "metrics.json").is_file() and (run / "report.md").is_file()
    assert not list(run.rglob(TEMPORARY))
