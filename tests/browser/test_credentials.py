"""The stored credentials screen: store, list (masked), edit and delete;
the secret never reaches the page after it was typed; bad input shows next
to its field; a server without a master key says it cannot store secrets."""

from __future__ import annotations

import shutil

from selenium.webdriver.common.by import By

from conftest import ADMIN, Api, Page, console_problems, make_role, make_user, new_driver

SECRET = "sk-live-4f9c2b7e1d0a8c6b5e3f1234"
NEW_SECRET = "sk-live-new-7a6b5c4d3e2f1a0b9c8d5678"


def row(credential_id: str) -> str:
    return f'[data-credential="{credential_id}"]'


def assert_secret_absent(page: Page, secret: str) -> None:
    """The secret is nowhere on the page: not in its text, not in its DOM
    (attributes included), not in any input's current value."""
    assert secret not in page.text()
    assert secret not in page.driver.page_source
    # A distinctive middle part, in case it shows cut or re-wrapped.
    assert secret[6:20] not in page.driver.page_source
    values = page.driver.execute_script(
        "return [...document.querySelectorAll('input, textarea')].map(e => e.value)"
    )
    assert not any(secret[6:20] in v for v in values), values


def test_store_edit_and_delete_without_the_secret_ever_showing(page: Page, admin_api: Api, server) -> None:
    # alice may read her own secrets through the API (a trusted service's
    # right); the page still never shows one.
    make_role(admin_api, "revealer", ["credentials:reveal"])
    alice = make_user(admin_api, "alice", "alice-pass-1", ["revealer"])
    page.login("alice", "alice-pass-1")
    page.go("credentials")
    page.see("You have no stored credentials yet.")

    page.fill("Name", "OpenAI production", "#create-credential")
    page.fill("Model", "gpt-4o", "#create-credential")
    page.fill("Base URL", "https://api.openai.com/v1", "#create-credential")
    page.fill("API key", SECRET, "#create-credential")
    page.fill("Settings (JSON)", '{"temperature": 0.2}', "#create-credential")
    page.click("Store credential")
    page.see("Credential “OpenAI production” stored.")

    # The server stored what was typed.
    [stored] = alice.ok("GET", "/api/credentials")
    assert (stored["name"], stored["model_id"], stored["base_url"], stored["config"]) == (
        "OpenAI production",
        "gpt-4o",
        "https://api.openai.com/v1",
        {"temperature": 0.2},
    )
    assert alice.ok("GET", f"/api/credentials/{stored['id']}/secret")["api_key"] == SECRET
    # The list shows it masked (first 4 + stars + last 4), and the secret is
    # nowhere in the page, the form it was typed into included.
    masked = stored["api_key_masked"]
    assert masked.startswith("sk-l") and masked.endswith("1234") and "*" in masked
    page.see(masked)
    assert_secret_absent(page, SECRET)
    # No way to reveal it on the page, even for a holder of credentials:reveal.
    assert not {"Reveal", "Show", "Show key"} & set(page.buttons())

    # Edit: a new model, the key left empty keeps the stored key.
    page.click("Edit", row(stored["id"]))
    assert page.driver.switch_to.active_element.text.startswith("Edit “OpenAI production”")
    assert page.field("API key", "#edit-credential").get_attribute("value") == ""
    page.see(f"Empty keeps the stored key ({masked}).")
    page.fill("Model", "gpt-4.1", "#edit-credential")
    page.click("Save changes")
    page.see("Credential “OpenAI production” updated.")
    [stored] = alice.ok("GET", "/api/credentials")
    assert stored["model_id"] == "gpt-4.1" and stored["api_key_masked"] == masked
    assert alice.ok("GET", f"/api/credentials/{stored['id']}/secret")["api_key"] == SECRET
    page.see("gpt-4.1")

    # Edit again with a new key: it replaces the old one, and is not shown either.
    page.click("Edit", row(stored["id"]))
    page.fill("API key", NEW_SECRET, "#edit-credential")
    page.click("Save changes")
    page.see("Credential “OpenAI production” updated.")
    [stored] = alice.ok("GET", "/api/credentials")
    assert stored["api_key_masked"].endswith("5678")
    assert alice.ok("GET", f"/api/credentials/{stored['id']}/secret")["api_key"] == NEW_SECRET
    page.see(stored["api_key_masked"])
    assert_secret_absent(page, NEW_SECRET)
    assert_secret_absent(page, SECRET)

    # Delete, after confirming.
    page.click("Delete", row(stored["id"]))
    page.accept_confirm()
    page.see("Credential “OpenAI production” deleted.")
    page.see("You have no stored credentials yet.")
    assert alice.ok("GET", "/api/credentials") == []


def test_bad_input_shows_next_to_its_field(page: Page, admin_api: Api) -> None:
    alice = make_user(admin_api, "alice", "alice-pass-1", [])
    page.login("alice", "alice-pass-1")
    page.go("credentials")
    form = "#create-credential"

    # No model.
    page.fill("API key", SECRET, form)
    page.click("Store credential")
    assert page.error_for("model_id") == "model_id: use 1 to 200 characters"

    # A URL that is not http(s).
    page.fill("Model", "gpt-4o", form)
    page.fill("Base URL", "ftp://models.example", form)
    page.click("Store credential")
    assert page.error_for("base_url") == "base_url: must be an http:// or https:// URL"

    # Settings that are not JSON are caught before the server; JSON that is
    # not an object is refused by it.
    page.fill("Base URL", "https://models.example/v1", form)
    page.fill("Settings (JSON)", "{temperature: 0.2", form)
    page.click("Store credential")
    assert page.error_for("config").startswith("config: not valid JSON")
    page.fill("Settings (JSON)", "[0.2]", form)
    page.click("Store credential")
    assert page.error_for("config") == "config: must be a JSON object"
    assert page.field("Settings (JSON)", form).get_attribute("aria-invalid") == "true"

    # Nothing was stored meanwhile; the typed key is still only in its field.
    assert alice.ok("GET", "/api/credentials") == []
    assert SECRET not in page.text()

    # Fixed, it is stored.
    page.fill("Settings (JSON)", '{"temperature": 0.2}', form)
    page.click("Store credential")
    page.see("stored.")
    assert [c["model_id"] for c in alice.ok("GET", "/api/credentials")] == ["gpt-4o"]


def test_a_server_without_a_master_key_says_it_cannot_store_secrets(tmp_path) -> None:
    from kxy_server import KxyServer

    server = KxyServer(tmp_path / "data")  # no --master-key
    driver, profile = new_driver()
    try:
        api = Api(server.base_url)
        api.ok("POST", "/api/auth/init-user", {"username": ADMIN[0], "password": ADMIN[1]})
        admin = api.login(*ADMIN)
        page = Page(driver, server.base_url)
        page.login(*ADMIN)
        page.go("credentials")
        page.see("You have no stored credentials yet.")
        page.fill("Model", "gpt-4o", "#create-credential")
        page.fill("API key", SECRET, "#create-credential")
        page.click("Store credential")
        page.see("This server cannot store credentials")
        page.see("started without a master key")
        page.see("--master-key")
        assert admin.ok("GET", "/api/credentials") == []
        # The 503 the page was answered is the one this test provoked.
        problems = console_problems(driver.get_log("browser"), [("/api/credentials", 503)])
        assert not problems, problems
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
        server.stop()


def test_every_user_manages_only_their_own_and_the_server_refuses_the_rest(page: Page, admin_api: Api) -> None:
    bob = make_user(admin_api, "bob", "bob-pass-1", [])
    theirs = admin_api.ok("POST", "/api/credentials", {"model_id": "admins-model", "api_key": SECRET})
    page.login("bob", "bob-pass-1")
    page.go("credentials")
    # bob sees his own (none), never the administrator's.
    page.see("You have no stored credentials yet.")
    page.not_see("admins-model")
    # No reveal control, and without credentials:reveal the server refuses it.
    assert not {"Reveal", "Show", "Show key"} & set(page.buttons())
    mine = bob.ok("POST", "/api/credentials", {"model_id": "bobs-model", "api_key": NEW_SECRET})
    status, envelope = bob.call("GET", f"/api/credentials/{mine['id']}/secret")
    assert (status, envelope["code"]) == (403, 40301)
    # Another user's credential is "not found" to bob, for changing and deleting.
    status, envelope = bob.call("PUT", f"/api/credentials/{theirs['id']}", {"model_id": "x"})
    assert (status, envelope["code"]) == (404, 40402)
    status, envelope = bob.call("DELETE", f"/api/credentials/{theirs['id']}")
    assert (status, envelope["code"]) == (404, 40402)
    # A key of bob's whose scope lacks credentials:write cannot store one.
    key = bob.ok("POST", "/api/keys", {"name": "reader", "permissions": ["credentials:read"]})
    status, envelope = Api(bob.base_url, key["secret"]).call("POST", "/api/credentials", {"model_id": "m", "api_key": ""})
    assert (status, envelope["code"]) == (403, 40301)
    assert [c["model_id"] for c in bob.ok("GET", "/api/credentials")] == ["bobs-model"]


def test_the_screen_works_at_phone_width(page: Page, admin_api: Api) -> None:
    alice = make_user(admin_api, "alice", "alice-pass-1", [])
    alice.ok(
        "POST",
        "/api/credentials",
        {
            "name": "a rather long credential name",
            "model_id": "some-model-with-a-long-name",
            "base_url": "https://models.example.com/v1/deployments/long-path",
            "api_key": SECRET,
        },
    )
    page.phone()
    page.login("alice", "alice-pass-1")
    page.go("credentials")
    page.see("a rather long credential name")
    widths = page.driver.execute_script(
        "return [document.documentElement.scrollWidth, window.innerWidth]"
    )
    assert widths[0] <= widths[1], widths
    assert_secret_absent(page, SECRET)
    # Enter in a field submits the form.
    page.fill("Model", "typed-on-a-phone", "#create-credential")
    page.field("Model", "#create-credential").send_keys("\n")
    page.see("stored.")
    assert "typed-on-a-phone" in [c["model_id"] for c in alice.ok("GET", "/api/credentials")]
    assert page.driver.find_elements(By.CSS_SELECTOR, ".table-wrap table")
