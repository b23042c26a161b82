"""The --web page in a real browser: Debian's chromium, driven by selenium, against `autocomplete --web` on the real
pip-shipped SmolLM2. Type "san fra" and the dropdown lists suggestions that begin with it; the keys move through it as
in any search box; the temperature slider reshapes the bars without a request and they still sum to 100%; Enter
streams a completion; the page's own sampling distribution is sample.py's.

Needs chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them and sets
AUTOCOMPLETE_REQUIRE_BROWSER=1, which makes their absence a failure rather than a loud skip). With
AUTOCOMPLETE_SCREENSHOT=FILE the page is saved there (the README's picture)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autocomplete.text.sample import probabilities
from conftest import console_script

CHROMIUM = next((p for p in ("/usr/lib/chromium/chromium", shutil.which("chromium") or "") if p and
                 Path(p).exists()), None)
DRIVER = shutil.which("chromedriver")
WAIT = 60  # seconds: a first suggestion list on a 2-core machine is well under one


def _needs_browser() -> None:
    missing = [name for name, found in (("chromium", CHROMIUM), ("chromedriver", DRIVER)) if not found]
    try:
        import selenium  # noqa: F401
    except ImportError:
        missing.append("selenium (pip install -e '.[test]')")
    if missing:
        message = f"{', '.join(missing)} not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("AUTOCOMPLETE_REQUIRE_BROWSER") == "1":
            pytest.fail(f"the browser tests are required here: {message}")
        pytest.skip(f"LOUD SKIP: {message}: the browser tests of --web did not run")


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    """Where the server's stderr (its log) goes."""
    return tmp_path_factory.mktemp("web-log") / "stderr"


@pytest.fixture(scope="module")
def url(env_module, log):
    """`autocomplete --web` on the starter model, on a free port: its URL once it serves."""
    _needs_browser()
    with open(log, "wb") as stderr:
        process = subprocess.Popen([console_script(), "--web", "--port", "0", "-m", "smollm2-135m"],
                                   stdout=subprocess.PIPE, stderr=stderr, env=env_module)
    line = process.stdout.readline().decode()
    try:
        assert line.startswith("Serving http://127.0.0.1:"), log.read_text()
        yield line.split()[1]
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def env_module(smollm2_cache, tmp_path_factory):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AUTOCOMPLETE_", "HF_"))}
    home = tmp_path_factory.mktemp("web-home")
    return {**base, "AUTOCOMPLETE_CACHE_DIR": str(smollm2_cache), "HF_HUB_OFFLINE": "1", "HF_HOME": str(home / "hf"),
            "AUTOCOMPLETE_DATA_DIR": str(home / "data"), "AUTOCOMPLETE_RUNTIME_DIR": str(home / "run"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "AUTOCOMPLETE_THREADS": os.environ.get("AUTOCOMPLETE_THREADS", "2")}


@pytest.fixture(scope="module")
def browser():
    _needs_browser()
    os.environ.setdefault("SE_OFFLINE", "true")  # selenium never fetches a driver: the system's is given
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 "--window-size=1200,760"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def page(browser, url):
    from selenium.webdriver.common.by import By

    browser.get(url)
    wait(browser, lambda d: d.execute_script("return window.autocomplete !== undefined"))
    wait(browser, lambda d: d.find_element(By.ID, "k").get_attribute("max") == "64")  # /info arrived
    return browser


def wait(driver, condition, seconds: float = WAIT):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds).until(condition)


def dropdown(driver) -> list[tuple[str, str, str]]:
    """(typed part, the rest, probability) of each suggestion listed."""
    return driver.execute_script("""
        return [...document.querySelectorAll('#suggestions li')].map(li =>
          [li.querySelector('.typed').textContent, li.querySelector('.rest').textContent,
           li.querySelector('.p').textContent]);""")


def bars(driver) -> list[float]:
    return driver.execute_script("return [...document.querySelectorAll('#bars li')].map(li => Number(li.dataset.p))")


def explain_requests(driver) -> int:
    return driver.execute_script(
        "return performance.getEntriesByType('resource').filter(e => e.name.includes('/explain?')).length")


def type_in(driver, text: str):
    from selenium.webdriver.common.by import By

    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(text)
    return box


def test_typing_lists_suggestions_that_begin_with_it(page):
    from selenium.webdriver.common.keys import Keys

    box = type_in(page, "san fra")
    wait(page, lambda d: dropdown(d) and all(typed == "san fra" for typed, _, _ in dropdown(d)))
    listed = dropdown(page)
    assert all(rest for _, rest, _ in listed) and all(p.endswith("%") for _, _, p in listed)
    assert any((typed + rest).startswith("san francisco") for typed, rest, _ in listed)
    probabilities_shown = [float(p.rstrip("%")) for _, _, p in listed]
    assert probabilities_shown == sorted(probabilities_shown, reverse=True)
    if os.environ.get("AUTOCOMPLETE_SCREENSHOT"):
        wait(page, lambda d: len(bars(d)) > 1)
        page.save_screenshot(os.environ["AUTOCOMPLETE_SCREENSHOT"])
    # the keys of any search box: down takes the first into the box, up past it gives back what was typed
    box.send_keys(Keys.ARROW_DOWN)
    assert box.get_attribute("value") == listed[0][0] + listed[0][1]
    box.send_keys(Keys.ARROW_UP)
    assert box.get_attribute("value") == "san fra"
    box.send_keys(Keys.ARROW_DOWN, Keys.ESCAPE)
    assert box.get_attribute("value") == "san fra" and not dropdown(page)


def test_the_temperature_slider_reshapes_the_bars_without_asking_again(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    type_in(page, "weather in")
    wait(page, lambda d: len(bars(d)) > 5)
    asked, before = explain_requests(page), bars(page)
    entropy = page.find_element(By.ID, "entropy")

    def bits() -> float:
        return float(entropy.text.split()[1])

    warm = bits()
    slider = page.find_element(By.ID, "t")
    slider.send_keys(*[Keys.ARROW_LEFT] * 10)  # 0.7 -> 0.2: sharper
    assert page.find_element(By.ID, "t-out").text == "0.20"
    cold = bars(page)
    slider.send_keys(*[Keys.ARROW_RIGHT] * 26)  # -> 1.5: flatter
    hot = bars(page)
    assert cold[0] > before[0] > hot[0]  # the likeliest token gains as T falls, loses as it rises
    for shown in (before, cold, hot):
        assert sum(shown) == pytest.approx(1.0, abs=1e-9)  # the bars and the "other" bar: 100%
    assert bits() > warm
    assert explain_requests(page) == asked  # redrawn from the logits it has


def test_the_page_draws_from_sample_py_s_distribution(page):
    rng = np.random.default_rng(0)
    for case in range(40):
        logits = np.sort(rng.normal(0, 3, 64).astype(np.float32))[::-1].copy()
        logits[5:8] = logits[5]  # ties at a cut
        if case % 4 == 0:
            logits[40:] = -np.inf  # tokens healing rules out
        t = [0.0, 0.3, 0.7, 1.0, 1.7][case % 5]
        k = [1, 3, 6, 20, 64][case % 5 - 1]
        p = [1.0, 0.8, 0.5, 0.95][case % 4]
        sent = [None if not np.isfinite(x) else float(x) for x in logits]
        got = page.execute_script("return window.autocomplete.distribution("
                                  "arguments[0].map(x => x === null ? -Infinity : x), arguments[1], arguments[2], "
                                  "arguments[3])", sent, t, k, p)
        want = probabilities(logits, t, k, p)
        assert got == pytest.approx(want.tolist(), abs=2e-6), (t, k, p)


def test_enter_streams_a_completion(page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = type_in(page, "san fra")
    box.send_keys(Keys.ENTER)
    wait(page, lambda d: d.find_element(By.ID, "completion-stats").text)
    assert page.find_element(By.ID, "shown-prompt").text == "san fra"
    streamed = page.find_element(By.ID, "streamed").get_attribute("textContent")
    assert streamed.strip() and "tokens" in page.find_element(By.ID, "completion-stats").text
    assert not page.find_element(By.ID, "error").is_displayed()


def test_step_appends_a_drawn_token(page):
    from selenium.webdriver.common.by import By

    box = type_in(page, "cheap flights to")
    wait(page, lambda d: len(bars(d)) > 1)
    page.find_element(By.ID, "step").click()
    wait(page, lambda d: box.get_attribute("value") != "cheap flights to")
    assert box.get_attribute("value").startswith("cheap flights to")



def test_a_search_engine_s_url_fills_the_box_and_completes_it(browser, url):
    from selenium.webdriver.common.by import By

    browser.get(url + "?q=" + "cheap%20fli")  # what a browser sends from the OpenSearch document's text/html Url
    wait(browser, lambda d: d.find_element(By.ID, "completion-stats").text)
    assert browser.find_element(By.ID, "q").get_attribute("value") == "cheap fli"
    assert browser.find_element(By.ID, "shown-prompt").text == "cheap fli"
    assert browser.find_element(By.ID, "streamed").get_attribute("textContent").strip()


def test_a_page_on_another_origin_cannot_drive_the_model(browser, url, log, tmp_path):
    """A page served from elsewhere sends no-cors fetches of long queries (it can't read the answers, but before,
    the model computed them): each is refused before it counts or takes the model, and the user's own page is
    served at once."""
    import http.server
    import threading
    import time

    attack = tmp_path / "index.html"
    attack.write_text(f"""<!doctype html><script>
      const q = encodeURIComponent("\\u{{1F600}}".repeat(200));
      Promise.all([...Array(5)].map(() => fetch("{url}suggest?q=" + q, {{mode: "no-cors"}}).catch(() => null)))
        .then(() => {{ document.title = "sent"; }});
    </script>""")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(tmp_path), **k)  # noqa: E731
    elsewhere = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=elsewhere.serve_forever, daemon=True).start()
    try:
        before = log.read_text().count("a request from another site")
        browser.get(f"http://localhost:{elsewhere.server_address[1]}/index.html")
        wait(browser, lambda d: d.title == "sent")
        start = time.monotonic()
        browser.get(url)
        wait(browser, lambda d: d.execute_script("return window.autocomplete !== undefined"))
        type_in(browser, "san")
        wait(browser, lambda d: dropdown(d))
        assert time.monotonic() - start < 20
        assert log.read_text().count("a request from another site") - before == 5
    finally:
        elsewhere.shutdown()
