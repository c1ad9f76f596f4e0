"""Markdown and JSON report of a bench run: absolute figures and ratios Kura/peer."""

ORDER = ["kura", "nginx-dav", "dufs", "rclone-dav", "rclone-s3", "ref"]
DAV_PEERS = ["nginx-dav", "dufs", "rclone-dav"]
S3_PEERS = ["rclone-s3"]

# What Kura must reach on CPU per unit of work (Kura/peer), from the issue:
# ahead of dufs, rclone and every S3 peer, within 1.5x of nginx.
CPU_TARGET = {"nginx-dav": 1.5, "dufs": 1.0, "rclone-dav": 1.0, "rclone-s3": 1.0}


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
        ["large", "small", "list"].index(r["workload"]),
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
                     _f(r["peak_rss_mib"], 1), r["errors"]])
    md.append(_table(["op", "server", "ms (median)", "CPU ms/listing", "peak RSS MiB",
                      "errors"], rows))

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

    errs = [r for r in ok if r.get("errors")]
    if errs or failed:
        md.append("\n## Errors\n")
        for r in errs:
            md.append(f"- {r['server']} {r['protocol']} {r['transport']} {r['workload']} "
                      f"{r['op']}: {r['errors']} errors, e.g. `{(r.get('error_samples') or [''])[0]}`")
        for r in failed:
            md.append(f"- {r['server']}: did not run: `{r['failed']}`")
    md.append("")
    data = {"meta": meta, "results": results, "ratios": rat}
    return "\n".join(md), data
