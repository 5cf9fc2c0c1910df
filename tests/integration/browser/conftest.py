"""A headless Chromium (Debian's `chromium` + `chromium-driver`) logged in to the test
Label Studio, once per session. Lives under tests/integration/ to share its Label Studio."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ls_llmtrace.labelstudio.server import Credentials, ManagedLabelStudio

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def browser(labelstudio: tuple[ManagedLabelStudio, Credentials],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    chromium = shutil.which("chromium") or str(CHROMIUM)
    driver_bin = shutil.which("chromedriver") or str(CHROMEDRIVER)
    if not Path(chromium).exists() or not Path(driver_bin).exists():
        pytest.fail("Chromium is not installed: run `make setup` (apt-get install chromium "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    profile = tmp_path_factory.mktemp("chromium-profile")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
                 "--window-size=1400,2200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_bin), options=options)
    driver.set_page_load_timeout(60)
    server, creds = labelstudio
    try:
        driver.get(f"{server.url}/user/login/")
        driver.find_element(By.NAME, "email").send_keys(creds.email)
        driver.find_element(By.NAME, "password").send_keys(creds.password)
        driver.find_element(By.CSS_SELECTOR, "button[type=submit], input[type=submit]").click()
        WebDriverWait(driver, 30).until(ec.url_changes(f"{server.url}/user/login/"))
        yield driver
    finally:
        driver.quit()
