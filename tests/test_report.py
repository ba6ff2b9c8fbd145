"""The report page (runner.report) and the best configs (runner.best), from real sweeps run from the shell.

The expectations are computed here from ``runs.parquet`` with pandas, never read back from the
module under test: the page must hold every run, and its best config must be pandas' own.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from runner import app
from runner.best import best_configs
from tests.helpers import run_module

# Least squares: data (and so f*) from the seed, three seeds a config; lr = 0.02 is past 2/L and diverges.
SEEDED = [
    "-m",
    "hydra/launcher=batched",
    "objective=least_squares",
    "optimizer=momentum",
    "lr=0.001,0.003,0.02",
    "optimizer.momentum=0,0.5",
    "seed=0,1,2",
    "max_iter=300",
    "hydra.callbacks.sweep_end.figures=false",
]
# Nesterov on the same problem, for a comparison of two sweeps.
OTHER = [
    "-m",
    "hydra/launcher=batched",
    "objective=least_squares",
    "optimizer=nesterov",
    "lr=0.001,0.003",
    "optimizer.momentum=0.5",
    "seed=0,1",
    "max_iter=300",
    "hydra.callbacks.sweep_end.figures=false",
]


def sweep(tmp: Path, name: str, args: list[str]):
    out = run_module("runner", *args, f"hydra.sweep.dir={tmp / name}", cwd=tmp)
    assert out.returncode == 0, out.stderr
    return tmp / name, out


@pytest.fixture(scope="module")
def seeded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    return sweep(tmp, "seeded", SEEDED)


def expected_ranking(runs: pd.DataFrame) -> pd.DataFrame:
    """The rule, in plain pandas: f - f* (f where f* is unknown), +inf for runs without a result,
    median over the repetitions of a config, ranked by that, then by median iterations."""
    final = np.where(runs["f_star"].notna(), runs["f"] - runs["f_star"], runs["f"])
    bad = runs["status"].isin(["failed", "diverged", "interrupted"]) | ~np.isfinite(final)
    scored = runs.assign(final=np.where(bad, np.inf, final), its=np.where(bad, np.inf, runs["iterations"]))
    medians = scored.groupby("config_id")[["final", "its"]].median()
    return medians.sort_values(["final", "its"], kind="stable")


def section(page: str, start: str, end: str) -> str:
    return page[page.index(start) : page.index(end, page.index(start))]


def test_the_sweep_writes_its_page_and_says_who_won(seeded):
    folder, out = seeded
    page = (folder / "report.html").read_text(encoding="utf-8")
    runs = pd.read_parquet(folder / "runs.parquet")
    assert len(runs) == 18
    # Every run is a row of the runs table.
    table = section(page, '<table id="runs"', '<h2 id="curves"')
    assert all(rid in table for rid in runs["run_id"])
    # Runs by status, as pandas counts them.
    for status, n in runs["status"].value_counts().items():
        assert f"{n} {status}" in page
    # The best config is pandas' own, and so is the page's whole ranking.
    ranking = expected_ranking(runs)
    page_order = re.findall(r'<tr data-config="([0-9a-f]+)" data-rank="(\d+)">', page)
    assert [c for c, _ in page_order] == list(ranking.index[: len(page_order)])
    assert page_order[0] == (ranking.index[0], "1")
    # The diverged configs (lr = 0.02) rank last, and the end of the sweep prints the same winner.
    diverged = set(runs.loc[runs["status"] == "diverged", "config_id"])
    assert diverged and set(ranking.index[-len(diverged) :]) == diverged
    lines = out.stdout.splitlines()
    count = next(i for i, line in enumerate(lines) if line.startswith("sweep: 18 runs"))
    assert lines[count + 1].startswith("best: least_squares, momentum")
    best = runs[runs["config_id"] == ranking.index[0]].iloc[0]
    assert lines[count + 2].startswith(f"  1. lr={best['lr']:g}, optimizer.momentum={best['optimizer.momentum']:g}: ")
    assert f"{ranking['final'].iloc[0]:.4g} after {int(ranking['its'].iloc[0])} iterations" in lines[count + 2]
    assert lines[-1] == f"report: {folder / 'report.html'}"
    # The curves: one per config, each with its seed band (the bands are 2 traces each), and the cap is not reached.
    curves = section(page, '<h2 id="curves"', '<h2 id="versions"')
    assert curves.count('"meta":"curve"') == runs["config_id"].nunique()
    assert curves.count('"meta":"band"') == 2 * runs["config_id"].nunique()
    assert 'data-role="curve-cap"' not in page


def test_best_configs_takes_the_median_over_seeds_and_ranks_failures_last():
    runs = pd.DataFrame(
        {
            "run_id": list("abcdefg"),
            "config_id": ["x", "x", "x", "y", "y", "z", "w"],
            "objective": "q",
            "optimizer": "gd",
            "lr": [0.1, 0.1, 0.1, 0.2, 0.2, 0.3, 0.4],
            "seed": [0, 1, 2, 0, 1, 0, 0],
            "status": ["converged", "diverged", "converged", "converged", "converged", "failed", "max_iter"],
            "f": [1.0, np.inf, 3.0, 2.0, 2.0, np.nan, 5.0],
            "f_star": [0.0] * 7,
            "iterations": [10, 5, 30, 40, 40, 0, 100],
        }
    )
    best = best_configs(runs)
    # x: median of (1, inf, 3) = 3; y: 2; w: 5; z failed: last.
    assert best["config_id"].tolist() == ["y", "x", "w", "z"]
    assert best["final"].tolist() == [2.0, 3.0, 5.0, np.inf]
    assert best["no_result"].tolist() == [0, 1, 0, 1]
    assert best["setting"].tolist() == ["lr=0.2", "lr=0.1", "lr=0.4", "lr=0.3"]
    # Ties on the final value are broken by median iterations (x: 10 of 10, 5, 30); f where f* is unknown.
    tie = runs.assign(f=[2.0] * 7, status="converged", f_star=np.nan)
    assert best_configs(tie)["config_id"].tolist() == ["z", "x", "y", "w"]
    assert set(best_configs(tie)["measure"]) == {"f"}


def test_a_comparison_page_holds_both_sweeps(seeded, tmp_path):
    other, _ = sweep(tmp_path, "other", OTHER)
    out = run_module("runner.report", str(seeded[0]), str(other), "-o", "both.html", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "both.html"
    page = (tmp_path / "both.html").read_text(encoding="utf-8")
    runs = {d: pd.read_parquet(d / "runs.parquet") for d in (seeded[0], other)}
    table = section(page, '<table id="runs"', '<h2 id="curves"')
    assert all(rid in table for r in runs.values() for rid in r["run_id"])
    assert '"sweep"' in table or ">sweep<" in table
    # Each sweep's best, ranked in its own group; curves named (and coloured) by sweep.
    for folder, r in runs.items():
        ranking = expected_ranking(r)
        assert f'<tr data-config="{ranking.index[0]}" data-rank="1">' in page
        assert page.count(f'"name":"{folder.name}: ') == r["config_id"].nunique()  # sweeps named by their folders
    colors = set(re.findall(r'"meta":"curve","legendgroup":"[^"]*","line":\{"color":"(#[0-9A-Fa-f]{6})"', page))
    assert len(colors) == 2


def test_report_false_skips_the_page(tmp_path):
    folder, out = sweep(tmp_path, "quiet", [*OTHER, "hydra.callbacks.sweep_end.report=false"])
    assert (folder / "runs.parquet").is_file()
    assert not (folder / "report.html").exists()
    assert "report:" not in out.stdout
    assert "best: least_squares, nesterov" in out.stdout  # the winners are still printed
    single = run_module("runner", "max_iter=5", f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert single.returncode == 0 and (tmp_path / "one" / "report.html").is_file()
    assert "report:" not in single.stdout  # a run ends with its one line, which names the folder holding the page
    off = ["max_iter=5", f"hydra.run.dir={tmp_path / 'two'}", "hydra.callbacks.sweep_end.report=false"]
    single = run_module("runner", *off, cwd=tmp_path)
    assert single.returncode == 0 and not (tmp_path / "two" / "report.html").exists()


def test_a_report_that_fails_costs_nothing_else(seeded, tmp_path, monkeypatch, capsys):
    import shutil

    import runner.report

    folder = tmp_path / "copy"
    shutil.copytree(seeded[0], folder)
    (folder / "runs.parquet").unlink()
    (folder / "report.html").unlink()

    def broken(*args, **kwargs):
        raise RuntimeError("no page today")

    monkeypatch.setattr(runner.report, "write_report", broken)
    counts = app.finish_sweep(folder, figures=False)
    assert sum(counts.values()) == 18 and (folder / "runs.parquet").is_file()
    assert not (folder / "report.html").exists()
    assert "report: not written (RuntimeError: no page today)" in capsys.readouterr().out.splitlines()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda tmp: [str(tmp / "nowhere")], "error: DIR={tmp}/nowhere: expected an existing sweep or run folder"),
        (lambda tmp: [str((tmp / "empty").mkdir() or tmp / "empty")], "error: {tmp}/empty: no runs there: expected"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, make, message):
    out = run_module("runner.report", *make(tmp_path), cwd=tmp_path)
    assert out.returncode == 2
    assert out.stdout == ""
    assert len(out.stderr.splitlines()) == 1
    assert out.stderr.startswith(message.format(tmp=tmp_path))
    assert not list(tmp_path.rglob("*.html"))


def test_a_thousand_run_page_stays_under_10_mb(tmp_path):
    """1,000 configs, batched, with their figures: the page caps its curves and stays small."""
    lrs = ",".join(f"{0.25 * i:g}" for i in range(1, 41))
    momenta = ",".join(f"{0.04 * i:.2f}" for i in range(25))
    folder, _ = sweep(
        tmp_path,
        "big",
        [
            "-m",
            "hydra/launcher=batched",
            "optimizer=momentum",
            f"lr={lrs}",
            f"optimizer.momentum={momenta}",
            "max_iter=300",
        ],
    )
    page = folder / "report.html"
    size = page.stat().st_size
    assert size < 10 * 2**20, f"{size / 2**20:.1f} MB"
    text = page.read_text(encoding="utf-8")
    runs = pd.read_parquet(folder / "runs.parquet")
    assert len(runs) == 1000
    table = section(text, '<table id="runs"', '<h2 id="curves"')
    assert all(rid in table for rid in runs["run_id"])
    assert text.count('"meta":"curve"') == 60
    assert "showing the 60 best of 1000 configs" in text
    figures = section(text, '<h2 id="figures">', '<h2 id="versions"')
    assert figures.count('<img alt="') == len(list((folder / "figures").glob("*.png"))) > 0


def test_a_failure_is_listed_with_its_error_and_folded_traceback(compose_cfg, tmp_path):
    from runner.report import write_report
    from runner.run import run

    cfg = compose_cfg("max_iter=20")
    run(cfg, tmp_path / "runs" / "fine")
    run({**cfg, "objective": {"_target_": "tests.test_cli.exploding_objective"}}, tmp_path / "runs" / "crash")
    page = write_report(tmp_path / "runs").read_text(encoding="utf-8")
    failures = section(page, '<h2 id="failures">', '<h2 id="versions"')
    assert "Failures (1)" in failures
    assert "<code>crash</code>: RuntimeError: boom" in failures
    folded = re.search(r"<details><summary>traceback</summary><pre>(.*?)</pre></details>", failures, re.S)
    assert folded and "exploding_objective" in folded.group(1) and "Traceback" in folded.group(1)


def random_runs(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """``n`` runs of two objectives and two optimizers, three seeds a config, some without a result."""
    config = rng.integers(0, n // 3, n)
    return pd.DataFrame(
        {
            "run_id": [f"r{i:04d}" for i in range(n)],
            "config_id": [f"c{c:04d}" for c in config],
            "objective": np.where(config % 2 == 0, "quadratic", "rosenbrock"),
            "optimizer": np.where(config % 3 == 0, "gd", "momentum"),
            "lr": 0.01 * (config % 17 + 1),
            "seed": rng.integers(0, 3, n),
            "status": rng.choice(["converged", "max_iter", "diverged", "failed"], n, p=[0.6, 0.2, 0.1, 0.1]),
            "f": np.where(rng.random(n) < 0.05, np.nan, rng.choice([0.0, 1e-3, 0.5, 2.0], n)),
            "f_star": np.where(config % 5 == 0, np.nan, 0.0),
            "iterations": np.where(rng.random(n) < 0.05, np.nan, rng.integers(1, 50, n).astype(float)),
        }
    )


def test_best_configs_of_many_groups_is_the_rule_in_plain_pandas():
    """Several groups, repetitions, ties, nulls: every group's ranking is pandas' own groupby and sort."""
    runs = random_runs(np.random.default_rng(7), 1200)
    best = best_configs(runs)
    assert len(best) == runs.groupby(["objective", "optimizer", "config_id"]).ngroups
    for (objective, optimizer), group in runs.groupby(["objective", "optimizer"]):
        ranking = expected_ranking(group).reset_index()
        ranking = ranking.sort_values(["final", "its", "config_id"], kind="stable")  # ties: by config_id
        mine = best[(best["objective"] == objective) & (best["optimizer"] == optimizer)]
        assert mine["config_id"].tolist() == ranking["config_id"].tolist()
        assert mine["rank"].tolist() == list(range(1, len(ranking) + 1))
        np.testing.assert_array_equal(mine["final"].to_numpy(), ranking["final"].to_numpy())
        np.testing.assert_array_equal(mine["iterations"].to_numpy(), ranking["its"].to_numpy())
        counts = group.groupby("config_id").size()
        assert mine["runs"].tolist() == counts[mine["config_id"]].tolist()
    # The terminal's table is that ranking, given or computed.
    from runner.best import best_table

    assert best_table(runs, 3) == best_table(top=3, best=best)
    assert best_table(best=best).count("\n  1. ") == runs.groupby(["objective", "optimizer"]).ngroups


def test_floats_are_shown_as_pandas_prints_them():
    """The runs table's float cells: pandas' own formatter (fixed, common trailing zeros cut, or scientific)."""
    from pandas.io.formats.format import format_array

    from runner.report import _float_texts

    columns = [
        [0.05, 0.1, 2.0, 1.5],
        [0.0, 0.04, 0.96],
        [8.065583796586904e-06, 2.1912802922805882e-32, 0.0, np.nan],
        [1.0, np.inf, 2.5, np.nan],
        [2.708244e154, 5.1e-10, -3.0],
        [1234567.0, 2.5],
        [0.20971274199837353, 1001.0],
        [-0.0, 1e-9, 7.0],
        [np.nan, np.nan],
    ]
    for values in columns:
        values = np.array(values)
        expected = [t.strip() for t in format_array(values, None, justify="all", leading_space=False)]
        assert _float_texts(values) == expected, values


def test_what_the_sweep_end_holds_is_not_read_again(seeded, tmp_path, monkeypatch):
    """write_report(runs=, best=) writes the page write_report(folder) writes, without reading the runs."""
    import shutil

    import runner.report
    from runner.store import read_table

    folder = tmp_path / "copy"
    shutil.copytree(seeded[0], folder)
    alone = runner.report.write_report(folder, folder / "alone.html").read_text(encoding="utf-8")
    runs = read_table(folder / "runs.parquet")  # what write_tables hands the sweep's end: a pyarrow table

    def no_reading(*args, **kwargs):
        raise AssertionError("the runs were read again")

    best = best_configs(runs.to_pandas())
    monkeypatch.setattr(runner.report, "load_runs", no_reading)
    monkeypatch.setattr(runner.report, "best_configs", no_reading)
    given = runner.report.write_report(folder, folder / "given.html", runs=runs, best=best).read_text(encoding="utf-8")
    assert given == alone
