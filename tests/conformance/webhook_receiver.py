"""A webhook receiver for the notification tests: records every POST as one JSON line
(event id, event, path, whether the X-Kura-Signature HMAC matched) in the file given;
answers 500 to paths under /fail/ so the sender's retries can be watched.

Usage: webhook_receiver.py PORT SECRET OUTFILE
"""
import hashlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, SECRET, OUT = int(sys.argv[1]), sys.argv[2].encode(), sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        sig = self.headers.get("x-kura-signature", "")
        parts = dict(p.split("=", 1) for p in sig.split(",") if "=" in p)
        want = hmac.new(SECRET, parts.get("t", "").encode() + b"." + body, hashlib.sha256).hexdigest()
        ok = hmac.compare_digest(want, parts.get("sha256", ""))
        ev = json.loads(body)
        with open(OUT, "a") as f:
            f.write(json.dumps({"id": self.headers.get("x-kura-event-id"), "event": ev.get("event"),
                                "path": ev.get("path"), "actor": ev.get("actor"), "valid": ok,
                                "url": self.path}) + "\n")
        self.send_response(500 if self.path.startswith("/fail/") else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
