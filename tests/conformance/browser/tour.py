"""Language, themes, phone size and the keyboard: a French browser gets the French catalogue;
a phone-sized dark window has no sideways scroll; arrows and Enter move through the list and
open a folder; the details dialog shows owner, group, mode and the WebDAV lock (the test
locked `report.pdf` with cadaver's LOCK through curl). Saves the screenshots the README shows
(KURA_DOCS_SHOTS names the folder they are copied to, when set)."""

import os
import shutil

from kura_browser import *

DOCS = os.environ.get("KURA_DOCS_SHOTS", "")


def keep(d, label, name):
    shot(d, label)
    if DOCS:
        os.makedirs(DOCS, exist_ok=True)
        shutil.copy(os.path.join(SHOTS, f"{NAME}-{label}.png"), os.path.join(DOCS, name))


def main(d):
    sign_in(d)
    open_folder(d, "/photos")
    wait_names(d, ["2025", "report.pdf", "notes.md"])
    text_in(d, "#quota-text", "of 1.1 GB used (group family)")
    # the lock is shown in the row and in the details
    assert "locked" in retry(lambda: row_of(d, "report.pdf").text)
    details(d, "report.pdf")
    facts = d.find_element(By.ID, "d-facts").text
    assert "Locked by admin" in facts, facts
    assert "0644" in facts or "0664" in facts, facts
    assert "family" in facts, facts
    keep(d, "details", "details.png")
    d.find_element(By.CSS_SELECTOR, "#details form[method=dialog] button").click()
    # keyboard: focus the list, ArrowDown twice, ArrowUp, Enter opens the first folder
    select(d, "notes.md", "report.pdf")
    keep(d, "files", "files.png")
    d.execute_script("document.querySelector('#list-body .row').focus()")
    active = d.switch_to.active_element
    active.send_keys(Keys.ARROW_DOWN)
    active = d.switch_to.active_element
    assert active.get_attribute("data-index") == "1", active.get_attribute("outerHTML")
    active.send_keys(Keys.ARROW_UP)
    d.switch_to.active_element.send_keys(Keys.ENTER)
    wait(d, lambda d: "/files/photos/2025" in d.current_url, what="Enter opens the folder")
    wait_names(d, ["beach.jpg"])
    # every control of the list is labelled for screen readers
    for c in d.find_elements(By.CSS_SELECTOR, "#list-body input, #list-body button"):
        assert c.get_attribute("aria-label") or c.text, c.get_attribute("outerHTML")


def phone_dark_french():
    d = browser(lang="fr", size=(390, 844))
    try:
        d.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})
        d.get(BASE + "/app/")
        text_in(d, "#sign-in-title", "Connexion")
        sign_in(d)
        open_folder(d, "/photos")
        wait_names(d, ["2025", "report.pdf"])
        assert d.find_element(By.ID, "new-folder").text == "Nouveau dossier"
        bg = d.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(22, 22, 26)", f"not the dark theme: {bg}"
        over = d.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert over <= 0, f"the page scrolls sideways by {over}px on a phone"
        keep(d, "phone", "phone-dark-fr.png")
    except BaseException:
        shot(d, "phone-failure")
        d.quit()
        raise
    finish(d)


run(main)
phone_dark_french()
