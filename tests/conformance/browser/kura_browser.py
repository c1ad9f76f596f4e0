"""Shared by the browser tests (tests/conformance/web_ui.rs runs each script): a headless
Chromium driven by Selenium against the server named by KURA_URL, screenshots saved under
KURA_SCREENSHOTS, and the checks every script ends with (no CSP violation, no alert)."""

import os
import sys
import time

from selenium import webdriver
from selenium.common.exceptions import (NoAlertPresentException, StaleElementReferenceException,
                                        TimeoutException)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

BASE = os.environ["KURA_URL"].rstrip("/")
USER = os.environ.get("KURA_USER", "admin")
PASSWORD = os.environ["KURA_PASSWORD"]
SHOTS = os.environ["KURA_SCREENSHOTS"]
DOWNLOADS = os.environ.get("KURA_DOWNLOADS", "")
NAME = os.path.splitext(os.path.basename(sys.argv[0]))[0]
# console errors a script expects (a server restart refuses connections for a while)
EXPECTED_ERRORS = []


def browser(lang="en", size=(1280, 860), network=False):
    """A fresh headless Chromium (its own profile) that accepts the server's self-signed
    certificate and keeps the console log (and with `network`, the DevTools network events,
    read with `d.get_log("performance")`)."""
    o = Options()
    o.binary_location = os.environ.get("KURA_CHROMIUM", "/usr/bin/chromium")
    for a in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--ignore-certificate-errors",
        f"--window-size={size[0]},{size[1]}",
        f"--lang={lang}",
    ):
        o.add_argument(a)
    o.set_capability("goog:loggingPrefs", {"browser": "ALL", **({"performance": "ALL"} if network else {})})
    prefs = {"intl.accept_languages": lang}
    if DOWNLOADS:
        prefs.update({
            "download.default_directory": DOWNLOADS,
            "download.prompt_for_download": False,
            "safebrowsing.enabled": False,
        })
    o.add_experimental_option("prefs", prefs)
    svc = Service(os.environ.get("KURA_CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(options=o, service=svc)
    d.set_page_load_timeout(60)
    d.console = []
    return d


def shot(d, label):
    """Saves a screenshot as a test artefact."""
    os.makedirs(SHOTS, exist_ok=True)
    path = os.path.join(SHOTS, f"{NAME}-{label}.png")
    d.save_screenshot(path)
    print(f"screenshot {path}")


def wait(d, cond, timeout=20, what="condition"):
    try:
        return WebDriverWait(d, timeout).until(cond)
    except TimeoutException:
        shot(d, "timeout")
        raise AssertionError(f"timed out waiting for {what}; console: {console(d)}")


def visible(d, css, timeout=20):
    return wait(d, EC.visibility_of_element_located((By.CSS_SELECTOR, css)), timeout, css)


def text_in(d, css, text, timeout=20):
    return wait(d, EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text), timeout,
                f"{text!r} in {css}")


def console(d):
    """Every console entry so far (Chromium hands each one out once; kept on the driver)."""
    d.console.extend(d.get_log("browser"))
    return d.console


def sign_in(d, user=USER, password=PASSWORD, expect_ok=True):
    d.get(BASE + "/app/")
    form = visible(d, "#sign-in-form")
    u = form.find_element(By.NAME, "user")
    p = form.find_element(By.NAME, "password")
    u.clear()
    u.send_keys(user)
    p.clear()
    p.send_keys(password)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    if expect_ok:
        visible(d, "#who")
        text_in(d, "#who-name", user)


def no_alert(d):
    try:
        a = d.switch_to.alert
        raise AssertionError(f"an alert fired: {a.text!r}")
    except NoAlertPresentException:
        pass


def no_csp_violation(d):
    """Chromium logs every Content-Security-Policy refusal to the console."""
    bad = [e for e in console(d)
           if "Content Security Policy" in e.get("message", "") or "Refused to" in e.get("message", "")]
    assert not bad, f"CSP violations: {bad}"


def finish(d):
    """The checks every script ends with; then the browser closes."""
    try:
        no_alert(d)
        no_csp_violation(d)
        errors = [e for e in console(d) if e.get("level") == "SEVERE"
                  and "favicon" not in e.get("message", "")
                  and "the server responded with a status of" not in e.get("message", "")
                  and not any(x in e.get("message", "") for x in EXPECTED_ERRORS)]
        assert not errors, f"console errors: {errors}"
    finally:
        d.quit()
    print(f"{NAME}: ok")


def run(main, **options):
    """Runs `main(driver)` with a fresh browser (`options` go to `browser`); a screenshot of
    the failure if it fails."""
    d = browser(**options)
    try:
        main(d)
    except BaseException:
        try:
            shot(d, "failure")
            print(f"console: {console(d)}", file=sys.stderr)
        finally:
            d.quit()
        raise
    finish(d)


# ---------- the files view ----------

def open_folder(d, path):
    """Opens a folder (`/bucket/sub`) by its address and waits for its listing."""
    d.get(BASE + "/app/#/files" + path + "/")
    wait(d, lambda d: d.find_element(By.ID, "list").get_attribute("data-path") == path,
         what=f"listing of {path}")


def names(d):
    """The names shown in the list, in order (the rows in sight)."""
    return d.execute_script(
        "return [...document.querySelectorAll('#list-body .row')]"
        ".sort((a, b) => a.dataset.index - b.dataset.index)"
        ".map((r) => r.querySelector('.name').textContent)")


def retry(f, tries=5):
    """Runs `f` again when the list was redrawn under it (a stale element)."""
    for i in range(tries):
        try:
            return f()
        except StaleElementReferenceException:
            if i == tries - 1:
                raise
            time.sleep(0.2)


def row_of(d, name):
    for r in d.find_elements(By.CSS_SELECTOR, "#list-body .row"):
        if r.find_element(By.CSS_SELECTOR, ".name").text == name:
            return r
    raise AssertionError(f"no row {name!r} in {names(d)}")


def wait_names(d, want, gone=()):
    wait(d, lambda d: all(n in names(d) for n in want) and not any(n in names(d) for n in gone),
         what=f"rows {want} (and not {list(gone)})")


def select(d, *wanted):
    for n in wanted:
        retry(lambda: row_of(d, n).find_element(By.CSS_SELECTOR, "input[type=checkbox]").click())
    text_in(d, "#sel-count", str(len(wanted)))


def details(d, name):
    retry(lambda: row_of(d, name).find_element(By.CSS_SELECTOR, "button.more").click())
    visible(d, "#details")
    text_in(d, "#d-name", name)


def answer(d, value):
    """Fills the app's question dialog (new name, new folder) and confirms."""
    f = visible(d, "#ask-form")
    inp = f.find_element(By.NAME, "value")
    inp.clear()
    inp.send_keys(value)
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def pick_folder(d, *path):
    """In the folder picker, walks from the current folder into `path` and confirms."""
    visible(d, "#picker")
    for name in path:
        label = name
        wait(d, lambda d: any(b.text == label for b in d.find_elements(By.CSS_SELECTOR, "#picker-list button")),
             what=f"folder {name} in the picker")
        next(b for b in d.find_elements(By.CSS_SELECTOR, "#picker-list button") if b.text == label).click()
        text_in(d, "#picker-crumbs", name)
    d.find_element(By.ID, "picker-ok").click()


def uploads_done(d, n, timeout=120):
    wait(d, lambda d: len([li for li in d.find_elements(By.CSS_SELECTOR, "#up-list li")
                           if "Uploaded" in li.text]) >= n, timeout, f"{n} uploads done")
