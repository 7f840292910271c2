"""Load an HTML file in headless Chromium and report broken images and console errors."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
SKIP_REASON = "headless Chromium not installed (apt-get install chromium chromium-driver)"


def browser_available() -> bool:
    if CHROMIUM is None or CHROMEDRIVER is None:
        return False
    try:
        import selenium  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class PageCheck:
    images: int
    broken_images: list[str]
    console_errors: list[str]
    title: str
    headings: list[str]


def check_page(path: Path) -> PageCheck:
    """Open ``path`` from disk, wait for load, and inspect images and the console log."""
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
        logs = driver.get_log("browser")
        errors = [e["message"] for e in logs if e.get("level") == "SEVERE"]
        return PageCheck(
            images=images,
            broken_images=broken,
            console_errors=errors,
            title=driver.title,
            headings=headings,
        )
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
