"""The API keys screen: a key is created, shown once, works against the
API, stops working when disabled, and is deleted; errors show inline; a
user is offered only what they hold and the server refuses the rest."""

from __future__ import annotations

import time

from selenium.webdriver.common.by import By

from conftest import ADMIN, Api, Page, make_role, make_user


def key_headers(key_id: str, secret: str) -> dict:
    return {"x-api-key": key_id, "x-api-secret": secret}


def as_key(api: Api, key_id: str, secret: str, method: str, path: str, body=None) -> tuple[int, dict]:
    """Calls the API with a key (the X-API-Key + X-API-Secret pair) and no
    login token."""
    return Api(api.base_url).call(method, path, body, key_headers(key_id, secret))


def row(key_id: str) -> str:
    """The CSS selector of a key's row actions."""
    return f'[data-key="{key_id}"]'


def tick(page: Page, label: str) -> None:
    """Clicks the checkbox or radio button labelled `label`."""
    page.field(label).click()


def set_date(page: Page, label: str, iso: str) -> None:
    """Types a date (YYYY-MM-DD) into a date input, as the browser's own
    widget takes it (the locale's month/day/year order)."""
    element = page.field(label)
    order = page.driver.execute_script(
        "return new Intl.DateTimeFormat().formatToParts(new Date(2001, 10, 22))"
        ".filter(p => p.type !== 'literal').map(p => p.type)"
    )
    year, month, day = iso.split("-")
    parts = {"year": year, "month": month, "day": day}
    element.send_keys("".join(parts[p] for p in order))
    assert element.get_attribute("value") == iso, element.get_attribute("value")


def test_a_key_is_shown_once_works_and_stops_working_when_disabled(page: Page, admin_api: Api, server) -> None:
    alice = make_user(admin_api, "alice", "alice-pass-1", [])
    page.login("alice", "alice-pass-1")
    page.go("keys")
    page.see("You have no keys yet.")

    page.fill("Name", "orders-service", "#create-key")
    page.choose("Type", "Local: a service next to kxy", "#create-key")
    tick(page, "Only the ones I pick")
    tick(page, "keys:read")
    page.click("Create key")

    secret = page.find("#new-key-secret").text
    key_id = page.find("#new-key-id").text
    assert secret.startswith("sk-kxy-") and len(secret) == 7 + 72
    page.see("it is shown only this once")
    # Focus moved to the new key, for keyboard and screen-reader users.
    assert page.driver.switch_to.active_element.get_attribute("id") == "new-key-title"

    # The copy button puts the whole secret on the clipboard.
    page.driver.execute_cdp_cmd(
        "Browser.grantPermissions",
        {"origin": server.base_url, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]},
    )
    page.click("Copy secret")
    page.button("Copied")
    copied = page.driver.execute_async_script(
        "const done = arguments[0]; navigator.clipboard.readText().then(done, e => done('error: ' + e))"
    )
    assert copied == secret

    # The server has it as asked: alice's, local, limited to keys:read.
    [stored] = alice.ok("GET", "/api/keys")
    assert (stored["id"], stored["name"], stored["key_type"], stored["permissions"]) == (
        key_id,
        "orders-service",
        "local",
        ["keys:read"],
    )
    assert secret not in str(stored)

    # The key as displayed really works, as the pair of headers...
    status, envelope = as_key(alice, key_id, secret, "GET", "/api/keys")
    assert status == 200 and [k["id"] for k in envelope["data"]] == [key_id]
    # ...and as a bearer token, within its scope only.
    status, _ = Api(server.base_url, secret).call("GET", "/api/keys")
    assert status == 200
    status, envelope = as_key(alice, key_id, secret, "GET", "/api/credentials")
    assert (status, envelope["code"]) == (403, 40301)

    # Once dismissed, or after leaving the screen, the secret is gone for
    # good: the list shows the prefix only.
    page.go("credentials")
    page.go("keys")
    page.see(stored["display_prefix"])
    assert page.driver.find_elements(By.ID, "new-key") == []
    assert secret not in page.text()
    assert secret not in page.driver.page_source
    assert secret[7:30] not in page.driver.page_source

    # Disable: the key stops working at once.
    page.click("Disable", row(key_id))
    page.see("Key “orders-service” disabled.")
    assert alice.ok("GET", "/api/keys")[0]["status"] == "disabled"
    status, envelope = as_key(alice, key_id, secret, "GET", "/api/keys")
    assert (status, envelope["code"]) == (401, 40102)

    # Turn it on again: it works again.
    page.click("Turn on", row(key_id))
    page.see("Key “orders-service” turned on.")
    assert as_key(alice, key_id, secret, "GET", "/api/keys")[0] == 200

    # Delete, after confirming: gone from the page and the server.
    page.click("Delete", row(key_id))
    page.accept_confirm()
    page.see("Key “orders-service” deleted.")
    page.see("You have no keys yet.")
    assert alice.ok("GET", "/api/keys") == []
    assert as_key(alice, key_id, secret, "GET", "/api/keys")[0] == 401


def test_dismissing_the_new_key_hides_it_and_declining_the_delete_keeps_it(page: Page, admin_api: Api) -> None:
    alice = make_user(admin_api, "alice", "alice-pass-1", [])
    page.login("alice", "alice-pass-1")
    page.go("keys")
    page.fill("Name", "reporting", "#create-key")
    page.click("Create key")
    secret = page.find("#new-key-secret").text
    page.click("I have stored it")
    page.see("Your keys")
    assert secret not in page.driver.page_source
    # Declining the confirmation deletes nothing.
    [key] = alice.ok("GET", "/api/keys")
    assert key["permissions"] is None and key["key_type"] == "public" and key["expires_at"] is None
    page.click("Delete", row(key["id"]))
    page.driver.switch_to.alert.dismiss()
    assert len(alice.ok("GET", "/api/keys")) == 1
    page.not_see("deleted")


def test_expiry_is_sent_and_shown(page: Page, admin_api: Api) -> None:
    alice = make_user(admin_api, "alice", "alice-pass-1", [])
    page.login("alice", "alice-pass-1")
    page.go("keys")
    page.fill("Name", "for-a-while", "#create-key")
    set_date(page, "Expires on", "2031-03-15")
    page.click("Create key")
    page.find("#new-key-secret")
    [key] = alice.ok("GET", "/api/keys")
    shown = time.localtime(key["expires_at"])
    assert (shown.tm_year, shown.tm_mon, shown.tm_mday, shown.tm_hour, shown.tm_min) == (2031, 3, 15, 23, 59)
    assert "never" not in page.find(".table-wrap").text


def test_errors_show_next_to_what_caused_them(page: Page, admin_api: Api) -> None:
    make_role(admin_api, "reader", ["counters:read", "databases:read"])
    alice = make_user(admin_api, "alice", "alice-pass-1", ["reader"])
    page.login("alice", "alice-pass-1")
    page.go("keys")

    # No name.
    page.click("Create key")
    assert page.error_for("name") == "name: use 1 to 100 characters"

    # An expiry in the past.
    page.fill("Name", "late", "#create-key")
    set_date(page, "Expires on", "2001-01-02")
    page.click("Create key")
    assert page.error_for("expires_at") == "expires_at: must be in the future"
    set_date(page, "Expires on", "2031-01-01")

    # "Only the ones I pick" with none picked is caught before the server.
    tick(page, "Only the ones I pick")
    page.click("Create key")
    assert "Pick at least one permission" in page.error_for("permissions")

    # A permission alice held when the page loaded, taken away since: the
    # server refuses it, and says so under the permissions.
    admin_api.ok("PUT", "/api/roles/reader", {"permissions": ["databases:read"]})
    tick(page, "counters:read")
    page.click("Create key")
    assert page.error_for("permissions") == (
        "permissions: a key cannot have counters:read, which its owner does not hold"
    )
    assert alice.ok("GET", "/api/keys") == []

    # Over the limit of active keys (5 by default).
    for n in range(5):
        alice.ok("POST", "/api/keys", {"name": f"k{n}"})
    tick(page, "All of mine, now and later")
    page.click("Create key")
    assert page.alert_text() == "at most 5 active API keys per user; disable or delete one first"
    assert len(alice.ok("GET", "/api/keys")) == 5


def test_a_user_is_offered_only_what_they_hold_and_the_server_refuses_more(page: Page, admin_api: Api) -> None:
    bob = make_user(admin_api, "bob", "bob-pass-1", [])
    page.login("bob", "bob-pass-1")
    page.go("keys")
    tick(page, "Only the ones I pick")
    offered = [e.text for e in page.driver.find_elements(By.CSS_SELECTOR, ".key-choices label")]
    assert offered == ["credentials:read", "credentials:write", "keys:read", "keys:write"]
    # Not an administrator of keys: no view of everyone's keys...
    page.not_see("Show every user's keys")
    assert page.driver.find_elements(By.ID, "keys-everyone") == []
    # ...and the server refuses it, as it refuses a scope bob does not hold.
    status, envelope = bob.call("GET", "/api/keys?all=true")
    assert (status, envelope["code"]) == (403, 40301)
    status, envelope = bob.call("POST", "/api/keys", {"name": "x", "permissions": ["counters:read"]})
    assert (status, envelope["code"]) == (400, 40002)

    # A key whose scope lacks keys:write cannot make keys, or change them.
    made = bob.ok("POST", "/api/keys", {"name": "reader", "permissions": ["keys:read"]})
    status, envelope = as_key(bob, made["id"], made["secret"], "POST", "/api/keys", {"name": "y", "permissions": []})
    assert (status, envelope["code"]) == (403, 40301)
    status, envelope = as_key(bob, made["id"], made["secret"], "PATCH", f"/api/keys/{made['id']}", {"status": "disabled"})
    assert (status, envelope["code"]) == (403, 40301)
    # Another user's key is "not found" to bob.
    other = admin_api.ok("POST", "/api/keys", {"name": "admins"})
    status, envelope = bob.call("DELETE", f"/api/keys/{other['id']}")
    assert (status, envelope["code"]) == (404, 40402)


def test_an_administrator_sees_and_disables_another_users_key(page: Page, admin_api: Api) -> None:
    alice = make_user(admin_api, "alice", "alice-pass-1", [])
    key = alice.ok("POST", "/api/keys", {"name": "alices-job"})
    page.login(*ADMIN)
    page.go("keys")
    page.see("You have no keys yet.")
    page.not_see("alices-job")
    tick(page, "Show every user's keys")
    page.see("Every user's keys")
    page.see("alices-job")
    assert "alice" in page.find(row(key["id"])).find_element(By.XPATH, "ancestor::tr").text
    page.click("Disable", row(key["id"]))
    page.see("Key “alices-job” disabled.")
    assert alice.ok("GET", "/api/keys")[0]["status"] == "disabled"
    assert Api(alice.base_url, key["secret"]).call("GET", "/api/keys")[0] == 401


def test_the_screen_works_at_phone_width(page: Page, admin_api: Api) -> None:
    alice = make_user(admin_api, "alice", "alice-pass-1", [])
    for n in range(3):
        alice.ok("POST", "/api/keys", {"name": f"service-number-{n}", "permissions": ["keys:read", "credentials:read"]})
    page.phone()
    page.login("alice", "alice-pass-1")
    page.go("keys")
    page.see("service-number-2")
    # The page itself does not scroll sideways; the table scrolls in its box.
    widths = page.driver.execute_script(
        "const w = document.querySelector('.table-wrap');"
        "return [document.documentElement.scrollWidth, window.innerWidth, w.scrollWidth, w.clientWidth]"
    )
    assert widths[0] <= widths[1], widths
    assert widths[2] > widths[3], widths
    # The form is usable with the keyboard: Enter submits it.
    page.fill("Name", "from-the-phone", "#create-key")
    page.field("Name", "#create-key").send_keys("\n")
    page.find("#new-key-secret")
    assert "from-the-phone" in [k["name"] for k in alice.ok("GET", "/api/keys")]
