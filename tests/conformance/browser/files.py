"""The files view: upload three files and a folder by the file inputs, browse, sort, rename,
change the mode, move and copy with the folder picker, make a folder, delete, restore from the trash, and download
a zip of a selection checked entry by entry. The test checks the stored bytes afterwards."""

import glob
import os
import tempfile
import zipfile

from kura_browser import *

SRC = tempfile.mkdtemp(prefix="kura-upload-")
FILES = {"a.txt": b"alpha\n" * 10, "b.txt": b"bravo\n" * 1000, "c.txt": b"charlie\n" * 100}
# an empty file too: it is whole once its upload is created (no PATCH)
ALBUM = {"album/one.txt": b"one\n", "album/deeper/two.txt": b"two\n" * 50, "album/empty.txt": b""}


def write(rel, body):
    p = os.path.join(SRC, rel)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "wb") as f:
        f.write(body)
    return p


def main(d):
    paths = [write(n, b) for n, b in FILES.items()]
    for n, b in ALBUM.items():
        write(n, b)
    sign_in(d)
    open_folder(d, "/web")
    # three files by the file picker, then a whole folder
    d.find_element(By.ID, "pick-files").send_keys("\n".join(paths))
    uploads_done(d, 3)
    d.find_element(By.ID, "pick-folder").send_keys(os.path.join(SRC, "album"))
    uploads_done(d, 6)
    wait_names(d, ["album", "a.txt", "b.txt", "c.txt"])
    shot(d, "uploaded")
    d.find_element(By.ID, "up-close").click()

    # sorting: by size, largest first on the second click; folders stay on top
    d.find_element(By.CSS_SELECTOR, "[data-sort=size]").click()
    wait(d, lambda d: names(d) == ["album", "a.txt", "c.txt", "b.txt"], what="sorted by size")
    d.find_element(By.CSS_SELECTOR, "[data-sort=size]").click()
    wait(d, lambda d: names(d) == ["album", "b.txt", "c.txt", "a.txt"], what="sorted by size, descending")
    d.find_element(By.CSS_SELECTOR, "[data-sort=name]").click()

    # browse into the uploaded folder and back by the breadcrumbs
    retry(lambda: row_of(d, "album").find_element(By.CSS_SELECTOR, ".name").click())
    wait_names(d, ["deeper", "one.txt"])
    next(b for b in d.find_elements(By.CSS_SELECTOR, "#crumbs button") if b.text == "web").click()
    wait_names(d, ["album", "a.txt"])

    # rename a.txt, then change its mode
    details(d, "a.txt")
    d.find_element(By.ID, "d-rename").click()
    answer(d, "renamed.txt")
    wait_names(d, ["renamed.txt"], gone=["a.txt"])
    details(d, "renamed.txt")
    f = d.find_element(By.ID, "d-attrs")
    mode = f.find_element(By.NAME, "mode")
    mode.clear()
    mode.send_keys("0600")
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(d, lambda d: retry(lambda: "0600" in row_of(d, "renamed.txt").text), what="mode 0600 shown")

    # move b.txt into album/deeper with the folder picker
    select(d, "b.txt")
    d.find_element(By.ID, "sel-move").click()
    pick_folder(d, "album", "deeper")
    wait_names(d, ["renamed.txt"], gone=["b.txt"])

    # copy renamed.txt into album, and make a new folder
    select(d, "renamed.txt")
    d.find_element(By.ID, "sel-copy").click()
    pick_folder(d, "album")
    text_in(d, "#status", "Done: 1")
    d.find_element(By.ID, "new-folder").click()
    answer(d, "made")
    wait_names(d, ["made", "renamed.txt"])
    retry(lambda: row_of(d, "renamed.txt").find_element(By.CSS_SELECTOR, "input[type=checkbox]").click())

    # delete c.txt, then restore it from the trash
    select(d, "c.txt")
    d.find_element(By.ID, "sel-delete").click()
    wait_names(d, ["renamed.txt"], gone=["c.txt"])
    d.get(BASE + "/app/#/trash")
    text_in(d, "#trash-list", "/web/c.txt")
    shot(d, "trash")
    li = next(li for li in d.find_elements(By.CSS_SELECTOR, "#trash-list li") if "/web/c.txt" in li.text)
    li.find_element(By.TAG_NAME, "button").click()
    text_in(d, "#status", "Restored")
    open_folder(d, "/web")
    wait_names(d, ["album", "renamed.txt", "c.txt"])

    # a zip of a selection, checked entry by entry
    select(d, "album", "renamed.txt")
    shot(d, "selection")
    d.find_element(By.ID, "sel-zip").click()
    wait(d, lambda d: glob.glob(os.path.join(DOWNLOADS, "*.zip")), 60, "the zip download")
    zpath = glob.glob(os.path.join(DOWNLOADS, "*.zip"))[0]
    wait(d, lambda d: not glob.glob(os.path.join(DOWNLOADS, "*.crdownload")), 60, "the zip to finish")
    with zipfile.ZipFile(zpath) as z:
        got = {i.filename: z.read(i) for i in z.infolist() if not i.filename.endswith("/")}
    want = {
        "renamed.txt": FILES["a.txt"],
        "album/one.txt": ALBUM["album/one.txt"],
        "album/empty.txt": b"",
        "album/renamed.txt": FILES["a.txt"],
        "album/deeper/two.txt": ALBUM["album/deeper/two.txt"],
        "album/deeper/b.txt": FILES["b.txt"],
    }
    assert got == want, f"zip entries {sorted(got)} != {sorted(want)}"
    print(f"zip {os.path.basename(zpath)}: {len(got)} entries match")


run(main)
