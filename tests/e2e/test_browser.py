"""End to end in a real browser (Playwright driving Debian's Chromium; never a downloaded browser).

The fixture starts ``streamlit run app.py`` on a free localhost port with a fresh workspace and a
small demo. The test walks the whole loop: the demo loads, a length scoring job runs, Organize shows
folding (and the stream's make-up by kind), a two-run comparison of a tiny model launches and its live
chart gains points, Compare shows the runs and their loss by kind. Screenshots of every page go to
``test-artifacts/`` (repo root, gitignored).

Skipped when Chromium is not installed, unless ``DELT_REQUIRE_BROWSER=1`` (then it fails).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.e2e
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHART_POINTS_JS = """(prefix) => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')];
  const title = p => ((p.layout && p.layout.title && p.layout.title.text) || '').replace(/<[^>]*>/g, '');
  const el = plots.find(p => title(p).startsWith(prefix));
  if (!el || !el.calcdata) return -1;
  return el.calcdata.reduce((n, trace) => n + trace.length, 0);  // points plotly drew (data may be binary)
}"""


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("DELT_REQUIRE_BROWSER") == "1":
            pytest.fail("DELT_REQUIRE_BROWSER=1 but no chromium on PATH; install it with `apt-get install chromium`")
        pytest.skip("chromium is not installed (apt-get install chromium); set DELT_REQUIRE_BROWSER=1 to fail instead")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"streamlit exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"streamlit did not answer on {url} within {timeout:.0f} s")


def stop_jobs(ws) -> None:
    """Cancel every unfinished scoring job and run of the workspace (SIGTERM to its process)."""
    from delt_engine.jobs.protocol import FINAL_STATES, read_status, request_cancel

    for job in [*ws.glob("scores/*"), *ws.glob("runs/*")]:
        if job.is_dir() and read_status(job).get("state") not in FINAL_STATES:
            request_cancel(job)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """A running app on a free port, with its own workspace; stopped (process group) afterwards."""
    port = free_port()
    ws = tmp_path_factory.mktemp("e2e-ws")
    env = {**os.environ, "DELT_WORKSPACE": str(ws), "DELT_DEMO_DOCS": "120", "PYTHONUNBUFFERED": "1"}
    env.pop("DELT_SYNC_JOBS", None)  # real background jobs here
    log = open(ws / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        yield url
    finally:
        stop_jobs(ws)  # jobs run in their own sessions: stopping the server alone would orphan them
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(ws / "streamlit.log", ARTIFACTS / "streamlit.log")  # for a failing run


@pytest.fixture(scope="module")
def page(app_url):
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1440, "height": 1000})
        pg = context.new_page()
        pg.set_default_timeout(30_000)
        yield pg
        context.close()
        browser.close()


def settle(page, timeout_ms: int = 30_000) -> None:
    """Wait until no script run is in progress (no stale elements of a half-finished rerun on screen)."""
    page.locator("[data-testid='stApp'][data-test-script-state='notRunning']").wait_for(timeout=timeout_ms)
    page.wait_for_timeout(600)  # let plotly finish its transition


def shot(page, name: str, max_height: int = 3200) -> None:
    """Screenshot of the whole page: Streamlit scrolls inside its main block, so the viewport is
    stretched to the content height for the shot, then restored."""
    ARTIFACTS.mkdir(exist_ok=True)
    settle(page)
    size = page.viewport_size
    height = page.evaluate("() => (document.querySelector('[data-testid=\"stMain\"]') || document.body).scrollHeight")
    page.set_viewport_size({"width": size["width"], "height": max(size["height"], min(int(height), max_height))})
    page.wait_for_timeout(400)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
    page.set_viewport_size(size)


def goto(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title, exact=True).wait_for()


def chart_points(page, title_prefix: str) -> int:
    return page.evaluate(CHART_POINTS_JS, title_prefix)


def test_full_loop_in_browser(page, app_url):
    try:
        full_loop(page, app_url)
    except Exception:
        shot(page, "failure")  # what the browser showed when the step failed
        raise


def full_loop(page, app_url) -> None:
    from playwright.sync_api import expect

    start = last = time.monotonic()

    def lap(stage: str) -> None:
        nonlocal last
        print(f"{stage}: {time.monotonic() - last:.1f} s", flush=True)
        last = time.monotonic()

    page.goto(app_url)
    page.locator("[data-testid='stApp']").wait_for()
    page.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    print(f"first chart after {time.monotonic() - start:.1f} s (includes demo generation)")
    expect(page.get_by_text("Documents", exact=True)).to_be_visible()
    shot(page, "data")
    lap("data")

    goto(page, "Score")
    page.get_by_role("button", name="Start scoring").click()
    expect(page.get_by_text("Top and bottom samples")).to_be_visible(timeout=120_000)
    page.locator(".js-plotly-plot").first.wait_for()
    shot(page, "score")
    lap("score")

    goto(page, "Organize")
    page.get_by_test_id("stRadio").filter(has_text="Selection").get_by_text("top-r", exact=True).click()
    expect(page.get_by_text("folding L=3").first).to_be_visible(timeout=30_000)
    expect(page.get_by_text("kept 96 of 120 samples")).to_be_visible()
    expect(page.get_by_text("Stream make-up: each bar is a window").first).to_be_visible()  # by kind, under each
    shot(page, "organize")
    lap("organize")

    goto(page, "Train")
    page.get_by_test_id("stSelectbox").filter(has_text="Model preset").click()
    page.get_by_role("option", name="tiny-test").click()
    page.get_by_test_id("stSelectbox").filter(has_text="Budget in").click()
    page.get_by_role("option", name="tokens").click()
    for label, value in (("Seeds per arm", "1"), ("Tokens (budget)", "8000"), ("Evaluate every (steps)", "4")):
        field = page.get_by_role("spinbutton", name=label)  # (a help tooltip carries the label too)
        field.fill(value)
        field.press("Enter")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Launch comparison").click()
    deadline = time.monotonic() + 150
    first = -1
    while time.monotonic() < deadline:  # the live chart must gain points while the runs train
        n = chart_points(page, "Train loss")
        if first < 0 < n:
            first = n
        elif first > 0 and n > first:
            break
        page.wait_for_timeout(500)
    assert first > 0 and chart_points(page, "Train loss") > first, "the live chart never gained points"
    done = page.locator("[data-testid='stMarkdownContainer']", has_text="done ·")
    expect(done).to_have_count(2, timeout=180_000)
    shot(page, "train")
    lap("train")

    goto(page, "Compare")
    expect(page.get_by_text("per run").first).to_be_visible(timeout=30_000)
    expect(page.get_by_role("heading", name="Summary")).to_be_visible()
    expect(page.get_by_role("heading", name="Why? Loss by group")).to_be_visible()  # evaluated by kind
    assert chart_points(page, "Validation loss by kind") > 0 or chart_points(page, "Target loss by kind") > 0
    shot(page, "compare")
    lap("compare")

    goto(page, "Learn")
    expect(page.get_by_text("Folding, as ranks")).to_be_visible()
    shot(page, "learn")


REFUSAL = "DELT Studio is not serving this address"


def test_a_network_address_is_refused_in_the_browser(page, tmp_path):
    """``--server.address 0.0.0.0`` without DELT_ALLOW_REMOTE: every URL shows only the refusal page
    (no navigation, no page of the app, nothing written to the workspace). A second tab of the
    module's browser (one Playwright per process)."""
    from playwright.sync_api import expect

    port, ws = free_port(), tmp_path / "ws"
    env = {**os.environ, "DELT_WORKSPACE": str(ws), "DELT_DEMO_DOCS": "120", "PYTHONUNBUFFERED": "1"}
    env.pop("DELT_ALLOW_REMOTE", None)
    log = open(tmp_path / "streamlit.log", "wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            "app.py",
            "--server.address",
            "0.0.0.0",
            "--server.headless",
            "true",
            "--server.port",
            str(port),
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, proc)
        pg = page.context.browser.new_page(viewport={"width": 1280, "height": 900})
        try:
            pg.set_default_timeout(30_000)
            for path in ("", "/train", "/data"):
                pg.goto(url + path)
                expect(pg.get_by_role("heading", name=REFUSAL)).to_be_visible(timeout=60_000)
                settle(pg)
                body = pg.locator("[data-testid='stMain']").inner_text()
                assert "DELT_ALLOW_REMOTE=1" in body and "no authentication" in body
                assert pg.get_by_test_id("stSidebarNav").count() == 0
                for app_text in ("Import a dataset", "Start scoring", "Launch comparison", "Browse samples"):
                    assert app_text not in body
                if not path:
                    ARTIFACTS.mkdir(exist_ok=True)
                    pg.screenshot(path=str(ARTIFACTS / "refused.png"))
        finally:
            pg.close()
        assert not (ws / "datasets").exists()  # no page ran: the demo was never generated
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        log.close()
