"""A real browser for the page's tests and scripts/page-picture: Debian's headless Chromium driven
by Selenium through Debian's chromium-driver (same version as the browser, so nothing is fetched:
Selenium Manager is never asked, as both paths are given)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from typing import Any

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"


@contextlib.contextmanager
def chromium(width: int = 1100, height: int = 820) -> Iterator[Any]:
    """A headless Chromium (a Selenium WebDriver), quit at the end."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--no-first-run", "--disable-extensions"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def log_lines(driver: Any) -> list[str]:
    """The page's log, one string per entry: `time topic text`."""
    from selenium.webdriver.common.by import By

    return [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#log li")]
