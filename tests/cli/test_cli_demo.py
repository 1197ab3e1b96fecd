"""``focalcal demo`` on the packaged 20 Newsgroups features: the CI run of the real demo."""

from __future__ import annotations

import json

from focalcal.cli import main


def test_demo_dfl_is_better_calibrated_than_cross_entropy(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {row["loss"]: row for row in json.loads((out / "compare.json").read_text())["rows"]}
    assert list(rows) == ["ce", "flsd53", "dual_focal"]
    ece = {loss: row["test"]["pre"]["ece"]["value"] for loss, row in rows.items()}
    # The papers' claim, on real data: DFL (and FLSD-53) are better calibrated than CE before
    # temperature scaling, significantly so by the paired bootstrap.
    assert ece["dual_focal"] < ece["ce"]
    assert ece["flsd53"] < ece["ce"]
    assert rows["dual_focal"]["p_vs_baseline"]["pre"] < 0.05
    assert rows["dual_focal"]["gamma"] == 5.0
    # Temperature scaling does not change the error; every model is a real classifier.
    for row in rows.values():
        test = row["test"]
        assert test["pre"]["error"]["value"] == test["post"]["error"]["value"] < 0.35
    table = (out / "compare.md").read_text()
    assert table.strip() in printed and "dual_focal (γ=5)" in table
    for loss in rows:
        for name in ("report.md", "metrics.json", "reliability_pre.png", "reliability_post.png"):
            assert (out / loss / name).is_file(), (loss, name)
    assert (out / "reliability_overlay_post.png").is_file()
    # A second call reuses the finished runs instead of training again.
    stamp = (out / "ce" / "status.json").stat().st_mtime_ns
    assert main(["demo", "--out", str(out), "--n-bootstrap", "50"]) == 0
    assert "reusing the finished run" in capsys.readouterr().out
    assert (out / "ce" / "status.json").stat().st_mtime_ns == stamp
