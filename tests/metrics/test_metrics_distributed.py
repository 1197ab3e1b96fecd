"""A real two-process torch.distributed (gloo, CPU) run: each rank updates on its share of the
data and the synced streaming values equal the single-process functional values."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

from focalcal import metrics

WORKER = Path(__file__).with_name("ddp_worker_metrics.py")


def _worker_module():
    spec = importlib.util.spec_from_file_location("ddp_worker_metrics", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo")
def test_two_process_gloo_sync_equals_single_process(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    init_file = tmp_path / "init"
    outs = [tmp_path / f"rank{r}.json" for r in range(2)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(r), "2", str(init_file), str(outs[r])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for r in range(2)
    ]
    for p in procs:
        output, _ = p.communicate(timeout=90)
        assert p.returncode == 0, output.decode()[-3000:]
    ranks = [json.loads(o.read_text()) for o in outs]
    assert ranks[0] == ranks[1]  # every rank sees the same synced value

    logits, labels = _worker_module().shared_data()
    kw = {"from_logits": True}
    expected = {
        "ece": metrics.ece(logits, labels, **kw),
        "adaece": metrics.adaece(logits, labels, **kw),
        "classwise_official": metrics.classwise_ece(logits, labels, convention="official", **kw),
    }
    for conv in ("default", "official"):
        for name, fn in [
            ("ece", metrics.ece),
            ("adaece", metrics.adaece),
            ("classwise_ece", metrics.classwise_ece),
            ("mce", metrics.mce),
            ("rmsce", metrics.rmsce),
        ]:
            expected[f"{conv}/{name}"] = fn(logits, labels, convention=conv, **kw)
        for name, fn in [
            ("nll", metrics.nll),
            ("brier", metrics.brier),
            ("accuracy", metrics.accuracy),
            ("error", metrics.error),
            ("smooth_ece", metrics.smooth_ece),
        ]:
            expected[f"{conv}/{name}"] = fn(logits, labels, **kw)
    assert set(expected) == set(ranks[0])
    for key, value in expected.items():
        # float32 column totals in classwise bins; float32 log p_max in the collection's NLL
        tol = 1e-7 if "classwise" in key or "nll" in key else 1e-10
        assert ranks[0][key] == pytest.approx(float(value), abs=tol), key
