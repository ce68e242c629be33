"""A real browser for the page tests and the page benchmark: Debian's headless Chromium driven by selenium through the
system chromedriver (nothing is downloaded: the driver's path is given, so Selenium Manager never runs), with a
fresh profile and every background service of the browser off, so that any request seen comes from the page."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
#: The flags this sandbox needs (no setuid sandbox, no GPU, small /dev/shm) and those that keep the browser itself
#: from the network (component updates, sync, background fetches), so the request log shows only the page's.
FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
         "--force-device-scale-factor=1", "--force-color-profile=srgb", "--hide-scrollbars")


def missing() -> str | None:
    """Why no browser test can run here (None: they can)."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not (CHROMIUM and CHROMEDRIVER):
        return "Debian's chromium and chromium-driver are not installed (.ci/run installs them)"
    return None


@contextlib.contextmanager
def chromium(width: int = 2100, height: int = 1500) -> Iterator:
    """A headless Chromium (selenium WebDriver) with console and network logging, closed afterwards."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="dida-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def open_page(driver, page: Path, timeout: float = 20.0) -> float:
    """Load ``page`` from the file system and wait for its first B-scan: the seconds from the request to ready."""
    started = time.perf_counter()
    driver.get(Path(page).resolve().as_uri())
    end = time.monotonic() + timeout
    while not driver.execute_script("return document.body && document.body.dataset.ready || null"):
        if time.monotonic() > end:
            raise TimeoutError(f"{page} did not draw its first B-scan within {timeout} s: {console(driver)}")
        time.sleep(0.02)
    return time.perf_counter() - started


def console(driver) -> list[dict]:
    """The browser console's entries since the last call."""
    return driver.get_log("browser")


def requests(driver) -> dict[str, str | None]:
    """Every URL the browser was asked to load since the last call (from its DevTools network log), with the reason
    it was blocked before leaving the browser (e.g. ``csp``; None: not blocked)."""
    import json

    urls, ids = {}, {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            ids[params["requestId"]] = params["request"]["url"]
            urls.setdefault(params["request"]["url"], None)
        elif message.get("method") == "Network.loadingFailed" and params.get("blockedReason"):
            urls[ids.get(params["requestId"], "?")] = params["blockedReason"]
    return urls


def element_pixels(element) -> np.ndarray:
    """What the browser shows of an element, as an RGB uint8 array (its screenshot)."""
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(element.screenshot_as_png)).convert("RGB"))


def require_browser() -> bool:
    """True when CI demands the browser tests (``DIDA_REQUIRE_BROWSER=1``, set by ``.ci/run``): a missing browser is
    then a failure, not a skip."""
    return os.environ.get("DIDA_REQUIRE_BROWSER") == "1"


def need_browser() -> None:
    """Skip the calling test when Chromium or its driver is missing, or fail it where CI demands the browser
    tests (``require_browser``)."""
    import pytest

    why = missing()
    if why:
        if require_browser():
            pytest.fail(f"the browser tests must run here (DIDA_REQUIRE_BROWSER=1) but {why}")
        pytest.skip(why)
