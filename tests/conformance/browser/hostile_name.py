"""A file named `<img src=x onerror=alert(1)>.txt` (put over WebDAV by the test) is shown as
text: no alert fires, and the page holds no <img> element. A file named
`invoice_<U+202E>fdp.exe` (a right-to-left override) does not read as `invoice_exe.pdf` on
screen: the characters of its name, in the order the browser lays them out, show the
control as a visible marker."""

from kura_browser import *

NAME = "<img src=x onerror=alert(1)>.txt"
SPOOF = "invoice_\u202efdp.exe"

# The characters of the listed name starting with `invoice_`, in the order they are laid out
# on screen (left to right), zero-width ones left out: what a person reads.
ON_SCREEN = """
const n = [...document.querySelectorAll('#list-body .row .name')]
  .find((e) => e.textContent.startsWith('invoice_'));
if (!n) return null;
const walk = document.createTreeWalker(n, NodeFilter.SHOW_TEXT);
const seen = [];
for (let t = walk.nextNode(); t; t = walk.nextNode()) {
  for (let i = 0; i < t.length; i++) {
    const r = document.createRange();
    r.setStart(t, i);
    r.setEnd(t, i + 1);
    const b = r.getBoundingClientRect();
    if (b.width > 0) seen.push([b.left, t.data[i]]);
  }
}
return seen.sort((a, b) => a[0] - b[0]).map((x) => x[1]).join('');
"""


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
    # the right-to-left override: shown as a marker, the name reads as it is
    text_in(d, "#list", "invoice_")
    read = d.execute_script(ON_SCREEN)
    assert read is not None, "the invoice is not listed"
    assert "exe.pdf" not in read, f"the name reads as {read!r}"
    assert read == "invoice_\u27e8U+202E\u27e9fdp.exe", f"the name reads as {read!r}"
    shown = [n for n in names(d) if n.startswith("invoice_")]
    assert shown and "\u202e" not in shown[0], f"the control is in the page: {shown!r}"


run(main)
