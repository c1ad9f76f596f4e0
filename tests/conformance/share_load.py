"""Bounded loads against a share link on a Kura server on 127.0.0.1 (plain HTTP), from two
loopback source addresses. Prints one JSON object; exits non-zero when it cannot run.

  share_load.py rate PORT PATH SECONDS RPS
      127.0.0.1 sends RPS requests per second (4 paced threads, keep-alive) for SECONDS while
      127.0.0.2 sends 10 per second; counts 200s and 429s of each and the elapsed time.
  share_load.py brute PORT PATH ATTEMPTS WRONG RIGHT
      127.0.0.1 tries ATTEMPTS wrong passwords (Basic), then the right one; then 127.0.0.2
      tries the right one. Reports every status and the Retry-After of the first 429.
"""
import base64
import http.client
import json
import sys
import threading
import time


def conn(source, port):
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))


def get(c, path, headers=None):
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    r.read()
    return r.status, r.getheader("Retry-After")


def paced(source, port, path, seconds, rps, out, lock):
    c = conn(source, port)
    start = time.monotonic()
    n = 0
    counts = {}
    while True:
        due = start + n / rps
        now = time.monotonic()
        if due - start >= seconds:
            break
        if due > now:
            time.sleep(due - now)
        try:
            status, _ = get(c, path)
        except (http.client.HTTPException, OSError):
            c.close()
            c = conn(source, port)
            status = "error"
        counts[status] = counts.get(status, 0) + 1
        n += 1
    with lock:
        for k, v in counts.items():
            out[str(k)] = out.get(str(k), 0) + v
    c.close()


def rate(port, path, seconds, rps):
    lock = threading.Lock()
    main, other = {}, {}
    threads = [
        threading.Thread(target=paced, args=("127.0.0.1", port, path, seconds, rps / 4, main, lock))
        for _ in range(4)
    ]
    threads.append(threading.Thread(target=paced, args=("127.0.0.2", port, path, seconds, 10, other, lock)))
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    print(json.dumps({"elapsed": elapsed, "main": main, "other": other}))


def basic(password):
    return {"Authorization": "Basic " + base64.b64encode(b"visitor:" + password.encode()).decode()}


def brute(port, path, attempts, wrong, right):
    c = conn("127.0.0.1", port)
    statuses = []
    retry_after = None
    start = time.monotonic()
    for i in range(attempts):
        status, ra = get(c, path, basic(f"{wrong}-{i}"))
        statuses.append(status)
        if status == 429 and retry_after is None:
            retry_after = ra
    elapsed = time.monotonic() - start
    right_same, _ = get(c, path, basic(right))
    c.close()
    right_other, _ = get(conn("127.0.0.2", port), path, basic(right))
    print(json.dumps({
        "statuses": statuses,
        "elapsed": elapsed,
        "retry_after": retry_after,
        "right_same_ip": right_same,
        "right_other_ip": right_other,
    }))


if __name__ == "__main__":
    mode, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    if mode == "rate":
        rate(port, path, float(sys.argv[4]), float(sys.argv[5]))
    elif mode == "brute":
        brute(port, path, int(sys.argv[4]), sys.argv[5], sys.argv[6])
    else:
        sys.exit(f"unknown mode {mode}")
