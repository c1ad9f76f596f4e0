"""Markdown and JSON report of a bench run: absolute figures and ratios Kura/peer."""

ORDER = ["kura", "kura-nosync", "nginx-dav", "dufs", "rclone-dav", "rclone-s3", "garage", "ref"]
DAV_PEERS = ["nginx-dav", "dufs", "rclone-dav"]
S3_PEERS = ["rclone-s3", "garage"]

# The general CPU target per peer (Kura/peer, CPU per unit of work): ahead of dufs, rclone and
# every S3 peer, within 1.5x of nginx. The targets of issue 20 (per workload) are in TARGETS.
CPU_TARGET = {"nginx-dav": 1.5, "dufs": 1.0, "rclone-dav": 1.0, "rclone-s3": 1.0, "garage": 1.0}

# Issue 20's targets, as ratios of server CPU per unit of work in the same run:
# (label, workload, op, protocol, transport, peer, limit); a limit of None is reported only.
RATIO_TARGETS = [
    ("small PUT vs rclone serve webdav", "small", "PUT", "webdav", "http", "rclone-dav", 1.0),
    ("small PUT vs rclone serve s3", "small", "PUT", "s3", "http", "rclone-s3", 1.0),
    ("small PUT vs dufs (reported)", "small", "PUT", "webdav", "http", "dufs", None),
    ("small PUT vs nginx (reported)", "small", "PUT", "webdav", "http", "nginx-dav", None),
    ("small S3 PUT vs Garage", "small", "PUT", "s3", "http", "garage", 1.0),
    ("small GET over WebDAV vs nginx", "small", "GET", "webdav", "http", "nginx-dav", 2.0),
    ("small S3 GET vs rclone serve s3", "small", "GET", "s3", "http", "rclone-s3", 1.0),
    ("small S3 GET vs Garage", "small", "GET", "s3", "http", "garage", 1.0),
    ("PROPFIND (named properties) vs nginx", "list", "PROPFIND", "webdav", "http", "nginx-dav",
     2.0),
    ("PROPFIND allprop vs rclone serve webdav", "list", "PROPFIND allprop", "webdav", "http",
     "rclone-dav", 1.0),
    ("ListObjectsV2 vs Garage", "list", "ListV2", "s3", "http", "garage", 1.0),
]
# The same small PUTs with `durable_commits = false` (server "kura-nosync": no fsync, as
# rclone, dufs and nginx run), reported beside the default's
NOSYNC_REPORTED = [
    ("small PUT, durable_commits = false, vs rclone serve webdav (reported)", "webdav",
     "rclone-dav"),
    ("small PUT, durable_commits = false, vs rclone serve s3 (reported)", "s3", "rclone-s3"),
    ("small PUT, durable_commits = false, vs dufs (reported)", "webdav", "dufs"),
]
RSS_AFTER_ALLPROP_MIB = 60
P99_MS = 20
# Issue 17's targets for encrypted buckets against plain ones on the same server: CPU s/GiB
# added to large transfers, and the share added to small-file operations.
ENC_ADDED_S_PER_GIB = 0.4
ENC_SMALL_SHARE = 0.10


def _f(v, nd=1):
    if v is None:
        return "–"
    if isinstance(v, float):
        if v != v:
            return "nan"
        if abs(v) >= 100:
            return f"{v:.0f}"
        if abs(v) >= 10:
            return f"{v:.{max(0, nd - 1)}f}" if nd > 1 else f"{v:.0f}"
        return f"{v:.{nd}f}" if abs(v) >= 1 else f"{v:.{nd + 1}f}"
    return str(v)


def _spread(r, key, nd):
    """The median with the range over repetitions, e.g. `3.07 (2.95–3.21)`."""
    runs = r.get("cpu_runs") or []
    if len(runs) < 2:
        return _f(r[key], nd)
    return f"{_f(r[key], nd)} ({_f(min(runs), nd)}–{_f(max(runs), nd)})"


def _ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def _r(v):
    return "–" if v is None else f"{v:.2f}"


def _key(r):
    return (
        ["large", "small", "list", "encryption"].index(r["workload"]),
        r["op"],
        {"webdav": 0, "s3": 1}.get(r["protocol"], 2),
        r["transport"],
        ORDER.index(r["server"]) if r["server"] in ORDER else 99,
    )


def _table(head, rows):
    out = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def _find(results, server, workload, op, transport, protocol=None):
    for r in results:
        if (
            r.get("server") == server
            and r.get("workload") == workload
            and r.get("op") == op
            and r.get("transport") == transport
            and (protocol is None or r.get("protocol") == protocol)
        ):
            return r
    return None


def ratios(results):
    """Kura/peer for every Kura row and every comparable peer row."""
    out = []
    for k in results:
        if k.get("server") != "kura" or k.get("failed"):
            continue
        peers = list(DAV_PEERS if k["protocol"] == "webdav" else S3_PEERS)
        if k["workload"] == "large":
            peers.append("ref")
        for p in peers:
            r = _find(results, p, k["workload"], k["op"], k["transport"])
            if r is None or r.get("failed"):
                continue
            w = k["workload"]
            row = {
                "workload": w,
                "op": k["op"],
                "protocol": k["protocol"],
                "transport": k["transport"],
                "peer": p,
            }
            if w == "large":
                row["throughput"] = _ratio(k["mib_s"], r["mib_s"])
                row["cpu"] = _ratio(k["cpu_s_per_gib"], r["cpu_s_per_gib"])
            elif w == "small":
                row["throughput"] = _ratio(k["ops_s"], r["ops_s"])
                row["cpu"] = _ratio(k["cpu_us_per_op"], r["cpu_us_per_op"])
                row["p50"] = _ratio(k["p50_ms"], r["p50_ms"])
                row["p99"] = _ratio(k["p99_ms"], r["p99_ms"])
            else:
                row["time"] = _ratio(k["ms"], r["ms"])
                row["cpu"] = _ratio(k["cpu_ms_per_list"], r["cpu_ms_per_list"])
            row["rss"] = _ratio(k["peak_rss_mib"], r["peak_rss_mib"])
            tgt = CPU_TARGET.get(p)
            row["cpu_target"] = tgt
            row["cpu_target_met"] = None if tgt is None or row["cpu"] is None else row["cpu"] <= tgt
            out.append(row)
    return out


def _cpu(r):
    for k in ("cpu_us_per_op", "cpu_ms_per_list", "cpu_s_per_gib"):
        if k in r:
            return r[k]
    return None


def encryption_rows(results):
    """Plain against encrypted bucket (same Kura server, same run), one row per operation:
    CPU per unit of each, what encryption adds, the ratio, and whether issue 17's target is
    met (None when a side is missing)."""
    out = []
    for op in ("large PUT", "large GET", "small PUT", "small GET"):
        p = e = None
        for r in results:
            if r.get("server") == "kura" and r.get("workload") == "encryption" and r["op"] == op:
                if r.get("bucket") == "plain":
                    p = r
                elif r.get("bucket") == "encrypted":
                    e = r
        if p is None or e is None:
            continue
        large = op.startswith("large")
        key = "cpu_s_per_gib" if large else "cpu_us_per_op"
        added = e[key] - p[key]
        ratio = _ratio(e[key], p[key])
        if large:
            met = added < ENC_ADDED_S_PER_GIB
            limit = f"< {ENC_ADDED_S_PER_GIB} s/GiB added"
        else:
            met = None if ratio is None else ratio - 1 < ENC_SMALL_SHARE
            limit = f"< {ENC_SMALL_SHARE:.0%} added"
        out.append({"op": op, "unit": "CPU s/GiB" if large else "CPU µs/op",
                    "plain": p[key], "encrypted": e[key], "added": added, "ratio": ratio,
                    "rate_plain": p["mib_s" if large else "ops_s"],
                    "rate_encrypted": e["mib_s" if large else "ops_s"],
                    "plain_runs": p.get("cpu_runs"), "encrypted_runs": e.get("cpu_runs"),
                    "limit": limit, "met": met})
    return out


def targets(results, meta):
    """Issue 20's targets, each with what this run measured and whether it is met (None: not
    measured in this run, e.g. a peer was skipped)."""
    out = []

    def add(label, measured, limit, met, how=""):
        out.append({"target": label, "measured": measured, "limit": limit, "met": met,
                    "how": how})

    enc_only = meta.get("mode") == "encryption rows"
    for label, w, op, proto, tr, peer, limit in [] if enc_only else RATIO_TARGETS:
        k = _find(results, "kura", w, op, tr, proto)
        r = _find(results, peer, w, op, tr)
        ratio = None if k is None or r is None else _ratio(_cpu(k), _cpu(r))
        lim = "–" if limit is None else f"≤ {limit:.1f}x"
        met = None if ratio is None or limit is None else ratio <= limit
        shown = None if ratio is None else f"{ratio:.2f}x"
        if ratio is None and k is not None and r is not None:
            shown = "peer's CPU below one tick"  # a --quick run's 10 ms resolution
        add(label, shown, lim, met)
    for label, proto, peer in [] if enc_only else NOSYNC_REPORTED:
        k = _find(results, "kura-nosync", "small", "PUT", "http", proto)
        r = _find(results, peer, "small", "PUT", "http")
        ratio = None if k is None or r is None else _ratio(_cpu(k), _cpu(r))
        add(label, None if ratio is None else f"{ratio:.2f}x", "–", None)
    k = _find(results, "kura", "list", "PROPFIND allprop", "http", "webdav")
    v = None if k is None else k.get("rss_after_mib")
    if not enc_only:
        add("server RSS after the allprop PROPFIND", None if v is None else f"{v:.0f} MiB",
            f"< {RSS_AFTER_ALLPROP_MIB} MiB", None if v is None else v < RSS_AFTER_ALLPROP_MIB)
    md5 = meta.get("md5_cpu_s_per_gib")
    for proto in () if enc_only else ("webdav", "s3"):
        for tr in ("http", "https"):
            k = _find(results, "kura", "large", "PUT", tr, proto)
            n = _find(results, "nginx-dav", "large", "PUT", tr)
            ratio = None
            if k is not None and n is not None and md5 is not None:
                ratio = _ratio(k["cpu_s_per_gib"] - md5, n["cpu_s_per_gib"])
            add(f"large PUT minus MD5 vs nginx PUT ({proto}, {tr})",
                None if ratio is None else f"{ratio:.2f}x", "≤ 1.0x",
                None if ratio is None else ratio <= 1.0,
                "" if md5 is None else f"MD5 {md5:.2f} CPU s/GiB subtracted")
    smalls = [r for r in results if r.get("server") == "kura" and r.get("workload") == "small"]
    if smalls:
        worst = max(smalls, key=lambda r: r["p99_ms"])
        add(f"small-file p99 at {worst.get('clients', '?')} clients (worst Kura row)",
            f"{worst['p99_ms']:.1f} ms ({worst['protocol']} {worst['op']})", f"< {P99_MS} ms",
            worst["p99_ms"] < P99_MS)
    for x in encryption_rows(results):
        shown = (f"{x['added']:+.3f} s/GiB ({x['plain']:.3f} → {x['encrypted']:.3f})"
                 if x["op"].startswith("large") else
                 f"{x['ratio'] - 1:+.1%} ({x['plain']:.0f} → {x['encrypted']:.0f} µs/op)"
                 if x["ratio"] is not None else None)
        add(f"encryption: {x['op']}, encrypted vs plain bucket (issue 17)", shown, x["limit"],
            x["met"], "same Kura server, S3 over plain HTTP")
    errors = sum(r.get("errors", 0) for r in results) + sum(1 for r in results if r.get("failed"))
    add("errors (every server, every workload)", str(errors), "0", errors == 0)
    return out


def build_report(meta, results):
    ok = sorted((r for r in results if not r.get("failed")), key=_key)
    failed = [r for r in results if r.get("failed")]
    rat = ratios(ok)
    sz = meta["sizes"]
    md = []
    md.append(f"# Kura benchmark ({meta['mode']} run, {meta['date']})\n")
    md.append(
        f"Host: {meta['host']}, Linux {meta['kernel']}. Kura: `{meta['kura_binary']}`"
        + (f" at {meta['git']}" if meta.get("git") else "")
        + f". Whole run: {meta['elapsed_s']:.0f} s.\n"
    )
    md.append("Servers:\n")
    for name, v in meta["versions"].items():
        md.append(f"- **{name}**: {v}")
    if meta["skipped"]:
        md.append("\nSkipped:\n")
        for name, why in meta["skipped"].items():
            md.append(f"- **{name}**: {why}")
    for n in meta.get("notes") or []:
        md.append(f"\n**Note:** {n}")
    reps = sz.get("reps", 1)
    md.append(
        f"\nEach large and small phase ran {reps} time(s); the tables give the median, and "
        f"for CPU the range over the repetitions in brackets.\n"
    )
    md.append(
        f"\nLarge: one file of {sz['large_bytes'] // (1 << 20)} MiB, PUT then GET, one connection. "
        f"Small: {sz['small_files']} files of {sz['small_bytes']} B, PUT then GET, "
        f"{sz['clients']} concurrent keep-alive clients, plain HTTP. "
        f"Listing: one folder/bucket of {sz['list_entries']} entries, PROPFIND Depth 1 or "
        f"ListObjectsV2 with every page of {sz.get('list_page', 1000)} keys, median of {sz['list_reps']}. "
        f"CPU is the server's user+system time from /proc/PID/stat (with child processes), "
        f"during the phase only. Peak RSS: {meta['rss']}.\n"
    )
    md.append(
        "**Which ratio decides:** the server's CPU per unit of work (s/GiB, µs/op, ms/listing). "
        "On these shared 2-core machines wall-clock figures of the same server move by up to 2x "
        "between runs; CPU per unit is stable. Wall-clock ratios (MiB/s, ops/s, ms) are shown "
        "beside it for information.\n"
    )

    enc_only = meta.get("mode") == "encryption rows"
    peers_from = len(md)  # the tables of every server, left out of an encryption-only run
    md.append("## Large files (MiB/s higher is better; CPU s/GiB and RSS lower are better)\n")
    rows = []
    for r in ok:
        if r["workload"] != "large":
            continue
        rows.append([r["op"], r["protocol"], r["transport"], r["server"], _f(r["mib_s"], 0),
                     _spread(r, "cpu_s_per_gib", 2), _f(r["peak_rss_mib"], 1), r["errors"]])
    md.append(_table(["op", "protocol", "transport", "server", "MiB/s", "CPU s/GiB",
                      "peak RSS MiB", "errors"], rows))

    md.append("\n## Small files (ops/s higher is better; latency, CPU and RSS lower are better)\n")
    rows = []
    for r in ok:
        if r["workload"] != "small":
            continue
        rows.append([r["op"], r["protocol"], r["server"], _f(r["ops_s"], 0), _f(r["p50_ms"], 2),
                     _f(r["p99_ms"], 2), _spread(r, "cpu_us_per_op", 0), _f(r["peak_rss_mib"], 1),
                     r["errors"]])
    md.append(_table(["op", "protocol", "server", "ops/s", "p50 ms", "p99 ms", "CPU µs/op",
                      "peak RSS MiB", "errors"], rows))

    md.append("\n## Listing (all lower is better)\n")
    rows = []
    for r in ok:
        if r["workload"] != "list":
            continue
        rows.append([r["op"], r["server"], _f(r["ms"], 1), _f(r["cpu_ms_per_list"], 1),
                     _f(r["peak_rss_mib"], 1), _f(r.get("rss_after_mib"), 1), r["errors"]])
    md.append(_table(["op", "server", "ms (median)", "CPU ms/listing", "peak RSS MiB",
                      "RSS after MiB", "errors"], rows))
    md.append(
        "\n`PROPFIND` asks for the six properties rclone asks for; `PROPFIND allprop` is what "
        "Windows Explorer sends (Depth 1, no body, which RFC 4918 defines as allprop). RSS after: "
        "the server's resident memory 1 s after the last listing was answered.\n"
    )
    if enc_only:
        del md[peers_from:]

    enc = encryption_rows(ok)
    if enc:
        md.append(
            "\n## Encryption at rest (Kura: plain bucket vs encrypted bucket)\n\n"
            "The same Kura server, S3 over plain HTTP, a plain bucket and an encrypted one "
            "(AES-256-GCM in 64 KiB segments, docs/encryption.md), the two alternating within "
            "each repetition. Large: one file, PUT then GET; small: the small-file workload "
            "above, its GETs in at least 12 alternating pairs after the repetitions (a small "
            "GET's CPU moves by about 30% between phases here; the median of 3 did not settle). "
            "Added: encrypted minus plain; ratio: encrypted/plain.\n"
        )
        rows = []
        for x in enc:
            nd = 3 if x["op"].startswith("large") else 0
            spread = lambda v, runs: (f"{_f(v, nd)} ({_f(min(runs), nd)}–{_f(max(runs), nd)})"
                                      if runs and len(runs) > 1 else _f(v, nd))
            rows.append([x["op"], x["unit"], spread(x["plain"], x["plain_runs"]),
                         spread(x["encrypted"], x["encrypted_runs"]),
                         f"{x['added']:+.{nd}f}", _r(x["ratio"]),
                         f"{_f(x['rate_plain'], 0)} / {_f(x['rate_encrypted'], 0)}"])
        md.append(_table(["op", "unit", "plain", "encrypted", "added", "ratio",
                          "MiB/s or ops/s (plain / encrypted)"], rows))

    tg = targets(ok + failed, meta)
    md.append(
        "\n## Targets (issues 20 and 17)\n\n"
        "Ratios of the server's CPU per unit of work, Kura/peer (issue 20) or encrypted/plain "
        "bucket (issue 17), plain HTTP, in this run. "
        "*not measured*: the peer or workload did not run (see Skipped).\n"
    )

    def verdict(x):
        if x["measured"] is None:
            return "not measured"
        if x["met"] is None:
            return "–"
        return "met" if x["met"] else "**not met**"

    md.append(_table(["target", "measured", "limit", "verdict", "note"],
                     [[x["target"], x["measured"] or "–", x["limit"], verdict(x), x["how"]]
                      for x in tg]))

    ratios_from = len(md)
    md.append(
        "\n## Ratios Kura/peer\n\n"
        "Above 1 means Kura is higher. For MiB/s and ops/s higher is better (a ratio above 1 is "
        "Kura ahead); for CPU, latency, time and RSS lower is better (a ratio below 1 is Kura "
        "ahead). The CPU target is the issue's: at most 1.0 against dufs, rclone and S3 peers, "
        "at most 1.5 against nginx; the reference has none.\n"
    )

    def met(x):
        return "–" if x["cpu_target_met"] is None else ("yes" if x["cpu_target_met"] else "**no**")

    rows = [[x["op"], x["protocol"], x["transport"], x["peer"], _r(x["throughput"]),
             _r(x["cpu"]), _r(x["rss"]), _r(x["cpu_target"]), met(x)]
            for x in rat if x["workload"] == "large"]
    md.append("### Large\n")
    md.append(_table(["op", "protocol", "transport", "vs", "MiB/s ↑", "CPU s/GiB ↓ (decides)",
                      "RSS ↓", "CPU target", "met"], rows))
    rows = [[x["op"], x["protocol"], x["peer"], _r(x["throughput"]), _r(x["p50"]), _r(x["p99"]),
             _r(x["cpu"]), _r(x["rss"]), _r(x["cpu_target"]), met(x)]
            for x in rat if x["workload"] == "small"]
    md.append("\n### Small files\n")
    md.append(_table(["op", "protocol", "vs", "ops/s ↑", "p50 ↓", "p99 ↓", "CPU µs/op ↓ (decides)",
                      "RSS ↓", "CPU target", "met"], rows))
    rows = [[x["op"], x["peer"], _r(x["time"]), _r(x["cpu"]), _r(x["rss"]), _r(x["cpu_target"]),
             met(x)] for x in rat if x["workload"] == "list"]
    md.append("\n### Listing\n")
    md.append(_table(["op", "vs", "ms ↓", "CPU ms/listing ↓ (decides)", "RSS ↓", "CPU target",
                      "met"], rows))
    if enc_only:
        del md[ratios_from:]

    errs = [r for r in ok if r.get("errors")]
    if errs or failed:
        md.append("\n## Errors\n")
        for r in errs:
            md.append(f"- {r['server']} {r['protocol']} {r['transport']} {r['workload']} "
                      f"{r['op']}: {r['errors']} errors, e.g. `{(r.get('error_samples') or [''])[0]}`")
        for r in failed:
            md.append(f"- {r['server']}: did not run: `{r['failed']}`")
    md.append("")
    data = {"meta": meta, "results": results, "ratios": rat, "targets": tg, "encryption": enc}
    return "\n".join(md), data
