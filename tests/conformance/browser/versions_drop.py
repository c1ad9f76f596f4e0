"""A file's versions in its details, an older one restored; and a file dropped on the page
(a drop event carrying a File, as a desktop drag delivers) is uploaded into the folder."""

from kura_browser import *

DROP = """
const dt = new DataTransfer();
dt.items.add(new File(["dropped bytes\\n"], "dropped.txt", { type: "text/plain" }));
document.dispatchEvent(new DragEvent("dragover", { dataTransfer: dt, bubbles: true, cancelable: true }));
document.dispatchEvent(new DragEvent("drop", { dataTransfer: dt, bubbles: true, cancelable: true }));
"""


def main(d):
    sign_in(d)
    open_folder(d, "/web")
    wait_names(d, ["notes.txt"])
    details(d, "notes.txt")
    d.find_element(By.ID, "d-versions").click()
    visible(d, "#d-versions-box")
    # the kept (noncurrent) versions: the 3-byte first one
    text_in(d, "#d-version-list", " 3 B")
    items = d.find_elements(By.CSS_SELECTOR, "#d-version-list li")
    old = next(li for li in items if " 3 B" in li.text)
    shot(d, "versions")
    old.find_element(By.TAG_NAME, "button").click()
    text_in(d, "#status", "Restored")

    d.execute_script(DROP)
    uploads_done(d, 1)
    wait_names(d, ["dropped.txt", "notes.txt"])


run(main)
