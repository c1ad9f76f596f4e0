"""A file named `<img src=x onerror=alert(1)>.txt` (put over WebDAV by the test) is shown as
text: no alert fires, and the page holds no <img> element."""

from kura_browser import *

NAME = "<img src=x onerror=alert(1)>.txt"


def main(d):
    sign_in(d)
    # found by the search box, shown in the results list
    box = visible(d, "#search-q")
    box.send_keys("onerror")
    box.submit()
    text_in(d, "#results", NAME)
    shot(d, "search")
    no_alert(d)
    imgs = d.find_elements(By.TAG_NAME, "img")
    assert not imgs, f"the page has <img> elements: {[i.get_attribute('outerHTML') for i in imgs]}"
    # and in the bucket's listing
    open_folder(d, "/web")
    text_in(d, "#list", NAME)
    shot(d, "listing")
    no_alert(d)
    assert not d.find_elements(By.TAG_NAME, "img")


run(main)
