"""Audio and video previews: a one-second WAV written here with Python's wave module (and
uploaded over WebDAV) and a small WebM video (the test, web_ui.rs, put it in /web/media) play
in the preview's <audio> and <video>: their metadata loads (readyState, a duration > 0, the
video's size), and the browser's network log shows the server answering the media's Range
requests with 206 and a Content-Range."""

import io
import json
import math
import struct
import wave

import requests
import urllib3

from kura_browser import *


def tone_wav(seconds=1.0, rate=8000, hz=440):
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * hz * i / rate)))
                               for i in range(int(seconds * rate))))
    return out.getvalue()


def media_ready(d, tag):
    """The preview's <audio>/<video> once its metadata has loaded: readyState, duration, size."""
    js = (f"const m = document.querySelector('#pv-body {tag}');"
          "return m && m.readyState >= 1 && m.duration > 0 ? "
          "{state: m.readyState, duration: m.duration, width: m.videoWidth || 0, src: m.currentSrc} : null")
    return wait(d, lambda d: d.execute_script(js), timeout=30, what=f"the {tag}'s metadata")


def ranged_answers(d):
    """(url, status, Content-Range) of every answer in Chromium's network log so far."""
    out = []
    for e in d.get_log("performance"):
        m = json.loads(e["message"])["message"]
        if m.get("method") == "Network.responseReceived":
            r = m["params"]["response"]
            headers = {k.lower(): v for k, v in r.get("headers", {}).items()}
            out.append((r["url"], r["status"], headers.get("content-range")))
    return out


def main(d):
    urllib3.disable_warnings()
    wav = tone_wav()
    r = requests.put(BASE + "/dav/web/media/tone.wav", data=wav, auth=(USER, PASSWORD), verify=False)
    assert r.status_code == 201, (r.status_code, r.text)

    sign_in(d)
    open_folder(d, "/web/media")
    wait_names(d, ["clip.webm", "tone.wav"])
    seen = []

    retry(lambda: row_of(d, "clip.webm").find_element(By.CSS_SELECTOR, ".name").click())
    visible(d, "#preview")
    text_in(d, "#pv-name", "clip.webm")
    v = media_ready(d, "video")
    assert v["width"] > 0, v
    assert "download?" in v["src"] and "inline=1" in v["src"], v
    print(f"video: readyState {v['state']}, duration {v['duration']:.2f} s, {v['width']} px wide")
    shot(d, "video")
    seen += ranged_answers(d)

    d.find_element(By.ID, "pv-next").click()
    text_in(d, "#pv-name", "tone.wav")
    a = media_ready(d, "audio")
    assert 0.9 < a["duration"] < 1.1, a
    print(f"audio: readyState {a['state']}, duration {a['duration']:.2f} s")
    shot(d, "audio")
    seen += ranged_answers(d)

    for name in ("clip.webm", "tone.wav"):
        mine = [x for x in seen if "/api/user/v1/download?" in x[0] and name.replace(".", "%2E") in x[0].replace(".", "%2E")]
        assert mine, f"no request for {name} in the network log: {seen}"
        partial = [x for x in mine if x[1] == 206 and (x[2] or "").startswith("bytes ")]
        assert partial, f"no 206 answer with a Content-Range for {name}: {mine}"
        print(f"{name}: {partial[0][1]} {partial[0][2]}")


run(main, network=True)
