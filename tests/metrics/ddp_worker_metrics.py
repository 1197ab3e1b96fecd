"""Worker for test_metrics_distributed.py: one process of a 2-process gloo group.

Usage: python ddp_worker_metrics.py RANK WORLD_SIZE INIT_FILE OUT_JSON
Each rank updates the streaming metrics on its own (uneven) share of a fixed data set, then
``compute()`` syncs across processes; the values are written to OUT_JSON.
"""

from __future__ import annotations

import json
import sys

import torch
import torch.distributed as dist

from focalcal import metrics


def shared_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(123)
    logits = torch.randn(513, 7, generator=g) * 2.5
    labels = torch.randint(0, 6, (513,), generator=g)  # class 6 never a label
    return logits, labels


SPLIT = 300  # rank 0: rows [0, 300), rank 1: rows [300, 513)


def main() -> None:
    rank, world, init_file, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4]
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    logits, labels = shared_data()
    mine = slice(0, SPLIT) if rank == 0 else slice(SPLIT, None)
    x, y = logits[mine], labels[mine]
    streams = {
        "default": metrics.CalibrationMetrics(from_logits=True),
        "official": metrics.CalibrationMetrics(
            from_logits=True, convention="official", num_classes=7
        ),
        "ece": metrics.ECE(from_logits=True),
        "adaece": metrics.AdaECE(from_logits=True),
        "classwise_official": metrics.ClasswiseECE(from_logits=True, convention="official"),
    }
    half = x.shape[0] // 2
    for m in streams.values():
        m.update(x[:half], y[:half])
        m.update(x[half:], y[half:])
    result: dict[str, float] = {}
    for name, m in streams.items():
        value = m.compute()
        if isinstance(value, dict):
            result.update({f"{name}/{k}": float(v) for k, v in value.items()})
        else:
            result[name] = float(value)
    with open(out, "w") as fh:
        json.dump(result, fh)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
