"""The admin page in a real browser: a kxy-server per test and a headless
Chromium driven through WebDriver, with a page object that acts as a person
would (find by label or text, click, type, read).

Every test ends by reading the browser's console: a JavaScript error, a
Content-Security-Policy violation or a failed load of anything but an API
call the test provoked fails the test.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
from typing import Any, Iterator

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1] / "python"))
from kxy_server import KxyServer  # noqa: E402

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
    TimeoutException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
MASTER_KEY = "11" * 32
ADMIN = ("admin", "admin-pass-1")
WAIT = 10


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER):
        return
    reason = "chromium and chromium-driver are not installed (scripts/install-browser installs them)"
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(f"CI=true: {reason}")
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


class Api:
    """Direct JSON calls, to set a scene up or to call what the page hides."""

    def __init__(self, base_url: str, token: str = "") -> None:
        self.base_url = base_url
        self.token = token

    def call(self, method: str, path: str, body: Any = None, headers: dict | None = None) -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        all_headers = {"accept": "application/json", **(headers or {})}
        if body is not None:
            all_headers["content-type"] = "application/json"
        if self.token:
            all_headers["authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base_url + path, data=data, method=method, headers=all_headers)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, envelope = self.call(method, path, body)
        assert status == 200 and envelope["code"] == 0, (method, path, status, envelope)
        return envelope["data"]

    def login(self, username: str, password: str) -> "Api":
        data = Api(self.base_url).ok("POST", "/api/auth/login", {"username": username, "password": password})
        return Api(self.base_url, data["access_token"])


@pytest.fixture
def server(tmp_path: pathlib.Path) -> Iterator[KxyServer]:
    """A fresh kxy-server (embedded store, a master key so credentials can
    be stored), not yet initialized."""
    kxy = KxyServer(tmp_path / "data", "--master-key", MASTER_KEY)
    yield kxy
    kxy.stop()


@pytest.fixture
def admin_api(server: KxyServer) -> Api:
    """The server, initialized with the first administrator (ADMIN)."""
    api = Api(server.base_url)
    api.ok("POST", "/api/auth/init-user", {"username": ADMIN[0], "password": ADMIN[1]})
    return api.login(*ADMIN)


def make_user(admin_api: Api, username: str, password: str, roles: list[str]) -> Api:
    """Creates a user with `roles` and answers an Api logged in as them."""
    admin_api.ok("POST", "/api/users", {"username": username, "password": password, "roles": roles})
    return admin_api.login(username, password)


def make_role(admin_api: Api, name: str, permissions: list[str]) -> None:
    admin_api.ok("POST", "/api/roles", {"name": name, "permissions": permissions})


class Page:
    """The admin page in the browser, used the way a person uses it."""

    def __init__(self, driver: webdriver.Chrome, base_url: str) -> None:
        self.driver = driver
        self.base_url = base_url
        # The page re-renders: an element found a moment ago may be replaced
        # before it is read (a stale reference); a wait tries again.
        self.wait = WebDriverWait(
            driver,
            WAIT,
            ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
        )
        #: API failures the test causes on purpose beyond 4xx: (path part, status).
        self.provoked: list[tuple[str, int]] = []

    def provoke(self, path_part: str, status: int) -> None:
        """Declares that the test makes an API call under `path_part` fail
        with `status` (a 5xx; 4xx always pass) on purpose, so the browser's
        log of that failed load is not a console problem."""
        self.provoked.append((path_part, status))

    def open(self, route: str = "") -> "Page":
        self.driver.get(self.base_url + "/" + (f"#/{route}" if route else ""))
        return self

    def go(self, route: str) -> None:
        """Follows the navigation link to a screen, as a person clicks it."""
        self.wait.until(ec.element_to_be_clickable((By.ID, f"nav-{route}"))).click()
        self.wait.until(lambda d: d.find_element(By.ID, "screen-title").is_displayed())

    def phone(self, width: int = 390, height: int = 844) -> None:
        """Shows the page as a phone does: `width` CSS pixels wide (a
        desktop window cannot be made that narrow), touch, mobile viewport."""
        set_phone(self.driver, width, height)

    def find(self, css: str) -> WebElement:
        return self.wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, css)))

    def field(self, label: str, within: str = "") -> WebElement:
        """The input labelled `label` (exact text), optionally inside the
        element `within` (a CSS selector)."""

        def labelled(driver: webdriver.Chrome) -> WebElement | bool:
            root = driver.find_element(By.CSS_SELECTOR, within) if within else driver
            for element in root.find_elements(By.TAG_NAME, "label"):
                if element.text.strip() == label and element.is_displayed():
                    return driver.find_element(By.ID, element.get_attribute("for"))
            return False

        return self.wait.until(labelled, f"no field labelled {label!r}")

    def fill(self, label: str, value: str, within: str = "") -> None:
        element = self.field(label, within)
        element.clear()
        element.send_keys(value)

    def choose(self, label: str, option_text: str, within: str = "") -> None:
        from selenium.webdriver.support.ui import Select

        Select(self.field(label, within)).select_by_visible_text(option_text)

    def button(self, text: str, within: str = "") -> WebElement:
        def visible(driver: webdriver.Chrome) -> WebElement | bool:
            root = driver.find_element(By.CSS_SELECTOR, within) if within else driver
            for element in root.find_elements(By.TAG_NAME, "button"):
                if element.text.strip() == text and element.is_displayed() and element.is_enabled():
                    return element
            return False

        return self.wait.until(visible, f"no enabled button {text!r}")

    def click(self, text: str, within: str = "") -> None:
        self.button(text, within).click()

    def buttons(self) -> list[str]:
        return [b.text.strip() for b in self.driver.find_elements(By.TAG_NAME, "button") if b.is_displayed()]

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def see(self, text: str) -> None:
        """Waits until `text` shows on the page."""
        try:
            self.wait.until(lambda d: text in d.find_element(By.TAG_NAME, "body").text)
        except TimeoutException:
            raise AssertionError(f"{text!r} never showed; the page reads:\n{self.text()}") from None

    def not_see(self, text: str) -> None:
        assert text not in self.text(), f"{text!r} shows; the page reads:\n{self.text()}"

    def error_for(self, field_name: str) -> str:
        """The inline error shown next to the input named `field_name`."""
        return self.find(f'.error[data-field="{field_name}"]').text

    def alert_text(self) -> str:
        """The first error message shown (role=alert)."""
        return self.find('[role="alert"]').text

    def nav(self) -> list[str]:
        self.find("nav")
        return [a.text for a in self.driver.find_elements(By.CSS_SELECTOR, "nav a")]

    def login(self, username: str, password: str) -> None:
        self.open()
        self.fill("Username", username, "#login")
        self.fill("Password", password, "#login")
        self.click("Log in", "#login")
        self.find("#logout")

    def accept_confirm(self) -> None:
        self.wait.until(ec.alert_is_present()).accept()

    def screenshot(self, path: pathlib.Path) -> None:
        self.driver.save_screenshot(str(path))


def console_problems(entries: list[dict], provoked: list[tuple[str, int]] = ()) -> list[dict]:
    """Console entries that mean something went wrong. A failed API call
    (4xx, or a `provoked` (path part, status)) is logged by Chromium as a
    failed load; those are the errors the tests cause on purpose and the
    page shows, so they pass. Anything else at SEVERE, and any CSP report at
    any level, is a problem."""
    problems = []
    for entry in entries:
        message = entry.get("message", "")
        if "Content Security Policy" in message or "Content-Security-Policy" in message:
            problems.append(entry)
            continue
        if entry.get("level") != "SEVERE":
            continue
        url = message.split(" - ")[0]
        failed_load = entry.get("source") == "network" and "/api/" in url
        expected = failed_load and (
            " status of 4" in message
            or any(part in url and f" status of {status} " in message + " " for part, status in provoked)
        )
        if not expected:
            problems.append(entry)
    return problems


def set_phone(driver: webdriver.Chrome, width: int = 390, height: int = 844) -> None:
    """Emulates a phone's screen on `driver` (see Page.phone)."""
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True},
    )


def new_driver(width: int = 1280, height: int = 900) -> tuple[webdriver.Chrome, str]:
    profile = tempfile.mkdtemp(prefix="kxy-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
    ]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    return driver, profile


@pytest.fixture
def page(server: KxyServer) -> Iterator[Page]:
    """A fresh browser (its own profile: no cookies) on the server's page.
    Fails the test if the console shows an error or a CSP violation."""
    driver, profile = new_driver()
    try:
        page = Page(driver, server.base_url)
        yield page
        problems = console_problems(driver.get_log("browser"), page.provoked)
        assert not problems, f"the browser console reported: {problems}"
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
