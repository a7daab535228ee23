"""`make ui` in a browser: the MLflow server from auxcut.apps.ui shows the pipeline's runs and metrics."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from test_pipeline import STAGES

CHROMIUM = Path("/usr/bin/chromium")  # the system's browser: Playwright must never download one
METRIC = "predictors.stacked.accuracy"
# Set where a browser is expected (.ci/run, the GitHub workflow): there a missing browser fails the test instead of
# skipping it, so that the UI check cannot pass by not running.
REQUIRE_BROWSER = "AUXCUT_REQUIRE_BROWSER"


def require_browser(browser: Path = CHROMIUM) -> None:
    """Skip the calling test when the browser is missing, or fail it where AUXCUT_REQUIRE_BROWSER=1."""
    if browser.exists():
        return
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{browser} missing and {REQUIRE_BROWSER}=1: install it (apt-get install chromium; .ci/run does)")
    pytest.skip(f"{browser} missing (apt-get install chromium; .ci/run does)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_server(server: subprocess.Popen, log: Path, port: int, timeout: float = 60) -> str:
    """The URL auxcut.apps.ui printed, once the server behind it answers."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert server.poll() is None, f"server exited with {server.returncode}:\n{log.read_text()[-3000:]}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as answer:
                if answer.status == 200:
                    return re.search(r"MLflow UI: (\S+)", log.read_text()).group(1)
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"server did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """End the server's whole process group (mlflow's CLI and the uvicorn worker it started)."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    except ProcessLookupError:
        pass


def full_pipeline_run(tracking_uri: str) -> tuple[str, str, object]:
    """The experiment id, the parent run that holds all nine stage runs (the fixture's `dvc repro`;
    later tests add partial pipeline runs beside it) and its fairness run."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("auxcut").experiment_id
    stages = client.search_runs([experiment], "tags.`auxcut.kind` = 'stage' and attributes.status = 'FINISHED'")
    # A parent can hold a stage twice: a later `dvc repro` of the same commit and params joins its pipeline run.
    by_parent: dict[str, dict[str, object]] = {}
    for run in sorted(stages, key=lambda r: r.info.start_time):
        by_parent.setdefault(run.data.tags["mlflow.parentRunId"], {})[run.data.tags["auxcut.stage"]] = run
    parent = next(p for p, runs in by_parent.items() if set(runs) == set(STAGES))
    return experiment, client.get_run(parent).info.run_name, by_parent[parent]["fairness"]


def save_screenshot(page, path: Path) -> None:
    page.screenshot(path=path)
    if os.environ.get("AUXCUT_SCREENSHOTS"):
        folder = Path(os.environ["AUXCUT_SCREENSHOTS"])
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, folder / path.name)


def test_url_falls_back_to_the_home_page_until_the_experiment_exists(tmp_path):
    from auxcut.apps.ui import experiment_id, runs_url

    (tmp_path / "notes.db").write_text("not a database")
    for database, name in ((tmp_path / "missing.db", "auxcut"), (tmp_path / "notes.db", "auxcut")):
        assert experiment_id(database, name) is None
        assert runs_url("127.0.0.1", 5000, experiment_id(database, name)) == "http://127.0.0.1:5000/"
    assert not (tmp_path / "missing.db").exists()  # looking must not create a store


def test_a_missing_browser_skips_or_fails_where_one_is_required(tmp_path, monkeypatch):
    missing = tmp_path / "chromium"
    monkeypatch.delenv(REQUIRE_BROWSER, raising=False)
    with pytest.raises(pytest.skip.Exception, match="missing"):
        require_browser(missing)
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_BROWSER}=1"):
        require_browser(missing)
    missing.touch()
    require_browser(missing)  # there: the test goes on


def test_ui_shows_the_pipeline_runs_and_a_metric(pipeline, tmp_path):
    require_browser()
    repo, env, _ = pipeline
    experiment, parent_name, fairness = full_pipeline_run(env["MLFLOW_TRACKING_URI"])
    port, log = free_port(), tmp_path / "server.log"
    with log.open("w") as out:
        server = subprocess.Popen([sys.executable, "-m", "auxcut", "ui", "--port", str(port)], cwd=repo, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = wait_for_server(server, log, port)
        assert url == f"http://127.0.0.1:{port}/#/experiments/{experiment}/runs"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.set_default_timeout(30_000)
            expect.set_options(timeout=30_000)  # expect's own 5 s missed the runs table on a loaded 2-core machine
            page.goto(url)
            parent_row = page.locator(".ag-row", has_text=parent_name)
            expect(parent_row).to_be_visible()
            parent_row.locator("button").first.click()  # nested stage runs start folded under their parent
            for stage in STAGES:
                expect(page.get_by_role("link", name=stage, exact=True).first).to_be_visible()
            save_screenshot(page, tmp_path / "ui-runs.png")

            page.locator(f'a[href*="/runs/{fairness.info.run_id}"]').first.click()
            expect(page).to_have_url(re.compile(f"/runs/{fairness.info.run_id}$"))
            page.get_by_placeholder("Search metrics").fill(METRIC)
            row = page.get_by_role("row").filter(has=page.get_by_text(METRIC, exact=True))
            expect(row).to_be_visible()
            shown = float(row.inner_text().split()[-1])
            save_screenshot(page, tmp_path / "ui-fairness-run.png")
            browser.close()
    finally:
        stop(server)
    assert shown == pytest.approx(fairness.data.metrics[METRIC], abs=1e-9)
