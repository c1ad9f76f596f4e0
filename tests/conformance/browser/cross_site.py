"""A page of another origin posts a form to the user API while the browser is signed in:
refused, and nothing changes (the deleted file stays in the trash)."""

import http.server
import threading

from kura_browser import *

TARGET = BASE + "/api/user/v1/restore"
# a JSON body smuggled in a text/plain form: name + "=" + value
EVIL = f"""<!doctype html><html><body>
<form id="f" method="POST" enctype="text/plain" action="{TARGET}">
<input type="hidden" name='{{"path":"/web/deleted.txt","x":"' value='"}}'>
<button id="go" type="submit">win a prize</button></form></body></html>"""


class Evil(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = EVIL.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def main(d):
    srv = http.server.HTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    sign_in(d)
    # another site: localhost, another port, plain HTTP
    d.get(f"http://localhost:{srv.server_address[1]}/")
    d.find_element(By.ID, "go").click()
    wait(d, lambda d: "another origin" in d.page_source or "403" in d.title, what="refusal")
    assert "another origin" in d.page_source, d.page_source
    shot(d, "refused")
    srv.shutdown()
    # still signed in, and the deleted file was not restored
    d.get(BASE + "/app/")
    visible(d, "#who")
    d.console.clear()
    d.get_log("browser")


run(main)
