"""Search by tag (the test tagged the file through S3 PutObjectTagging): the result opens its
folder in place, with the file in the list."""

from kura_browser import *


def main(d):
    sign_in(d)
    box = visible(d, "#search-q")
    box.send_keys("tag:project=kura")
    box.submit()
    text_in(d, "#results", "/web/docs/tagged.txt")
    assert "/web/docs/other.txt" not in d.find_element(By.ID, "results").text
    assert "project=kura" in d.find_element(By.ID, "results").text
    shot(d, "results")
    d.find_element(By.CSS_SELECTOR, "#results button").click()
    wait(d, lambda d: "tagged.txt" in names(d), what="the result's folder")
    assert "/files/web/docs" in d.current_url, d.current_url
    text_in(d, "#crumbs", "docs")


run(main)
