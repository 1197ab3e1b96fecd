"""A bad study file is refused before anything runs, naming the file, the table and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from focalcal.training import plan_runs, reproduce
from focalcal.training.suites import get_suite, load_study

GOOD = """\
name = "mine"
gamma_grid = [2.0, 5.0]

[[datasets]]
key = "news"
dataset = "npz"
model = "mlp"
root = "news.npz"

[[losses]]
key = "ce"

[[losses]]
key = "dual_focal"
tune_gamma = true
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(text)
    return path


def test_the_good_study_loads(tmp_path: Path) -> None:
    suite = load_study(write(tmp_path, GOOD))
    assert suite.name == "mine" and suite.gamma_grid == (2.0, 5.0)
    assert [loss.key for loss in suite.losses] == ["ce", "dual_focal"]
    assert suite.datasets[0].roots == (str(tmp_path / "news.npz"),)
    assert get_suite(tmp_path / "study.toml") == suite


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('name = "mine"', 'name = "mine"\nsedes = 3', r"top-level table: unknown key 'sedes'"),
        ('model = "mlp"', 'model = "mlp"\nmodel_option = {}', r"\[\[datasets\]\] #1: unknown key 'model_option'"),
        ('key = "ce"', 'key = "ce"\nlable = "x"', r"\[\[losses\]\] #1: unknown key 'lable'"),
        ('name = "mine"', 'name = "mine"\nseeds = "3"', r"top-level table: seeds: expected an integer, got '3'"),
        ('name = "mine"', 'name = "mine"\ntune_gamma = 1', r"tune_gamma: expected true or false, got 1"),
        ('dataset = "npz"', 'dataset = "cifar1000"', r"#1: dataset: unknown dataset 'cifar1000'; expected one of"),
        ('model = "mlp"', 'model = "resnet1000"', r"#1: model: unknown model 'resnet1000'"),
        ('key = "ce"', 'key = "cee"', r"\[\[losses\]\] #1: loss: unknown loss 'cee'"),
        ('key = "ce"', 'key = "ce"\noptions = { gama = 2.0 }', r"#1: options: the loss 'ce' refused them"),
        ("[2.0, 5.0]", "[2.0, -1.0]", r"top-level table: gamma_grid: expected finite γ > 0, got -1"),
        ("[2.0, 5.0]", "[0.0, 5.0]", r"top-level table: gamma_grid: expected finite γ > 0, got 0"),
        ("[2.0, 5.0]", "[]", r"gamma_grid: expected at least one γ"),
        ('root = "news.npz"', 'root = "news.npz"\noverrides = { epoch = 3 }', r"#1: overrides: unknown recipe keys \['epoch'\]"),
        ('key = "ce"', 'key = "dual_focal"', r"\[\[losses\]\]: keys must be unique"),
    ],
)  # fmt: skip
def test_each_mistake_is_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ValueError, match=message) as err:
        load_study(path)
    assert str(path) in str(err.value)


def test_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace('model = "mlp"', "model = mlp"))
    with pytest.raises(ValueError, match=r"invalid TOML: .*line 7") as err:
        load_study(path)
    assert str(path) in str(err.value)


def test_missing_tables_and_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"top-level table: missing 'datasets', 'losses'"):
        load_study(write(tmp_path, 'name = "x"\n'))
    with pytest.raises(ValueError, match=r"losses: unknown loss set 'papers'"):
        load_study(write(tmp_path, 'losses = "papers"\n' + GOOD.split("[[losses]]")[0]))
    with pytest.raises(FileNotFoundError, match="study: no file at"):
        get_suite(tmp_path / "absent.toml")


def test_nothing_runs_before_the_data_is_found(tmp_path: Path) -> None:
    # the file is valid, its data is absent: refused before any folder is made or run trained
    path = write(tmp_path, GOOD)
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError, match=r"news: data not found"):
        reproduce(path, out, echo=lambda _: None)
    assert not out.exists()
    with pytest.raises(FileNotFoundError, match=r"news: data not found"):
        plan_runs(path, out)


def test_loss_sets_and_tables_combine_in_order(tmp_path: Path) -> None:
    head = GOOD.split("[[losses]]", 1)[0]
    # a list of set names and tables: the sets' columns first, in order, then the tables
    text = 'losses = ["recent", {key = "focal", gamma = 2.0}]\n' + head
    suite = load_study(write(tmp_path, text))
    assert [loss.key for loss in suite.losses] == ["mbls", "mdca", "acls", "bsce_gra", "focal"]
    # MbLS's margin and MDCA's β are searched on validation, not fixed
    assert suite.losses[0].options == {"alpha": 0.1, "convention": "official"}
    assert (suite.losses[0].tune_option, suite.losses[0].tune_grid) == ("margin", (5.0, 10.0, 15.0))
    assert suite.losses[1].options == {}
    assert (suite.losses[1].tune_option, suite.losses[1].tune_grid) == ("beta", (1.0, 5.0, 10.0))
    assert suite.losses[-1].gamma == 2.0
    with pytest.raises(ValueError, match=r"losses: unknown loss set 'recnt'; expected one of"):
        load_study(write(tmp_path, 'losses = ["paper", "recnt"]\n' + head))
    with pytest.raises(ValueError, match=r"\[\[losses\]\]: keys must be unique, got \['mbls'"):
        load_study(write(tmp_path, 'losses = ["recent", "recent"]\n' + head))
    with pytest.raises(ValueError, match=r"\[\[losses\]\] #2: missing 'key'"):
        load_study(write(tmp_path, 'losses = ["recent", {gamma = 2.0}]\n' + head))
    with pytest.raises(ValueError, match=r"losses: expected a loss set name, or a list"):
        load_study(write(tmp_path, "losses = []\n" + head))


TUNED = (
    GOOD
    + """
[[losses]]
key = "mbls"
options = { alpha = 0.1 }
tune = { option = "margin", grid = [5.0, 10.0] }
"""
)


def test_a_tuned_option_loads_with_its_grid_in_order(tmp_path: Path) -> None:
    text = TUNED.replace("[5.0, 10.0]", "[10, 2.5, 5]")  # integers allowed, order kept
    suite = load_study(write(tmp_path, text))
    mbls = suite.losses[-1]
    assert (mbls.tune_option, mbls.tune_grid, mbls.tune_gamma) == (
        "margin",
        (10.0, 2.5, 5.0),
        False,
    )
    assert mbls.options == {"alpha": 0.1}
    dfl = suite.losses[1]  # tune_gamma = true is γ on the suite's grid
    assert (dfl.tune_option, dfl.tune_grid, dfl.grid(suite.gamma_grid)) == (
        "gamma",
        None,
        (2.0, 5.0),
    )
    (tmp_path / "news.npz").touch()  # planning only checks that the data exists
    specs = suite.plan(tmp_path, tuned={("news", "mbls"): {"margin": 2.5}})
    cfg = next(s.train_config() for s in specs if s.loss_key == "mbls")
    assert cfg.loss_options == {"alpha": 0.1, "margin": 2.5} and cfg.gamma is None


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('tune = {', 'tune_gamma = true\ntune = {', r"#3: tune and tune_gamma: expected at most one"),
        ('tune = {', 'tune_gamma = false\ntune = {', r"#3: tune and tune_gamma: expected at most one"),
        ('grid = [5.0, 10.0] }', 'grid = [5.0, 10.0], grids = [1.0] }', r"#3: tune: unknown key 'grids'; expected one of \['grid', 'option'\]"),
        ('option = "margin", ', "", r"#3: tune: missing 'option'"),
        ('option = "margin"', "option = 3", r"#3: tune: option: expected a string, got 3"),
        (', grid = [5.0, 10.0]', "", r"#3: tune: missing 'grid'"),
        ("[5.0, 10.0]", "[]", r"#3: tune: grid: expected at least one value, got none"),
        ("[5.0, 10.0]", '[5.0, "ten"]', r"#3: tune: grid: expected a list of numbers"),
        ("[5.0, 10.0]", "[5.0, true]", r"#3: tune: grid: expected a list of numbers"),
        ("[5.0, 10.0]", "[5.0, inf]", r"#3: tune: grid: expected finite numbers, got inf"),
        ("[5.0, 10.0]", "[nan]", r"#3: tune: grid: expected finite numbers, got nan"),
        ("tune = { option", "tune = 3\nx = { option", r"#3: tune: expected a table, got 3"),
        ("{ alpha = 0.1 }", "{ alpha = 0.1, margin = 10.0 }", r"#3: tune: option: 'margin' is tuned, so options cannot also fix it"),
        ("[5.0, 10.0]", "[5.0, -1.0]", r"#3: tune: grid: the loss 'mbls' refused margin=-1: .*margin"),
        ('"margin"', '"margn"', r"#3: tune: grid: the loss 'mbls' refused margn=5: "),
        ('key = "mbls"', 'key = "mbls"\ngamma = 2.0', r"#3: options: the loss 'mbls' refused them"),
    ],
)  # fmt: skip
def test_each_tune_mistake_is_named(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in TUNED
    path = write(tmp_path, TUNED.replace(old, new, 1))
    with pytest.raises(ValueError, match=message) as err:
        load_study(path)
    assert str(path) in str(err.value) and "[[losses]] #3" in str(err.value)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('key = "focal"\ngamma = 2.0\ntune = { option = "gamma", grid = [1.0] }', r"#3: tune: option: 'gamma' is tuned, so gamma cannot also fix it"),
        ('key = "focal"\noptions = { gamma = 2.0 }\ntune = { option = "gamma", grid = [1.0] }', r"#3: tune: option: 'gamma' is tuned, so options cannot also fix it"),
        ('key = "focal"\ntune = { option = "gamma", grid = [0.0, 1.0] }', r"#3: tune: grid: expected finite γ > 0, got 0"),
    ],
)  # fmt: skip
def test_a_tuned_gamma_keeps_the_gamma_rules(tmp_path: Path, table: str, message: str) -> None:
    path = write(tmp_path, GOOD + "\n[[losses]]\n" + table + "\n")
    with pytest.raises(ValueError, match=message) as err:
        load_study(path)
    assert str(path) in str(err.value)
    good = write(
        tmp_path,
        GOOD + '\n[[losses]]\nkey = "focal"\ntune = { option = "gamma", grid = [1.0, 3.0] }\n',
    )
    focal = load_study(good).losses[-1]
    assert focal.tune_gamma and focal.grid((2.0, 5.0)) == (1.0, 3.0)  # its own grid wins
