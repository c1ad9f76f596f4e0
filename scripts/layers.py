#!/usr/bin/env python3
"""Fail when the import graph of src/ has a loop or an upward edge.

Layers (top to bottom) are listed in LAYERS; a module may use modules of a lower layer
only. Inside one module, its files (other than mod.rs, the module's root) must not
import each other in a loop, directly or through the root's `pub use`. An import is any
path through `crate`, `self`, `super` or an alias of them, in `use` trees or in code;
comments, doc comments, string and char literals and `#[cfg(test)]` items are not code.
Files a parent declares only under `#[cfg(test)]` are skipped; `#[path]` and `include!`
are refused, since they put a file's code where the scan cannot follow it.
Run: python3 scripts/layers.py [--graph | --self-test]
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
    ["admin", "backup"],            # the admin REST API and the service the CLI shares; backups
    ["dav", "s3", "share", "app", "user_api"],  # protocol adapters, the browser app, the user API: translate, hold no rule
    ["replication", "notify", "delivery"],  # shipping changes to peers; event notifications; serving files and zips
    ["share_links", "sessions"],    # the share-link service; browser sessions and two-factor
    ["auth", "setup"],              # identities (passwords, access keys -> Caller); the core built once
    ["vfs"],                        # the core: every namespace rule
    ["vault", "tls", "seal"],       # sealed secrets; certificates and ACME; the sealed format of encrypted buckets
    ["store", "limits"],            # SQL metadata; rate limits and throttles
    ["install"],                    # finding the data dir
    ["config"],                     # settings
    ["wire", "causes", "metrics"],  # leaves: body types and markers; error texts; counters
]

# Edges that the layer order allows but the design does not: adapters get what they need
# from the core or the identity layer, never from the metadata store or the vault.
FORBIDDEN = {(a, b) for a in ("dav", "s3", "share", "app", "user_api") for b in ("store", "vault")}

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(rel):
    """src-relative file path -> list of module path segments."""
    if rel == "main.rs":
        return []
    parts = rel[:-3].split("/")
    if parts[-1] == "mod":
        parts = parts[:-1]
    return parts


def code_only(text):
    """Blank comments (doc comments included), string, byte-string, raw-string and char
    literals, keeping newlines, so only code is left for the import scan."""
    out, i, n = [], 0, len(text)
    def blank(s):
        return "".join(c if c == "\n" else " " for c in s)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i)); i = j
        elif text.startswith("/*", i):
            depth, j = 1, i + 2
            while j < n and depth:
                if text.startswith("/*", j):
                    depth += 1; j += 2
                elif text.startswith("*/", j):
                    depth -= 1; j += 2
                else:
                    j += 1
            out.append(blank(text[i:j])); i = j
        elif c == "r" and (i == 0 or not (text[i - 1].isalnum() or text[i - 1] == "_")
                           or (text[i - 1] in "bc" and (i == 1 or not (text[i - 2].isalnum() or text[i - 2] == "_")))) \
                and re.match(r'r#*"', text[i:i + 300]):
            hashes = re.match(r'r(#*)"', text[i:]).group(1)
            end = text.find('"' + hashes, i + len(hashes) + 2)
            j = n if end < 0 else end + 1 + len(hashes)
            out.append(blank(text[i:j])); i = j
        elif c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(blank(text[i:j])); i = j
        elif c == "'":
            # a char literal ('x', '\n', '\u{..}'), else a lifetime or label
            m = re.match(r"'(\\(u\{[0-9a-fA-F_]*\}|x..|.)|[^\\'\n])'", text[i:i + 16])
            if m:
                out.append(" " * len(m.group(0))); i += len(m.group(0))
            else:
                out.append(c); i += 1
        else:
            out.append(c); i += 1
    return "".join(out)


CFG_TEST = re.compile(r"#\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]")


def skip_attr(text, i):
    """Index after the attribute `#[...]` (or `#![...]`) starting at i."""
    j = text.index("[", i)
    depth = 0
    while j < len(text):
        if text[j] == "[":
            depth += 1
        elif text[j] == "]":
            depth -= 1
            if depth == 0:
                return j + 1
        j += 1
    return j


def split_tests(code):
    """(code without `#[cfg(test)]` items, text of those items). `code` is code_only()'s
    output, so braces in strings and comments cannot mislead the matching."""
    out, tests, i = [], [], 0
    while True:
        m = CFG_TEST.search(code, i)
        if not m:
            out.append(code[i:])
            return "".join(out), "".join(tests)
        out.append(code[i:m.start()])
        j = m.end()
        while True:  # further attributes of the same item
            k = re.match(r"\s*#\s*\[", code[j:])
            if not k:
                break
            j = skip_attr(code, j + k.start() + k.group(0).index("#"))
        depth = 0
        while j < len(code):  # the item: up to `;` or its closing brace, at depth 0
            ch = code[j]
            j += 1
            if ch in "([{":
                depth += 1
            elif ch in ")]}":
                depth -= 1
                if depth == 0 and ch == "}":
                    break
            elif ch == ";" and depth == 0:
                break
        tests.append(code[m.start():j])
        out.append("\n" * code[m.start():j].count("\n"))
        i = j


def normalize(code):
    """`crate :: r#store` -> `crate::store`: spacing around `::` and raw identifiers."""
    code = re.sub(r"\s*::\s*", "::", code)
    return re.sub(r"(?<![\w#])r#(?=[A-Za-z_])", "", code)


def expand_use(body):
    """Expand a use tree `a::{b, c::{d as e}}` into [(path, alias)]: ('a::b', None), ('a::c::d', 'e')."""
    body = " ".join(body.split())
    def rec(prefix, s):
        s = s.strip()
        if not s:
            return []
        if "{" not in s:
            m = re.fullmatch(r"(.*?)\s+as\s+(\w+)", s)
            path, alias = (m.group(1), m.group(2)) if m else (s, None)
            path = (prefix + path.replace(" ", "")).strip(":")
            if path.endswith("::self"):
                path = path[: -len("::self")]
            return [(path, alias)]
        i = s.index("{")
        head = s[:i].replace(" ", "")
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
        res = []
        for it in items:
            res += rec(prefix + head, it)
        return res
    return rec("", body)


def inline_mods(code):
    """[(start, end, name)] of inline `mod name { ... }` blocks, which shift `self`/`super`."""
    spans = []
    for m in re.finditer(r"\bmod\s+(\w+)\s*\{", code):
        depth, j = 1, m.end()
        while j < len(code) and depth:
            if code[j] == "{":
                depth += 1
            elif code[j] == "}":
                depth -= 1
            j += 1
        spans.append((m.start(), j, m.group(1)))
    return spans


def parent_of(rel):
    """The file that declares module file `rel` (`a/b.rs` -> `a/mod.rs` or `a.rs`; `x.rs` -> main.rs)."""
    d = os.path.dirname(rel[:-len("/mod.rs")] if rel.endswith("/mod.rs") else rel)
    if not d:
        return ["main.rs"]
    return [d + "/mod.rs", d + ".rs"]


def check(src):
    """(problems, edges) for the crate whose sources are in the directory `src`."""
    files, texts, problems = {}, {}, []
    for root, _, names in os.walk(src):
        for n in names:
            if n.endswith(".rs"):
                rel = os.path.relpath(os.path.join(root, n), src).replace(os.sep, "/")
                files[rel] = module_of(rel)
    by_mod = {tuple(m): rel for rel, m in files.items()}
    # production code only: comments, literals and #[cfg(test)] items removed
    declared, test_only = set(), set()
    for rel in files:
        code = normalize(code_only(open(os.path.join(src, rel), encoding="utf-8").read()))
        if re.search(r"#\s*!\s*\[\s*cfg\s*\(\s*test\s*\)\s*\]", code):
            code, tests = "", code
        else:
            code, tests = split_tests(code)
        texts[rel] = code
        declared |= {(rel, m) for m in re.findall(r"\bmod\s+(\w+)\s*;", code)}
        test_only |= {(rel, m) for m in re.findall(r"\bmod\s+(\w+)\s*;", tests)}
        for m in re.finditer(r"#\s*\[\s*path\b|\binclude\s*!", code):
            problems.append(f"{rel}: `{m.group(0)}` puts a file's code where layers.py cannot see it; "
                            "give the module its own file instead")
    live = {}
    for rel, mod in files.items():
        if rel == "main.rs":
            live[rel] = mod
            continue
        name = mod[-1]
        parents = parent_of(rel)
        if any((p, name) in declared for p in parents):
            live[rel] = mod
        elif not any((p, name) in test_only for p in parents):
            problems.append(f"{rel}: not declared by {' or '.join(parents)} outside #[cfg(test)] "
                            "(dead file, or declared in a way layers.py cannot follow)")
    files = live

    def resolve(segs):
        """Longest module prefix of segs that is a file."""
        for k in range(len(segs), 0, -1):
            if tuple(segs[:k]) in by_mod and by_mod[tuple(segs[:k])] in files:
                return by_mod[tuple(segs[:k])], segs[k:]
        return None, []

    def absolute(segs, base, aliases):
        """A path as written -> module path segments from the crate root, or None (std, a dependency)."""
        if not segs:
            return None
        if segs[0] == "crate":
            return segs[1:]
        if segs[0] in aliases:
            return aliases[segs[0]] + segs[1:]
        if segs[0] in ("self", "super"):
            cur = list(base)
            while segs and segs[0] in ("self", "super"):
                if segs[0] == "super":
                    cur = cur[:-1]
                segs = segs[1:]
            return cur + segs
        if tuple(list(base) + segs[:1]) in by_mod:  # `use child::x` names a child module
            return list(base) + segs
        return None

    # `pub use` in a module root: name -> the file that defines it (for loops through re-exports)
    reexports = {}
    for rel in files:
        for m in re.finditer(r"\bpub\s*(?:\([^)]*\))?\s*use\s+([^;]+);", texts[rel]):
            for path, alias in expand_use(m.group(1)):
                segs = absolute(path.split("::"), files[rel], {})
                if segs is None:
                    continue
                t, rest = resolve(segs)
                if t is None or t == rel or module_of(t)[:1] != files[rel][:1]:
                    continue  # a re-export from another layer is that layer's own API
                if rest and rest[-1] == "*":
                    reexports.setdefault((rel, "*"), []).append(t)
                elif rest:
                    reexports[(rel, alias or rest[-1])] = [t]

    def defines(rel, name):
        return re.search(r"\bpub\s*(?:\([^)]*\))?\s*(?:async\s+)?(?:fn|struct|enum|trait|type|const|static|mod|union)\s+"
                         + re.escape(name) + r"\b", texts[rel]) is not None

    def through(t, rest):
        """Follow a re-export out of a module root to the file that defines the item."""
        for _ in range(8):
            if not rest:
                return t
            hit = reexports.get((t, rest[0]))
            if hit is None:
                hit = [g for g in reexports.get((t, "*"), []) if defines(g, rest[0])][:1] or None
            if hit is None:
                return t
            t = hit[0]
        return t

    edges = {}
    for rel, mod in files.items():
        code = texts[rel]
        spans = inline_mods(code)
        def base_at(pos):
            return list(mod) + [name for s, e, name in spans if s < pos < e]
        aliases, found = {}, []
        for m in re.finditer(r"\bextern\s+crate\s+self\s+as\s+(\w+)", code):
            aliases[m.group(1)] = []
        for m in re.finditer(r"\buse\s+([^;]+);", code):
            for path, alias in expand_use(m.group(1)):
                found.append((path, m.start()))
                if alias and alias != "_":
                    segs = absolute(path.split("::"), base_at(m.start()), aliases)
                    if segs is not None:
                        aliases[alias] = segs
        heads = "|".join(["crate", "super", "self"] + [re.escape(a) for a in aliases])
        for m in re.finditer(r"(?<![\w:])((?:" + heads + r")(?:::\w+)+)", code):
            found.append((m.group(1), m.start()))
        targets = set()
        for p, pos in found:
            segs = absolute([s for s in p.split("::") if s], base_at(pos), aliases)
            if segs is None:
                continue
            t, rest = resolve(segs)
            if t is None:
                continue
            t = through(t, [s for s in rest if s != "*"])
            if t != rel:
                targets.add(t)
        edges[rel] = targets

    rank = {}
    for i, row in enumerate(LAYERS):
        for m in row:
            rank[m] = i
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

    return problems, edges


# --self-test: a small crate, then one trick at a time appended to one of its files.
# (expected problem or None, file, text)
BASE = {
    "main.rs": "mod dav;\nmod store;\nmod vfs;\nmod wire;\nfn main() { cli(); }\n",
    "dav/mod.rs": "mod file;\nuse crate::vfs::Vfs;\n",
    "dav/file.rs": "use super::super::vfs::Vfs;\n",
    "vfs/mod.rs": "mod a;\nmod b;\n#[cfg(test)]\nmod tests;\npub struct Vfs;\npub use crate::store::Row;\n",
    "vfs/a.rs": "use super::b::B;\npub struct A;\n",
    "vfs/b.rs": "pub struct B;\npub struct C;\n",
    "vfs/tests.rs": "use crate::dav::X;\n",
    "store.rs": "pub struct Row;\n",
    "wire.rs": "",
}
STORE = "forbidden import: dav/file.rs -> store.rs"
LOOP = "import loop: vfs/a.rs <-> vfs/b.rs"
CASES = [
    (None, "main.rs", ""),
    (STORE, "dav/file.rs", "use crate::{vfs::Vfs as V, store::Row as R};"),
    (STORE, "dav/file.rs", "use crate::{store as st};"),
    (STORE, "dav/file.rs", "pub(crate) use crate::store::*;"),
    (STORE, "dav/file.rs", "use self::super::super::store::Row as R;"),
    (STORE, "dav/file.rs", "fn f() { let _ = crate :: r#store :: Row; }"),
    (STORE, "dav/file.rs", "macro_rules! m { () => { $crate::store::Row } }"),
    (STORE, "dav/file.rs", "fn f() { use crate::store::Row; }"),
    (STORE, "dav/file.rs", "use crate as k; fn f() { k::store::Row; }"),
    (STORE, "dav/file.rs", "extern crate self as k; use k::store::Row;"),
    (STORE, "dav/file.rs", "struct S; impl From<crate::store::Row> for S {}"),
    (STORE, "dav/file.rs", "mod inner { use super::super::super::store::Row; }"),
    (STORE, "dav/file.rs", '#[cfg(test)]\n#[allow(unused)]\nmod t { const B: char = \'{\'; const S: &str = "{"; }\nuse crate::store::Row;'),
    (STORE, "dav/file.rs", 'const U: &str = "http://x/*"; use crate::store::Row;\nconst V: &str = "*/";'),
    (STORE, "dav/file.rs", 'fn f<\'a>(_: &\'a str) {} use crate::store::Row;'),
    ("upward import: store.rs -> vfs/mod.rs", "store.rs", "use crate::vfs::Vfs;"),
    ("upward import: wire.rs -> store.rs", "wire.rs", "fn f() { crate::store::Row; }"),
    ("`#[path`", "dav/mod.rs", '#[path = "../store.rs"]\nmod s;'),
    ("`include!`", "dav/mod.rs", 'include!("../store.rs");'),
    ("dav/extra.rs: not declared", "dav/extra.rs", ""),
    (LOOP, "vfs/b.rs", "use super::a::A;"),
    (LOOP, "vfs/b.rs", "fn f() -> Option<super::Z> { None }\n//\n"),
    (None, "dav/file.rs", "/// crate::store::Row\n//! crate::store\n/* /* crate::store */ crate::store */"),
    (None, "dav/file.rs", 'const S: &str = "use crate::store::Row;"; const R: &str = r#"crate::store "x" "#;'),
    (None, "dav/file.rs", '#[doc = "crate::store::Row"]\nconst B: &[u8] = b"crate::store"; const E: &str = "\\" crate::store";'),
    (None, "dav/file.rs", "#[cfg(test)]\nmod t { use crate::store::Row; }"),
    (None, "dav/file.rs", "use crate::vfs::Row;"),  # a lower layer's re-export is its API
]


def self_test():
    import tempfile
    failed = 0
    for want, rel, text in CASES:
        with tempfile.TemporaryDirectory() as d:
            for name, body in BASE.items():
                os.makedirs(os.path.join(d, os.path.dirname(name)), exist_ok=True)
                extra = text if name == rel else ""
                if name == "vfs/mod.rs" and "super::Z" in text:  # a loop through a re-export
                    extra = "pub use a::A as Z;\n"
                with open(os.path.join(d, name), "w") as f:
                    f.write(body + extra + "\n")
            if rel not in BASE:
                os.makedirs(os.path.join(d, os.path.dirname(rel)), exist_ok=True)
                open(os.path.join(d, rel), "w").write(text)
            problems, _ = check(d)
        ok = (not problems) if want is None else any(want in p for p in problems)
        if not ok:
            failed += 1
            print(f"self-test FAILED: {rel} += {text!r}: expected {want or 'no problem'}, got {problems}")
    print(f"layers.py --self-test: {len(CASES) - failed}/{len(CASES)} cases pass")
    return 1 if failed else 0


def main():
    if "--self-test" in sys.argv:
        return self_test()
    problems, edges = check(SRC)
    if "--graph" in sys.argv:
        for rel, ts in sorted(edges.items()):
            print(rel, "->", ", ".join(sorted(ts)))
    if problems:
        print("\n".join(problems))
        print(f"layers.py: {len(problems)} problem(s); the layers are drawn in docs/architecture.md")
        return 1
    print(f"layers.py: {len(edges)} files, no loop, no upward import")
    return 0


if __name__ == "__main__":
    sys.exit(main())
