"""Load an HTML file in headless Chromium: broken images, console errors, layout at given widths."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SKIP_REASON = (
    "browser tests skipped: no headless Chromium "
    "(to run them: apt-get install chromium chromium-driver)"
)
WIDTHS = (1400, 900)
"""Viewport widths the report is checked at: a laptop, and half a wide screen."""


def browser_available() -> bool:
    if CHROMIUM is None or CHROMEDRIVER is None:
        return False
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return True


def require_browser() -> None:
    """Skip the calling test without a browser.

    The skip is raised here, so pytest's summary folds every browser test into one line.
    """
    if not browser_available():
        pytest.skip(SKIP_REASON)


@dataclass
class Layout:
    """How the page lays out at one viewport width."""

    width: int
    inner_width: int
    scroll_width: int
    """Of the document: above ``inner_width``, the whole page scrolls sideways."""
    off_screen: list[str]
    """Images, tables, figures, headings and cards whose right edge is past the viewport."""
    scrolled_tables: list[str]
    """Tables wider than their box (first header of each): columns hidden behind a scrollbar."""


@dataclass
class PageCheck:
    images: int
    broken_images: list[str]
    console_errors: list[str]
    title: str
    headings: list[str]
    ids: list[str]
    uncaptioned_images: list[str]
    """Alt text of each image that is not inside a <figure> with a non-empty <figcaption>."""
    layouts: list[Layout]


_LAYOUT_JS = """
const w = window.innerWidth;
const name = e => (e.id ? '#' + e.id : e.tagName.toLowerCase())
  + (e.alt ? '[' + e.alt + ']' : '')
  + (e.tagName === 'TABLE' || e.tagName === 'H2' ? ' ' + e.textContent.slice(0, 40) : '');
const off = Array.from(document.querySelectorAll('img, table, figure, h2, h3, .seg, .card'))
  .filter(e => e.getBoundingClientRect().right > w + 1).map(name);
const scrolled = Array.from(document.querySelectorAll('.tablewrap'))
  .filter(e => e.scrollWidth > e.clientWidth + 1)
  .map(e => { const th = e.querySelector('th'); return th ? th.textContent : '?'; });
return [w, document.documentElement.scrollWidth, off, scrolled];
"""

_CAPTION_JS = """
return Array.from(document.images).filter(i => {
  const f = i.closest('figure');
  const c = f && f.querySelector('figcaption');
  return !(c && c.textContent.trim().length > 0);
}).map(i => i.alt || i.src.slice(0, 40));
"""


def check_page(path: Path, widths: Sequence[int] = WIDTHS) -> PageCheck:
    """Open ``path`` from disk, wait for load, inspect images, the console log and the layout."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM or ""
    profile = tempfile.mkdtemp(prefix="crm-chromium-")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        driver.set_page_load_timeout(60)
        driver.get(Path(path).resolve().as_uri())
        images = driver.execute_script("return document.images.length")
        broken = driver.execute_script(
            "return Array.from(document.images)"
            ".filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt)"
        )
        headings = driver.execute_script(
            "return Array.from(document.querySelectorAll('h2')).map(h => h.textContent)"
        )
        ids = driver.execute_script(
            "return Array.from(document.querySelectorAll('[id]')).map(e => e.id)"
        )
        uncaptioned = driver.execute_script(_CAPTION_JS)
        layouts = []
        for width in widths:
            driver.execute_cdp_cmd(
                "Emulation.setDeviceMetricsOverride",
                {"width": width, "height": 1000, "deviceScaleFactor": 1, "mobile": False},
            )
            inner, scroll, off, scrolled = driver.execute_script(_LAYOUT_JS)
            layouts.append(Layout(width, inner, scroll, off, scrolled))
        logs = driver.get_log("browser")
        errors = [e["message"] for e in logs if e.get("level") == "SEVERE"]
        return PageCheck(
            images=images,
            broken_images=broken,
            console_errors=errors,
            title=driver.title,
            headings=headings,
            ids=ids,
            uncaptioned_images=uncaptioned,
            layouts=layouts,
        )
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
