"""PDF previews: the pages of a PDF whose opening action is JavaScript are images the server
rendered (page 1 has a blue band at the top, page 2 a red one), turned with the page buttons
and Page Up/Down; no PDF viewer, frame or alert. A file that only starts like a PDF and a
"bomb" PDF (nested forms drawing four billion squares) each end in an error message within a
bounded time. The test (web_ui.rs) put the three files in /web/docs."""

from kura_browser import *

# the server kills a renderer after 20 s of wall time (10 s of CPU); leave room for a busy machine
BOUND = 45


def page_image(d):
    """The page shown, once loaded: its natural size and the colour at the top middle."""
    js = """
      const i = document.querySelector('#pv-body img.pv-page');
      if (!i || !i.complete || i.naturalWidth === 0) return null;
      const c = document.createElement('canvas');
      c.width = i.naturalWidth; c.height = i.naturalHeight;
      const g = c.getContext('2d');
      g.drawImage(i, 0, 0);
      const p = g.getImageData(Math.floor(c.width / 2), 20, 1, 1).data;
      return {w: i.naturalWidth, h: i.naturalHeight, top: [p[0], p[1], p[2]], src: i.src};
    """
    return wait(d, lambda d: d.execute_script(js), timeout=BOUND, what="the PDF page image")


def wait_page(d, n, of):
    text_in(d, "#pv-page", f"Page {n} of {of}", timeout=BOUND)
    wait(d, lambda d: d.find_element(By.ID, "pv-body").get_attribute("data-page") == str(n),
         what=f"page {n} drawn")
    return page_image(d)


def no_viewer(d):
    assert not d.find_elements(By.CSS_SELECTOR, "#pv-body iframe, #pv-body object, #pv-body embed")
    no_alert(d)


def main(d):
    sign_in(d)
    open_folder(d, "/web/docs")
    wait_names(d, ["a-script.pdf", "b-garbage.pdf", "c-bomb.pdf"])

    retry(lambda: row_of(d, "a-script.pdf").find_element(By.CSS_SELECTOR, ".name").click())
    visible(d, "#preview")
    text_in(d, "#pv-name", "a-script.pdf")
    p1 = wait_page(d, 1, 2)
    # an A6 page (298 x 420 points) fitted to 1024 px on its longer side
    assert p1["h"] == 1024 and 700 < p1["w"] < 750, p1
    assert p1["src"].startswith("blob:"), p1
    assert p1["top"][2] > 200 and p1["top"][0] < 60, f"page 1 is not blue at the top: {p1}"
    assert d.find_element(By.ID, "pv-page-prev").get_attribute("disabled") is not None
    no_viewer(d)
    shot(d, "page-1")
    d.find_element(By.ID, "pv-page-next").click()
    p2 = wait_page(d, 2, 2)
    assert p2["top"][0] > 200 and p2["top"][2] < 60, f"page 2 is not red at the top: {p2}"
    assert d.find_element(By.ID, "pv-page-next").get_attribute("disabled") is not None
    shot(d, "page-2")
    # Page Up goes back a page
    d.find_element(By.ID, "pv-page-prev").send_keys(Keys.PAGE_UP)
    p1 = wait_page(d, 1, 2)
    assert p1["top"][2] > 200, p1
    no_viewer(d)

    # garbage that starts like a PDF: an error message, not a broken image
    t0 = time.monotonic()
    d.find_element(By.ID, "pv-next").click()
    text_in(d, "#pv-name", "b-garbage.pdf")
    text_in(d, "#pv-error", "This PDF cannot be shown", timeout=BOUND)
    assert not d.find_elements(By.CSS_SELECTOR, "#pv-body img"), "an image for garbage"
    print(f"figure: garbage PDF refused in {time.monotonic() - t0:.1f} s")
    shot(d, "garbage")

    # the bomb: stopped by the renderer's limits, within the bound
    t0 = time.monotonic()
    d.find_element(By.ID, "pv-next").click()
    text_in(d, "#pv-name", "c-bomb.pdf")
    text_in(d, "#pv-error", "This PDF cannot be shown", timeout=BOUND)
    took = time.monotonic() - t0
    print(f"figure: hostile PDF refused in {took:.1f} s ({d.find_element(By.ID, 'pv-error').text})")
    assert took < BOUND, took
    shot(d, "bomb")

    # the server goes on: the first PDF again (from the cache)
    d.find_element(By.ID, "pv-next").click()
    text_in(d, "#pv-name", "a-script.pdf")
    wait_page(d, 1, 2)
    no_viewer(d)


run(main)
