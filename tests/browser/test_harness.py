"""The console check every browser test ends with can fail: a script the
page did not ship is refused by the page's Content-Security-Policy, and the
refusal reaches the check."""

from __future__ import annotations

from conftest import Page, console_problems


def test_the_page_refuses_inline_script_and_the_check_sees_it(page: Page, server) -> None:
    page.open()
    page.see("Welcome to kxy")
    ran = page.driver.execute_script(
        """
        window.injected = false;
        const script = document.createElement("script");
        script.textContent = "window.injected = true";
        document.body.appendChild(script);
        return window.injected;
        """
    )
    assert ran is False, "the CSP let an inline script run"
    problems = console_problems(page.driver.get_log("browser"))
    assert any("Content Security Policy" in p["message"] for p in problems), problems
