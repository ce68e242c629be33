"""The interactive DiDA View page (report.html) in a real browser, Debian's headless Chromium: it opens from the file
system with no console error and no request leaving the page, the square follows the mouse at the same place in
every panel, the readout is the run's own d, B-scan, class, view and sign change what is drawn, and what is drawn
is the PNG figure's pixels (and Python's overlay of any other class), for the demo model and a real .vol run."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from browser import (
    chromium,
    console,
    element_pixels,
    need_browser,
    open_page,
    requests,
)
from cli_helpers import PAGE, make_package
from PIL import Image
from view_pages import GRIDS, REAL_VOL, demo_result

from DiDALib import cli
from DiDALib.io.results import load_results
from DiDALib.maps.colour import overlay
from DiDALib.maps.contrast import contrast_result
from DiDALib.maps.mixing import MixedImage, cell_map, mixed_image
from DiDALib.reports.figures import panel_bscan
from DiDALib.reports.page_data import panel_shape

#: The page's panels may differ from Python's overlay by this much per channel (0-255): the page quantises each
#: sign's brightness to 256 levels and its colour table to 8 bits, which alone gives at most 2 (the same
#: arithmetic in numpy, over every pixel of the demo's 5 classes: max 2, mean 0.16), and the browser's own rounding
#: may add 1.
TOLERANCE = 3
MEAN_TOLERANCE = 0.5


@pytest.fixture(scope="module")
def driver():
    need_browser()
    with chromium() as d:
        yield d


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_result(tmp_path_factory.mktemp("page") / "demo", 3)


@pytest.fixture(scope="module")
def real_vol(tmp_path_factory):
    base = tmp_path_factory.mktemp("page-vol")
    package = make_package(base / "model")
    grids = ",".join(map(str, GRIDS))
    assert cli.main(["explain", str(REAL_VOL), "--model", str(package), "--out", str(base / "vol"), *PAGE,
                     "--grids", grids]) == 0
    return base / "vol"


def stacks(driver):
    return [e for e in driver.find_elements("css selector", "#panels .panel .stack") if e.is_displayed()]


def square_centre(rgb: np.ndarray) -> tuple[float, float] | None:
    """The centre of the yellow square in an RGB image: evidence overlays never make yellow (their blue is at least
    their green), and grey has R = G = B."""
    r, g, b = (rgb[..., c].astype(int) for c in range(3))
    ys, xs = np.nonzero((r > 200) & (g - b > 150))
    return None if ys.size == 0 else ((ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2)


def compare(page: np.ndarray, expected: np.ndarray, exclude: list[tuple[int, int, int, int]]) -> tuple[int, float]:
    """(max, mean) of |page - expected| outside the rectangles ``exclude`` (top, left, bottom, right)."""
    assert page.shape == expected.shape, (page.shape, expected.shape)
    keep = np.ones(page.shape[:2], bool)
    for t, left, bottom, right in exclude:
        keep[max(0, t):bottom, max(0, left):right] = False
    diff = np.abs(page.astype(int) - expected.astype(int))[keep]
    return int(diff.max()), float(diff.mean())


def around_square(*images: np.ndarray, half: int = 20, margin: int = 4) -> list[tuple[int, int, int, int]]:
    out = []
    for img in images:
        c = square_centre(img)
        if c is not None:
            out.append((int(c[0]) - half - margin, int(c[1]) - half - margin, int(c[0]) + half + margin + 1,
                        int(c[1]) + half + margin + 1))
    return out


def settle(driver, renders: int) -> None:
    """Wait until the page has drawn more than ``renders`` times."""
    end = time.monotonic() + 10
    while driver.execute_script("return window.didaView.state.renders") <= renders:
        assert time.monotonic() < end, "the page did not redraw"
        time.sleep(0.02)


def renders(driver) -> int:
    return driver.execute_script("return window.didaView.state.renders")


def test_the_page_opens_from_the_file_system_offline_and_says_it_is_a_demo(driver, demo):
    page = demo / "report.html"
    run = json.loads((demo / "run.json").read_text())
    assert "report.html" in run["files"]
    console(driver), requests(driver)  # only what this page does from here on
    seconds = open_page(driver, page)
    assert seconds < 10
    logs = console(driver)
    assert not [e for e in logs if e["level"] in ("SEVERE", "WARNING")], logs
    urls = requests(driver)
    assert page.resolve().as_uri() in urls
    assert all(u == page.resolve().as_uri() or u.startswith("data:") for u in urls), urls
    assert "not for clinical use" in driver.find_element("id", "notice").text
    # The page cannot reach anything else: its policy refuses a request, and the console says so.
    driver.execute_script("new Image().src = 'http://127.0.0.1:9/x.png'; fetch('file:///etc/hostname').catch(() => 0);")
    time.sleep(0.3)
    refused = [e for e in console(driver) if e["level"] == "SEVERE"]
    assert len(refused) >= 2 and all("Content Security Policy" in e["message"] for e in refused), refused
    tried = {u: why for u, why in requests(driver).items() if not u.startswith("data:")}
    assert tried and all(why == "csp" for why in tried.values()), tried  # blocked inside the browser


def test_the_square_follows_the_mouse_in_every_panel_and_the_readout_is_the_runs_d(driver, demo):
    from selenium.webdriver.common.action_chains import ActionChains

    open_page(driver, demo / "report.html")
    ex = load_results(demo / "dida_results.npz")
    shape = panel_shape(ex.bscan_shape, 480)
    mark = driver.find_elements("css selector", "#panels canvas.mark")[2]
    rect = mark.rect
    assert (round(rect["width"]), round(rect["height"])) == (shape[1], shape[0])  # shown 1:1
    for dx, dy in ((-170, -90), (95, 60)):  # from the canvas centre
        ActionChains(driver).move_to_element_with_offset(mark, dx, dy).perform()
        y, x = driver.execute_script("return window.didaView.state.point")
        assert abs(x - (shape[1] / 2 + dx)) <= 1 and abs(y - (shape[0] / 2 + dy)) <= 1  # where the mouse is
        centres = [square_centre(element_pixels(s)) for s in stacks(driver)]
        assert len(centres) == 4
        for c in centres:
            assert c == (y, x), (centres, (y, x))
        v = driver.execute_script("return window.didaView.values()")
        r = ex.results[0]
        for panel in v["panels"]:
            k = ex.class_names.index(panel["caption"].split()[0])
            expected = [float(r.deltas[n][k].ravel()[cell_map(r, n, shape)[y, x]]) for n in r.grids]
            assert panel["d"] == expected  # float32 of dida_results.npz, exactly
        cells = driver.find_elements("css selector", "#readout-table td")
        assert len(cells) == len(r.grids) * 4  # a grid's name, then its d in each of the three panels
        assert float(cells[1].text) == float(f"{v['panels'][0]['d'][0]:.3g}")


def test_the_page_is_the_png_figure(driver, demo):
    open_page(driver, demo / "report.html")
    figure = np.asarray(Image.open(demo / "figures" / "dida_view_bscan000.png").convert("RGB"))
    ex = load_results(demo / "dida_results.npz")
    ph, pw = panel_shape(ex.bscan_shape, 480)
    for p, stack in enumerate(stacks(driver)):
        page = element_pixels(stack)
        png = figure[:ph, p * (pw + 6): p * (pw + 6) + pw]
        a, b = square_centre(page), square_centre(png)
        assert a is not None and b is not None and abs(a[0] - b[0]) <= 1 and abs(a[1] - b[1]) <= 1, (p, a, b)
        # The figure's captions: the B-scan's in the top left corner, each class's in the bottom right.
        label = (0, 0, 34, 330) if p == 0 else (ph - 34, pw - 330, ph, pw)
        worst, mean = compare(page, png, [label, *around_square(page, png)])
        assert worst <= TOLERANCE and mean <= MEAN_TOLERANCE, (p, worst, mean)


def test_bscan_class_sign_and_view_change_what_is_drawn(driver, demo):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    open_page(driver, demo / "report.html")
    ex = load_results(demo / "dida_results.npz")
    bscans = (demo / "volume.nrrd")
    import SimpleITK as sitk

    volume = sitk.GetArrayFromImage(sitk.ReadImage(str(bscans)))
    run = json.loads((demo / "run.json").read_text())
    shape = panel_shape(ex.bscan_shape, 480)
    n = renders(driver)
    driver.find_element("tag name", "body").send_keys(Keys.ARROW_RIGHT)
    settle(driver, n)
    assert driver.find_element("css selector", "#panels .caption").text.startswith("B-scan 1 · label (file):")
    r = ex.results[1]
    grey = panel_bscan(volume[1], shape)
    scale = ex.scale()

    def panel(p: int) -> np.ndarray:
        return element_pixels(stacks(driver)[p])

    def check(p: int, expected: np.ndarray) -> None:
        got = panel(p)
        worst, mean = compare(got, expected, around_square(got))
        assert worst <= TOLERANCE and mean <= MEAN_TOLERANCE, (p, worst, mean)

    # A class no panel shows by default, chosen in the first class panel.
    last = int(np.argsort(-r.base_scores, kind="stable")[-1])
    n = renders(driver)
    Select(driver.find_elements("css selector", "#panels select")[0]).select_by_visible_text(ex.class_names[last])
    settle(driver, n)
    assert driver.find_elements("css selector", "#panels .caption")[1].text.startswith(ex.class_names[last])
    m = mixed_image(r, last, ex.weights, scale, shape)
    check(1, overlay(grey, m, 0.85))
    # Evidence for only: the negative part is not drawn.
    n = renders(driver)
    driver.find_element("css selector", "input[name=sign][value=for]").click()
    settle(driver, n)
    check(1, overlay(grey, MixedImage(m.positive, np.zeros_like(m.negative), m.class_index, m.scale, m.weights), 0.85))
    # The contrasts of the run, at the run's contrast scale.
    n = renders(driver)
    driver.find_element("css selector", "input[name=sign][value=both]").click()
    driver.find_element("css selector", "input[name=view][value=contrast]").click()
    settle(driver, n + 1)
    a, b = (ex.class_names.index(c) for c in run["contrasts"][0]["classes"])
    check(1, overlay(grey, mixed_image(contrast_result(r, a, b), 0, ex.weights, run["contrast_scale"], shape), 0.85))
    assert driver.find_elements("css selector", "#panels .caption")[1].text.startswith(
        f"{ex.class_names[a]} vs {ex.class_names[b]}")
    # The feature scale: each grid named in the legend, the panel coloured.
    n = renders(driver)
    driver.find_element("css selector", "input[name=view][value=scale]").click()
    settle(driver, n)
    legend = driver.find_element("id", "legend").text
    assert all(f"{g}x{g}:" in legend for g in GRIDS)
    assert np.abs(panel(1).astype(int) - np.repeat(grey[..., None], 3, axis=-1)).max() > 50
    # The score plot jumps to the B-scan clicked (the last one, at the plot's right end).
    from selenium.webdriver.common.action_chains import ActionChains

    plot = driver.find_element("id", "plot")
    n = renders(driver)
    ActionChains(driver).move_to_element_with_offset(plot, plot.rect["width"] / 2 - 12, 0).click().perform()
    settle(driver, n)
    assert driver.execute_script("return window.didaView.state.pos") == 2
    assert not [e for e in console(driver) if e["level"] == "SEVERE"]


def test_a_real_vol_run_one_bscan(driver, real_vol):
    open_page(driver, real_vol / "report.html")
    assert not [e for e in console(driver) if e["level"] in ("SEVERE", "WARNING")]
    assert not driver.find_elements("id", "notice")  # not a demonstration model
    assert driver.find_element("id", "bscan").get_attribute("disabled") is not None
    ex = load_results(real_vol / "dida_results.npz")
    ph, pw = panel_shape(ex.bscan_shape, 480)
    figure = np.asarray(Image.open(real_vol / "figures" / "dida_view_bscan000.png").convert("RGB"))
    for p, stack in enumerate(stacks(driver)):
        page = element_pixels(stack)
        png = figure[:ph, p * (pw + 6): p * (pw + 6) + pw]
        label = (0, 0, 34, 330) if p == 0 else (ph - 34, pw - 330, ph, pw)
        worst, mean = compare(page, png, [label, *around_square(page, png)])
        assert worst <= TOLERANCE and mean <= MEAN_TOLERANCE, (p, worst, mean)
