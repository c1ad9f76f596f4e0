"""An upload cut by reloading the page: the app remembers it (tus fingerprint in
localStorage), says so after the reload, and picking the same file again resumes it from
the offset the server kept. The test compares the stored file with the source."""

import os

from kura_browser import *

SIZE = 48 * 1024 * 1024
SRC = os.environ["KURA_BIG_FILE"]


def progress(d):
    return d.execute_script("const p = document.getElementById('up-total'); return [p.value, p.max];")


def throttle(d, rate):
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": rate})


def main(d):
    with open(SRC, "wb") as f:
        f.write(os.urandom(SIZE))
    sign_in(d)
    open_folder(d, "/web")
    throttle(d, 4_000_000)
    d.find_element(By.ID, "pick-files").send_keys(SRC)
    wait(d, lambda d: progress(d)[1] == SIZE and progress(d)[0] >= SIZE * 0.25, 120, "25% sent")
    d.refresh()
    open_folder(d, "/web")
    text_in(d, "#up-resume", "Unfinished uploads: 1.")
    shot(d, "after-reload")
    throttle(d, -1)
    d.find_element(By.ID, "pick-files").send_keys(SRC)
    uploads_done(d, 1, timeout=300)
    resumed = int(d.find_element(By.CSS_SELECTOR, "#up-list li").get_attribute("data-resumed-from") or "0")
    print(f"resumed from offset {resumed} of {SIZE}")
    assert 0 < resumed < SIZE, f"the upload started over ({resumed})"
    wait_names(d, [os.path.basename(SRC)])
    # finished: nothing is remembered any more
    assert d.execute_script("return Object.keys(localStorage).filter((k) => k.startsWith('kura-tus:')).length") == 0


run(main)
