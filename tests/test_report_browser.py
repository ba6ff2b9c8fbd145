"""The report page in a real browser: headless Chromium driven by playwright (``pytest -m browser``).

Skipped, with the reason, where playwright or a Chromium binary is missing. Each test saves a
screenshot to ``outputs/screenshots/<name>.png`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers import REPO, run_module

pytestmark = pytest.mark.browser

SCREENSHOTS = REPO / "outputs" / "screenshots"
# A run of the preset and of the same grid under Nesterov, for the comparison: Nesterov refuses momentum 0,
# so its 7 configs with momentum 0 fail (the page lists them) and the sweep exits with 1.
GRID = ["+experiment=lr_momentum_grid", "hydra/launcher=batched"]
NESTEROV = [*GRID, "optimizer=nesterov", "hydra.callbacks.sweep_end.figures=false"]


def chromium() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[browser]')")
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("no chromium or chromium-browser on PATH (Debian: apt-get install chromium)")
    return found


@pytest.fixture(scope="module")
def browser():
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("browser")
    made = {}
    for name, args in (("grid", GRID), ("nesterov", NESTEROV)):
        out = run_module("runner", *args, f"hydra.sweep.dir={tmp / name}", cwd=tmp)
        assert out.returncode == (0 if name == "grid" else 1), out.stderr
        made[name] = tmp / name
    out = run_module("runner.report", str(made["grid"]), str(made["nesterov"]), "-o", str(tmp / "both.html"), cwd=tmp)
    assert out.returncode == 0, out.stderr
    made["both"] = tmp / "both.html"
    return made


def open_page(browser, path: Path):
    """The page, loaded, with every request it made and every console error or page error."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.resolve().as_uri())
    page.wait_for_selector("#runs_wrapper", timeout=30_000)  # DataTables has built the table
    page.wait_for_function(
        "document.querySelector('.js-plotly-plot') && document.querySelector('.js-plotly-plot').data"
    )
    return page, requests, errors


def columns(page) -> list[str]:
    """The table's column names, as its (scrolling) header shows them."""
    return page.eval_on_selector_all(
        ".dt-scroll-head thead th .dt-column-title", "spans => spans.map(s => s.textContent.trim())"
    )


def shown(page, column: str) -> list[str]:
    """The values of ``column`` in the rows the table shows, in order."""
    index = columns(page).index(column)
    return page.eval_on_selector_all(
        "#runs tbody tr", f"rows => rows.map(r => r.cells.length > {index} ? r.cells[{index}].textContent : '')"
    )


def numbers(cells: list[str]) -> list[float]:
    """The finite numbers among table cells (a failed run's is NaN, a diverged run's inf)."""
    values = [float(v) for v in cells if v.strip()]
    return [v for v in values if math.isfinite(v)]


def check_page(browser, path: Path, runs: pd.DataFrame, name: str, curves: int) -> None:
    page, requests, errors = open_page(browser, path)
    try:
        assert errors == []
        assert {url.split(":", 1)[0] for url in requests} <= {"file", "data"}, requests
        # One row per run, all of them, once the page length is "All".
        page.select_option(".dt-length select", "-1")
        assert sorted(shown(page, "run_id")) == sorted(runs["run_id"])
        assert page.inner_text(".dt-info").startswith(f"Showing 1 to {len(runs)} of {len(runs)} entries")
        # Sorting: a click on a heading orders the rows by it, a second click the other way.
        order = page.locator(".dt-scroll-head thead th").nth(columns(page).index("final")).locator(".dt-column-order")
        order.click()
        finals = numbers(shown(page, "final"))
        assert finals == sorted(finals) and len(finals) > 1
        order.click()
        assert numbers(shown(page, "final")) == sorted(finals, reverse=True)
        # Filtering: the search box keeps the diverged runs alone; a column's own box keeps its value.
        diverged = runs.loc[runs["status"] == "diverged", "run_id"]
        assert 0 < len(diverged) < len(runs)
        page.fill(".dt-search input", "diverged")
        page.wait_for_timeout(300)
        assert sorted(shown(page, "run_id")) == sorted(diverged)
        page.fill(".dt-search input", "")
        best = runs.sort_values("iterations").iloc[0]["run_id"]
        box = page.locator(".dt-scroll-foot input[placeholder=run_id]")
        box.press_sequentially(best)  # DataTables' column filter listens to keys
        page.wait_for_timeout(300)
        assert shown(page, "run_id") == [best]
        box.fill("")
        box.press("Backspace")
        # The plot holds one curve per config (the runs here have no repetitions, so no bands).
        assert page.evaluate("document.querySelector('.js-plotly-plot').data.length") == curves
        assert page.evaluate("document.querySelector('.js-plotly-plot').data.every(t => t.meta == 'curve')")
        page.select_option(".dt-length select", "25")  # a screenshot of a page, not of every row
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 0
    finally:
        page.close()


def test_the_lr_momentum_grid_page(browser, sweeps):
    runs = pd.read_parquet(sweeps["grid"] / "runs.parquet")
    assert len(runs) == 28
    check_page(browser, sweeps["grid"] / "report.html", runs, "lr_momentum_grid", curves=runs["config_id"].nunique())


def test_a_comparison_of_two_sweeps(browser, sweeps):
    runs = pd.concat([pd.read_parquet(sweeps[name] / "runs.parquet") for name in ("grid", "nesterov")])
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 7
    check_page(browser, sweeps["both"], runs, "compare_two_sweeps", curves=len(runs) - len(failed))
    page, _, _ = open_page(browser, sweeps["both"])
    try:
        # The failures, each with its error.
        assert page.inner_text("#failures").startswith("Failures (7)")
        assert page.locator(".failure").count() == 7
        assert "expected a number in (0, 1)" in page.inner_text(".failure >> nth=0")
        # The curves are coloured by sweep: two colours, one per sweep, each named in its curves' legend entries.
        colors = page.evaluate("[...new Set(document.querySelector('.js-plotly-plot').data.map(t => t.line.color))]")
        assert len(colors) == 2
        names = page.evaluate("document.querySelector('.js-plotly-plot').data.map(t => t.name.split(':')[0])")
        assert sorted(set(names)) == ["grid", "nesterov"]
        # Clicking a legend entry hides its curve.
        toggle = page.locator(".legend .traces .legendtoggle").first
        toggle.scroll_into_view_if_needed()
        toggle.click()
        # plotly waits out its double-click delay (300 ms) before it hides the curve
        page.wait_for_function("document.querySelector('.js-plotly-plot').data[0].visible === 'legendonly'")
        visible = page.evaluate("document.querySelector('.js-plotly-plot').data.map(t => t.visible !== 'legendonly')")
        assert visible.count(False) == 1
    finally:
        page.close()
