"""Previews with next/previous (an image from its server thumbnail, a PDF page as an image,
a text file, Markdown built as nodes with its script and javascript: link left as text); tags
set in a file's details and then found by search; an old version downloaded from the
versions list; a share link made in the app, then opened in a fresh browser profile, which
downloads the file. The test (web_ui.rs) put the files in /web/pics and checks the downloads."""

import os

from kura_browser import *


def downloaded(name, timeout=30):
    path = os.path.join(DOWNLOADS, name)
    for _ in range(timeout * 10):
        if os.path.exists(path) and not os.path.exists(path + ".crdownload"):
            time.sleep(0.2)
            with open(path, "rb") as f:
                return f.read()
        time.sleep(0.1)
    raise AssertionError(f"no download of {name} in {os.listdir(DOWNLOADS)}")


def pv_kind(d):
    return d.find_element(By.ID, "pv-body").get_attribute("data-kind")


def main(d):
    sign_in(d)
    open_folder(d, "/web/pics")
    wait_names(d, ["a.jpg", "doc.pdf", "notes.txt", "readme.md"])

    # an image: the server's thumbnail, then the file itself
    retry(lambda: row_of(d, "a.jpg").find_element(By.CSS_SELECTOR, ".name").click())
    visible(d, "#preview")
    text_in(d, "#pv-name", "a.jpg")
    wait(d, lambda d: d.execute_script(
        "const i = document.querySelector('#pv-body img'); return i && i.complete && i.naturalWidth > 0"),
        what="the image shown")
    wait(d, lambda d: "download" in d.find_element(By.CSS_SELECTOR, "#pv-body img").get_attribute("src"),
         what="the full image after the thumbnail")
    shot(d, "image")
    # next: the other image, then the PDF, as a page image the server rendered
    d.find_element(By.ID, "pv-next").click()
    text_in(d, "#pv-name", "b.png")
    d.find_element(By.ID, "pv-next").click()
    text_in(d, "#pv-name", "doc.pdf")
    text_in(d, "#pv-page", "Page 1 of 1", timeout=45)
    wait(d, lambda d: d.execute_script(
        "const i = document.querySelector('#pv-body img.pv-page'); return i && i.complete && i.naturalWidth > 0"),
        what="the PDF page shown")
    assert not d.find_elements(By.CSS_SELECTOR, "#pv-body iframe, #pv-body object, #pv-body embed")
    shot(d, "pdf")
    # next: the text file, as text
    d.find_element(By.ID, "pv-next").click()
    text_in(d, "#pv-name", "notes.txt")
    text_in(d, "#pv-body pre", "version two")
    shot(d, "text")
    # next: Markdown, as nodes; its markup and javascript: link stay text
    d.find_element(By.ID, "pv-next").click()
    text_in(d, "#pv-name", "readme.md")
    text_in(d, "#pv-body .pv-markdown", "Holiday")
    md = d.find_element(By.CSS_SELECTOR, "#pv-body .pv-markdown")
    assert md.find_element(By.TAG_NAME, "h3").text == "Holiday", md.get_attribute("innerHTML")
    assert md.find_element(By.TAG_NAME, "strong").text == "bold"
    assert "<script>alert(1)</script>" in md.text, md.text
    assert not md.find_elements(By.TAG_NAME, "script")
    links = md.find_elements(By.TAG_NAME, "a")
    assert [a.get_attribute("href") for a in links] == ["https://example.com/"], [a.get_attribute("href") for a in links]
    assert "[bad](javascript:alert(2))" in md.text, md.text
    shot(d, "markdown")
    # previous goes back; the arrow keys too
    d.find_element(By.ID, "pv-prev").click()
    text_in(d, "#pv-name", "notes.txt")
    d.find_element(By.ID, "pv-prev").send_keys(Keys.ARROW_RIGHT)
    text_in(d, "#pv-name", "readme.md")
    d.find_element(By.CSS_SELECTOR, "#preview form[method=dialog] button").click()
    wait(d, lambda d: not d.find_element(By.ID, "preview").is_displayed(), what="the preview closed")

    # tags and a description in the details, then found by search
    details(d, "notes.txt")
    f = d.find_element(By.ID, "d-tags")
    f.find_element(By.NAME, "tags").send_keys("project=holiday, year=2025")
    f.find_element(By.NAME, "description").send_keys("packing list")
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    text_in(d, "#status", "Saved")

    # an old version, downloaded from the versions list
    d.find_element(By.ID, "d-versions").click()
    link = visible(d, "#d-version-list a")
    assert "version=" in link.get_attribute("href"), link.get_attribute("href")
    link.click()
    assert downloaded("notes.txt") == b"v1\n"
    d.find_element(By.CSS_SELECTOR, "#details form[method=dialog] button").click()

    box = visible(d, "#search-q")
    box.clear()
    box.send_keys("tag:project=holiday")
    box.submit()
    text_in(d, "#results", "/web/pics/notes.txt")
    assert "a.jpg" not in d.find_element(By.ID, "results").text
    shot(d, "search")

    # a share link made in the app
    open_folder(d, "/web/pics")
    details(d, "a.jpg")
    d.find_element(By.ID, "d-share").click()
    visible(d, "#share-form").find_element(By.NAME, "max").send_keys("2")
    d.find_element(By.CSS_SELECTOR, "#share-form button[type=submit]").click()
    url = visible(d, "#share-url").get_attribute("value")
    assert url.startswith(BASE + "/s/"), url
    shot(d, "share")
    d.find_element(By.CSS_SELECTOR, "#share form[method=dialog] button").click()
    # listed on the account page
    d.get(BASE + "/app/#/account")
    text_in(d, "#share-list", "/web/pics/a.jpg")
    text_in(d, "#share-list", "0 of 2 downloads")

    # opened in a fresh profile (no session): the file's page (its name, a preview), and its
    # Download button downloads it
    fresh = browser()
    try:
        fresh.get(url)
        text_in(fresh, "#name", "a.jpg")
        fresh.find_element(By.ID, "download").click()
        got = downloaded("a.jpg")
        with open(os.environ["KURA_SOURCE_JPG"], "rb") as f:
            assert got == f.read(), "the shared file differs"
    finally:
        fresh.quit()


run(main)
