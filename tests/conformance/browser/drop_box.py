"""A share link's drop box, opened in a fresh browser: its page's script runs under the share
pages' Content-Security-Policy (the script named by its hash), a file chosen and sent is
added, and the page cannot be framed. KURA_DROP_URL is the drop box link."""

import os
import tempfile

from kura_browser import By, finish, run, wait

URL = os.environ["KURA_DROP_URL"]


def main(d):
    d.get(URL)
    with tempfile.NamedTemporaryFile("wb", suffix=".txt", prefix="dropped-", delete=False) as f:
        f.write(b"sent through the drop box\n")
    d.find_element(By.ID, "files").send_keys(f.name)
    d.find_element(By.CSS_SELECTOR, "#f button[type=submit]").click()
    wait(d, lambda d: "uploaded" in d.find_element(By.ID, "out").text,
         what="the drop box's upload (its script must run under the page's CSP)")
    print(os.path.basename(f.name))


run(main)
