"""report.html of a small real report (two tiny runs) in Debian's headless Chromium, driven by Selenium: every image
loads with a non-zero size, the page logs no console error, every section and table of REPORT.md is on the page, and
every in-page link lands on an element. scripts/browser.sh installs the browser where it is missing."""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from cnnlab.reporting import build_report
from cnnlab.training.runner import train
from tests.helpers import FIGURES, REPO, TINY, TRAIN_OVERRIDES, compose_config

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed: pip install -e '.[dev]'")

pytestmark = pytest.mark.slow  # trains two tiny runs and starts a browser


def browser_paths() -> tuple[str, str]:
    """Chromium and its driver, installed by scripts/browser.sh when missing; a skip only where that cannot be."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found
    if shutil.which("apt-get") is None:
        pytest.skip("no chromium/chromedriver and no apt-get to install them (Debian: scripts/browser.sh)")
    done = subprocess.run(["bash", str(REPO / "scripts" / "browser.sh")], capture_output=True, text=True)
    assert done.returncode == 0, f"scripts/browser.sh could not install chromium: {done.stderr}"
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("browser") / "outputs"
    for opt in ("sgd", "adam"):
        train(compose_config("train", *TINY, FIGURES, f"+experiment/report={opt}", "seed=0", output_dir=out))
    cfg = compose_config(
        "report",
        "seeds=[0]",
        TRAIN_OVERRIDES,
        "tables.optimizers=[sgd,adam]",
        "tables.batch_norm=[sgd,sgd_bn]",
        "target_accuracy=40",
        "analyses_enabled=false",
        output_dir=out,
    )
    return build_report(cfg)


@pytest.fixture(scope="module")
def page(report) -> Iterator:
    chromium, driver_path = browser_paths()
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        driver.get(report.html.as_uri())
        yield driver
    finally:
        driver.quit()


def markdown_headings(text: str) -> list[str]:
    """REPORT.md's headings as the page shows them (inline code and emphasis marks dropped)."""
    return [re.sub(r"[`*]", "", m).strip() for m in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)]


def test_every_image_loads_with_a_size(page):
    images = page.execute_script(
        "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth, i.naturalHeight])"
    )
    assert images, "the report shows no image"
    assert [alt for alt, complete, width, height in images if not (complete and width > 0 and height > 0)] == []


def test_no_console_errors(page):
    assert [entry["message"] for entry in page.get_log("browser") if entry["level"] == "SEVERE"] == []


def test_every_section_and_table_of_the_markdown_is_on_the_page(page, report):
    text = report.markdown.read_text()
    shown = page.execute_script(
        "return Array.from(document.querySelectorAll('h1,h2,h3,h4,h5,h6')).map(h => h.textContent.trim())"
    )
    assert markdown_headings(text) == shown
    header_rows = re.findall(r"^(\|.*\|)\n\|[-:| ]+\|$", text, flags=re.MULTILINE)
    page_headers = page.execute_script(
        "return Array.from(document.querySelectorAll('table')).map("
        "t => Array.from(t.querySelectorAll('thead th')).map(th => th.textContent.trim()))"
    )
    markdown_headers = [[re.sub(r"[`*]", "", c).strip() for c in row.strip("|").split("|")] for row in header_rows]
    assert len(markdown_headers) >= 2 and markdown_headers == page_headers


def test_every_in_page_link_resolves(page):
    targets = page.execute_script(
        "return Array.from(document.querySelectorAll('a[href^=\"#\"]')).map(a => a.getAttribute('href').slice(1))"
    )
    missing = [
        t for t in targets if not page.execute_script("return document.getElementById(arguments[0]) !== null", t)
    ]
    assert missing == []
