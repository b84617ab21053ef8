"""A comparison report of four runs, laid out by headless Chromium in a 1280-pixel window:
the page itself must not scroll sideways (wide tables scroll inside their own box)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from xdistill.report.compare import load_runs, write_compare_report

WINDOW_WIDTH = 1280
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")

# Runs after layout; writes what the page measures into the DOM, which --dump-dom prints.
MEASURE = """<script>
window.addEventListener("load", () => {
  const root = document.documentElement;
  const widest = Math.max(...[...document.querySelectorAll("div.table-box, img")].map(e => e.getBoundingClientRect().right));
  const out = document.createElement("pre");
  out.id = "measured";
  out.textContent = JSON.stringify({scrollWidth: root.scrollWidth, innerWidth: window.innerWidth, widest: widest,
    tables: document.querySelectorAll("table").length, images: document.querySelectorAll("img").length});
  document.body.appendChild(out);
});
</script>"""


def find_browser() -> str | None:
    """A Chromium-family binary: $XDISTILL_BROWSER, else the first of BROWSERS on PATH."""
    chosen = os.environ.get("XDISTILL_BROWSER")
    if chosen:
        return shutil.which(chosen)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def measure(page: Path, browser: str, profile: Path) -> dict:
    """Lay out ``page`` (with MEASURE added) in a WINDOW_WIDTH-wide headless window; return its measurements."""
    probe = page.with_name(page.stem + "-measured.html")
    probe.write_text(page.read_text().replace("</body>", MEASURE + "\n</body>"))
    proc = subprocess.run([browser, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
                           "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WINDOW_WIDTH},900",
                           "--dump-dom", probe.resolve().as_uri()],
                          capture_output=True, text=True, timeout=120, check=False)
    found = re.search(r'<pre id="measured">([^<]*)</pre>', proc.stdout)
    assert found, f"{browser} printed no measurement (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def browser() -> str:
    found = find_browser()
    if found is None:
        pytest.skip(f"no Chromium-family browser found (looked for $XDISTILL_BROWSER and {', '.join(BROWSERS)} "
                    "on PATH); install one, e.g. 'apt-get install chromium'")
    return found


def test_a_four_run_report_fits_a_1280_pixel_window(browser, distilled_runs, tmp_path):
    # Two runs that read alike carry their folder names, one of them long and unbroken, in every table.
    long_name = tmp_path / ("supervised_" + "very_long_folder_name_" * 6 + "end")
    shutil.copytree(distilled_runs["supervised"], long_name)
    runs = load_runs([distilled_runs["supervised"], long_name, distilled_runs["weighted"], distilled_runs["nearest"]])
    page = write_compare_report(runs, tmp_path / "compare.html")
    measured = measure(page, browser, tmp_path / "profile")
    assert measured["innerWidth"] == WINDOW_WIDTH, measured
    assert measured["tables"] >= 6 and measured["images"] == 4, measured
    assert measured["scrollWidth"] <= WINDOW_WIDTH, measured
    assert measured["widest"] <= WINDOW_WIDTH, measured


def test_the_measurement_sees_a_page_that_overflows(browser, tmp_path):
    """The same measurement on a page with a 2000-pixel-wide block reports the overflow."""
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><body><div style="width:2000px">wide</div></body></html>')
    assert measure(page, browser, tmp_path / "profile")["scrollWidth"] >= 2000
