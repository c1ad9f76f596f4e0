"""A folder of 10,000 entries (made by the test over WebDAV) is listed and rendered; the time
from opening it to its rows on screen is reported as a figure, not asserted. The list is
virtualised: only the rows in sight are in the page, and the last one is reachable."""

import concurrent.futures
import os

import requests
import urllib3

from kura_browser import *

N = 10000


def fill():
    """Puts N small files into /web/many over WebDAV, eight at a time."""
    s = requests.Session()
    s.auth = (USER, PASSWORD)
    # the test server's self-signed certificate is no CA Python accepts; 127.0.0.1 only
    s.verify = False
    s.trust_env = False
    urllib3.disable_warnings()
    a = s.request("MKCOL", BASE + "/dav/web/many")
    assert a.status_code == 201, a.status_code

    def put(i):
        r = s.put(f"{BASE}/dav/web/many/f{i:05d}.txt", data=b"x" * (i % 100))
        assert r.status_code == 201, r.status_code

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        list(pool.map(put, range(N)))
    print(f"put {N} files in {time.monotonic() - t0:.0f} s")


def main(d):
    sign_in(d)
    times = []
    for _ in range(3):
        d.get(BASE + "/app/#/files/")
        wait(d, lambda d: "web" in names(d), what="the buckets")
        t0 = time.monotonic()
        d.get(BASE + "/app/#/files/web/many/")
        wait(d, lambda d: d.find_element(By.ID, "list-count").text.startswith(f"{N} "), 120, "10,000 entries")
        wall = (time.monotonic() - t0) * 1000
        app_ms = int(d.find_element(By.ID, "list").get_attribute("data-render-ms"))
        times.append((app_ms, wall))
    shown = names(d)
    assert shown[0] == "f00000.txt", shown[:3]
    rows = len(shown)
    assert 0 < rows < 200, f"{rows} rows in the page: the list is not virtualised"
    shot(d, "top")
    # keyboard: End goes to the last entry
    d.execute_script("document.querySelector('#list-body .row').focus()")
    d.switch_to.active_element.send_keys(Keys.END)
    wait(d, lambda d: "f09999.txt" in names(d), what="the last entry")
    shot(d, "end")
    for app_ms, wall in times:
        print(f"figure: 10,000-entry folder listed and rendered in {app_ms} ms (app), {wall:.0f} ms (wall)")


fill()
run(main)
