#!/usr/bin/env python3
"""Fail when the import graph of src/ has a loop or an upward edge.

Layers (top to bottom) are listed in LAYERS; a module may use modules of a lower layer
only. Inside one module, its files (other than mod.rs, the module's root) must not
import each other in a loop. Test code (`#[cfg(test)]` modules and tests.rs) is skipped.
Run: python3 scripts/layers.py [--graph]
"""
import os
import re
import sys

# Top to bottom; modules on one line are peers and must not import each other.
LAYERS = [
    ["main"],                       # the binary: parses the command line, runs one command
    ["cli"],                        # admin commands
    ["serve"],                      # the server: builds everything, starts the listener
    ["http"],                       # listener, TLS accept, router, request classifiers
    ["admin"],                      # the admin REST API and the service the CLI shares
    ["dav", "s3", "share"],         # protocol adapters: translate, hold no rule
    ["replication"],                # shipping changes to peers (calls the core)
    ["share_links"],                # the share-link service: tokens, passwords, expiry
    ["auth", "setup"],              # identities (passwords, access keys -> Caller); the core built once
    ["vfs"],                        # the core: every namespace rule
    ["vault", "tls"],               # sealed secrets; certificates and ACME
    ["store", "limits"],            # SQL metadata; rate limits and throttles
    ["install"],                    # finding the data dir
    ["config"],                     # settings
    ["wire", "causes"],             # leaves: body types and markers; error texts
]

# Edges that the layer order allows but the design does not: adapters get what they need
# from the core or the identity layer, never from the metadata store or the vault.
FORBIDDEN = {(a, b) for a in ("dav", "s3", "share") for b in ("store", "vault")}

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(rel):
    """src-relative file path -> list of module path segments."""
    parts = rel[:-3].split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def strip_tests(text):
    """Drop `#[cfg(test)] mod x { ... }` blocks (brace matched)."""
    out, i = [], 0
    pat = re.compile(r"#\[cfg\(test\)\]\s*(pub\s+)?mod\s+\w+\s*\{")
    while True:
        m = pat.search(text, i)
        if not m:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:m.start()])
        depth, j = 1, m.end()
        while j < len(text) and depth:
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
            j += 1
        i = j


def strip_comments(text):
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return re.sub(r"//[^\n]*", "", text)


def expand_use(body):
    """Expand a use tree `a::{b, c::{d}}` into paths ['a::b', 'a::c::d']."""
    body = body.replace(" ", "").replace("\n", "")
    def rec(prefix, s):
        res = []
        if "{" not in s:
            for item in s.split(","):
                if item:
                    res.append(prefix + item.split("as")[0] if False else prefix + item)
            return res
        i = s.index("{")
        head = s[:i]
        inner = s[i + 1:s.rindex("}")]
        depth, start, items = 0, 0, []
        for k, ch in enumerate(inner):
            if ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
            elif ch == "," and depth == 0:
                items.append(inner[start:k])
                start = k + 1
        items.append(inner[start:])
        for it in items:
            if it:
                res += rec(prefix + head, it)
        return res
    return rec("", body)


def main():
    files = {}
    for root, _, names in os.walk(SRC):
        for n in names:
            if n.endswith(".rs"):
                rel = os.path.relpath(os.path.join(root, n), SRC).replace(os.sep, "/")
                if n == "tests.rs":
                    continue
                files[rel] = module_of(rel)
    by_mod = {tuple(m): rel for rel, m in files.items()}

    def resolve(segs):
        """Longest module prefix of segs that is a file."""
        for k in range(len(segs), 0, -1):
            if tuple(segs[:k]) in by_mod:
                return by_mod[tuple(segs[:k])]
        return None

    edges = {}
    for rel, mod in files.items():
        text = strip_comments(strip_tests(open(os.path.join(SRC, rel), encoding="utf-8").read()))
        paths = []
        for m in re.finditer(r"\buse\s+([^;]+);", text):
            paths += expand_use(m.group(1))
        paths += re.findall(r"(?<![\w:])((?:crate|super|self)(?:::\w+)+)", text)
        targets = set()
        for p in paths:
            segs = [s for s in p.split("::") if s]
            if not segs:
                continue
            base = mod
            if segs[0] == "crate":
                segs = segs[1:]
            elif segs[0] == "super":
                cur = list(base)
                while segs and segs[0] == "super":
                    cur = cur[:-1]
                    segs = segs[1:]
                segs = cur + segs
            elif segs[0] == "self":
                segs = list(base) + segs[1:]
            else:
                # a plain `use child::x` in a module root names its own child
                if tuple(list(base) + segs[:1]) in by_mod and segs[0] not in ("std",):
                    segs = list(base) + segs
                else:
                    continue
            t = resolve(segs)
            if t and t != rel:
                targets.add(t)
        edges[rel] = targets

    rank = {}
    for i, row in enumerate(LAYERS):
        for m in row:
            rank[m] = i
    problems = []
    top = lambda rel: files[rel][0] if files[rel] else "main"
    for rel, ts in sorted(edges.items()):
        a = top(rel)
        if a not in rank:
            problems.append(f"{rel}: top-level module '{a}' has no layer in scripts/layers.py")
            continue
        for t in sorted(ts):
            b = top(t)
            if a == b:
                continue
            if b not in rank:
                continue
            if (a, b) in FORBIDDEN:
                problems.append(f"forbidden import: {rel} -> {t} ({a} must not use {b})")
            elif rank[b] <= rank[a]:
                kind = "sideways" if rank[b] == rank[a] else "upward"
                problems.append(f"{kind} import: {rel} -> {t} ({a} must not use {b})")

    # loops between files of one module, the module root (mod.rs) aside
    def is_root(rel):
        mod = files[rel]
        return rel.endswith("mod.rs") or rel == "main.rs" or any(
            len(m) > len(mod) and m[: len(mod)] == mod for m in files.values())
    graph = {r: {t for t in ts if not is_root(t) and top(t) == top(r)} for r, ts in edges.items() if not is_root(r)}
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]
    sys.setrecursionlimit(10000)
    def strong(v):
        index[v] = low[v] = counter[0]; counter[0] += 1
        stack.append(v); on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                strong(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))
    for v in sorted(graph):
        if v not in index:
            strong(v)
    for c in sccs:
        problems.append("import loop: " + " <-> ".join(c))

    if "--graph" in sys.argv:
        for rel, ts in sorted(edges.items()):
            print(rel, "->", ", ".join(sorted(ts)))
    if problems:
        print("\n".join(problems))
        print(f"layers.py: {len(problems)} problem(s); the layers are drawn in docs/architecture.md")
        return 1
    print(f"layers.py: {len(files)} files, no loop, no upward import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
