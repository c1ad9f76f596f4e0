"""The admin console lists a share link and a WebDAV lock on a file named
`<img src=x onerror=alert(1)>.txt` (the lock's owner is markup too) as text, then breaks the
lock and revokes the link; no alert fires and the page never holds an <img>."""

from kura_browser import *

NAME = "<img src=x onerror=alert(1)>.txt"


def no_img(d):
    imgs = d.find_elements(By.TAG_NAME, "img")
    assert not imgs, f"the page has <img> elements: {[i.get_attribute('outerHTML') for i in imgs]}"
    no_alert(d)


def main(d):
    sign_in(d)
    d.get(BASE + "/app/#/admin/shares")
    text_in(d, "#adm-shares", "/web/" + NAME)
    no_img(d)
    d.get(BASE + "/app/#/admin/locks")
    text_in(d, "#adm-locks", "/web/" + NAME)
    text_in(d, "#adm-locks", "onerror=alert(2)")
    no_img(d)
    shot(d, "locks")
    b = d.find_element(By.CSS_SELECTOR, "#adm-locks .adm-break-lock")
    b.click()
    text_in(d, "#adm-locks .adm-break-lock", "Really")
    b.click()
    text_in(d, "p#adm-locks", "No locks")
    d.get(BASE + "/app/#/admin/shares")
    b = visible(d, "#adm-shares .adm-revoke-share")
    b.click()
    b.click()
    text_in(d, "p#adm-shares", "No share links")
    no_img(d)
    shot(d, "revoked")


run(main)
