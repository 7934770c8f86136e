"""First run, login, logout, refresh and the caller's own password, in the
browser, as an operator meets them."""

from __future__ import annotations

import time

from selenium.webdriver.common.by import By

from conftest import ADMIN, Api, Page, make_user


def refresh_cookie(page: Page) -> dict | None:
    """The browser's refresh cookie (scoped to /api/auth/session, so the
    page's own URL does not show it; asked of the browser directly)."""
    cookies = page.driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
    return next((c for c in cookies if c["name"] == "kxy_refresh"), None)


def test_first_run_creates_the_administrator_and_logs_in(page: Page, server) -> None:
    page.open()
    page.see("Welcome to kxy")
    page.fill("Username", "root", "#first-run")
    page.fill("Password", "first-admin-1", "#first-run")
    page.fill("Repeat the password", "first-admin-1", "#first-run")
    page.click("Create administrator")
    page.find("#logout")
    assert page.find("#nav-account").text == "root"
    # Every screen of an administrator is offered.
    assert page.nav() == ["Counters", "Databases", "API keys", "Credentials", "Users", "Roles", "Access"]
    # The server agrees: the system is initialized, root can log in.
    assert Api(server.base_url).ok("GET", "/api/auth/check-init")["initialized"] is True
    Api(server.base_url).login("root", "first-admin-1")


def test_first_run_shows_a_weak_password_next_to_the_field(page: Page, server) -> None:
    page.open()
    page.fill("Username", "root", "#first-run")
    page.fill("Password", "short", "#first-run")
    page.fill("Repeat the password", "short", "#first-run")
    page.click("Create administrator")
    assert "password" in page.error_for("password").lower()
    # Nothing was created.
    assert Api(server.base_url).ok("GET", "/api/auth/check-init")["initialized"] is False


def test_a_wrong_password_is_refused_in_words(page: Page, admin_api: Api) -> None:
    page.open()
    page.fill("Username", ADMIN[0], "#login")
    page.fill("Password", "not-the-password-1", "#login")
    page.click("Log in", "#login")
    assert page.alert_text() == "invalid username or password"
    assert page.driver.find_elements(By.ID, "logout") == []


def test_login_survives_a_reload_and_logout_ends_the_session(page: Page, admin_api: Api) -> None:
    page.login(*ADMIN)
    page.go("account")
    page.see("Change your password")
    # A reload keeps the user logged in: the refresh cookie resumes the session.
    page.driver.refresh()
    page.find("#logout")
    # The refresh token never reaches the page's script or its storage.
    assert page.driver.execute_script("return document.cookie") == ""
    # The page's storage holds only its binding to the session, which is no
    # token: the refresh token is the cookie's alone.
    stored = page.driver.execute_script("return Object.assign({}, window.localStorage, window.sessionStorage)")
    assert list(stored) == ["kxy.session-binding"], stored
    cookie = refresh_cookie(page)
    assert stored["kxy.session-binding"] not in cookie["value"]
    assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/api/auth/session"
    page.click("Log out")
    page.see("You are logged out.")
    # After a reload the session stays ended.
    page.driver.refresh()
    page.find("#login")
    assert refresh_cookie(page) is None
    assert page.driver.execute_script("return window.localStorage.length") == 0


def test_the_session_is_refreshed_before_the_access_token_expires(tmp_path) -> None:
    """With 6-second access tokens the page keeps working for three times
    that long without the user logging in again."""
    from conftest import MASTER_KEY, console_problems, new_driver
    from kxy_server import KxyServer

    server = KxyServer(tmp_path / "data", "--master-key", MASTER_KEY, "--access-token-ttl", "6")
    driver, _ = new_driver()
    try:
        api = Api(server.base_url)
        api.ok("POST", "/api/auth/init-user", {"username": ADMIN[0], "password": ADMIN[1]})
        page = Page(driver, server.base_url)
        page.login(*ADMIN)
        for _ in range(3):
            time.sleep(6)
            page.go("users")
            page.go("account")
            page.see("Change your password")
        assert driver.find_elements(By.ID, "login") == []
        assert not console_problems(driver.get_log("browser"))
    finally:
        driver.quit()
        server.stop()


def test_change_own_password(page: Page, admin_api: Api, server) -> None:
    make_user(admin_api, "alice", "alice-pass-1", [])
    page.login("alice", "alice-pass-1")
    page.go("account")
    # The wrong current password is refused next to nothing but the form.
    page.fill("Current password", "wrong-pass-1")
    page.fill("New password", "alice-pass-2")
    page.fill("Repeat the new password", "alice-pass-2")
    page.click("Change password")
    assert page.alert_text() == "invalid username or password"
    # Two different new passwords are caught before the server is asked.
    page.fill("Current password", "alice-pass-1")
    page.fill("Repeat the new password", "alice-pass-3")
    page.click("Change password")
    assert page.error_for("confirm") == "The two new passwords differ."
    page.fill("Repeat the new password", "alice-pass-2")
    page.click("Change password")
    page.see("password changed")
    # The page's session goes on (a new cookie), across a reload too.
    page.driver.refresh()
    page.find("#logout")
    # The server has the new password, not the old one.
    Api(server.base_url).login("alice", "alice-pass-2")
    status, envelope = Api(server.base_url).call(
        "POST", "/api/auth/login", {"username": "alice", "password": "alice-pass-1"}
    )
    assert status == 401


def test_a_user_without_permissions_sees_only_their_own_screens(page: Page, admin_api: Api, server) -> None:
    bob = make_user(admin_api, "bob", "bob-pass-1", [])
    page.login("bob", "bob-pass-1")
    assert page.nav() == ["API keys", "Credentials"]
    # The hidden screens are refused by the server too.
    for path in ["/api/counters", "/api/users", "/api/roles", "/api/database/list", "/api/access/grants"]:
        status, envelope = bob.call("GET", path)
        assert status == 403 and envelope["code"] == 40301, (path, envelope)


def test_cookie_routes_refuse_other_origins(admin_api: Api, server) -> None:
    """A page on another origin cannot use the browser's session: without
    the page's header, or with a foreign Origin, the server refuses."""
    api = Api(server.base_url)
    body = {"username": ADMIN[0], "password": ADMIN[1]}
    status, envelope = api.call("POST", "/api/auth/session", body)
    assert (status, envelope["code"]) == (403, 40304)
    status, envelope = api.call(
        "POST", "/api/auth/session", body, {"x-kxy-csrf": "1", "origin": "http://evil.example"}
    )
    assert (status, envelope["code"]) == (403, 40304)
    status, envelope = api.call("POST", "/api/auth/session", body, {"x-kxy-csrf": "1"})
    assert status == 200 and "refresh_token" not in envelope["data"]


def test_the_page_works_from_the_keyboard_alone(page: Page, admin_api: Api) -> None:
    """Log in, move between screens and log out without a mouse: Tab moves
    through real links and buttons in order, Enter follows and submits."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    page.open()
    username = page.field("Username", "#login")
    # The login form takes focus by itself; type, Tab, type, Enter.
    page.wait.until(lambda d: d.switch_to.active_element == username)
    keys = ActionChains(page.driver)
    keys.send_keys(ADMIN[0], Keys.TAB, ADMIN[1], Keys.ENTER).perform()
    page.find("#logout")

    def focused() -> str:
        element = page.driver.switch_to.active_element
        return element.get_attribute("id") or element.text

    # Focus starts on the screen's heading; going back (Shift+Tab) passes
    # every control of the header in order, up to the skip link.
    page.wait.until(lambda d: d.switch_to.active_element.get_attribute("id") == "screen-title")
    seen = []
    for _ in range(10):
        ActionChains(page.driver).key_down(Keys.SHIFT).send_keys(Keys.TAB).key_up(Keys.SHIFT).perform()
        seen.append(focused())
    assert seen == [
        "logout", "nav-account", "nav-access", "nav-roles", "nav-users", "nav-credentials",
        "nav-keys", "nav-databases", "nav-counters", "Skip to content",
    ], seen
    # Enter on a focused link opens its screen, and focus moves to its heading.
    page.driver.find_element(By.ID, "nav-users").send_keys(Keys.ENTER)
    page.wait.until(lambda d: d.find_element(By.ID, "screen-title").text == "Users")
    page.wait.until(lambda d: d.switch_to.active_element.get_attribute("id") == "screen-title")
    page.driver.find_element(By.ID, "logout").send_keys(Keys.ENTER)
    page.see("You are logged out.")
