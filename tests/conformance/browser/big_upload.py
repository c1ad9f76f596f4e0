"""A 200 MiB upload through the app, interrupted by restarting the server: the test restarts
it when this script prints RESTART, and answers GO on stdin once it is back. The app's tus
client resumes from the offset the server kept (not from zero); the test then compares the
stored file with the source byte for byte."""

import os
import sys

from kura_browser import *

SIZE = 200 * 1024 * 1024
SRC = os.environ["KURA_BIG_FILE"]


def progress(d):
    return d.execute_script("const p = document.getElementById('up-total'); return [p.value, p.max];")


def main(d):
    EXPECTED_ERRORS.append("net::ERR_CONNECTION_REFUSED")
    with open(SRC, "wb") as f:
        for _ in range(SIZE // (1 << 20)):
            f.write(os.urandom(1 << 20))
    sign_in(d)
    open_folder(d, "/web")
    # slow the upload down (20 MB/s) so that the restart lands in its middle
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 20_000_000})
    d.find_element(By.ID, "pick-files").send_keys(SRC)
    wait(d, lambda d: progress(d)[1] == SIZE and progress(d)[0] >= SIZE * 0.3, 300, "30% sent")
    sent, _ = progress(d)
    shot(d, "before-restart")
    print(f"RESTART at {sent} bytes", flush=True)
    assert sys.stdin.readline().strip() == "GO"
    uploads_done(d, 1, timeout=600)
    li = d.find_element(By.CSS_SELECTOR, "#up-list li")
    resumed = int(li.get_attribute("data-resumed-from") or "0")
    shot(d, "done")
    print(f"resumed from offset {resumed} of {SIZE}")
    assert 0 < resumed < SIZE, f"the upload did not resume from a kept offset ({resumed})"
    wait_names(d, [os.path.basename(SRC)])


run(main)
