"""Every route the user API's routers serve, and every request the browser app makes, is in
the OpenAPI documents (the user API's, and the admin API's for the admin console). Routes are
read from the sources: the user API's dispatch (src/user_api/mod.rs, tus.rs), the session
endpoints' (src/app/session.rs) and the app's scripts (src/app/assets/*.js). Each reader must
find at least a known number of routes, so a reader that rots fails instead of passing empty.
Run by openapi_routes.rs.

Usage: openapi_routes.py REPO USER_DOC.json ADMIN_DOC.json
"""
import json
import os
import re
import sys

REPO, USER_DOC, ADMIN_DOC = sys.argv[1:4]
USER, ADMIN = "/api/user/v1/", "/api/v1/"


def read(rel):
    with open(os.path.join(REPO, rel)) as f:
        return f.read()


def operations(doc_file):
    """{(METHOD, path template with every {param} as {})} of a document."""
    with open(doc_file) as f:
        doc = json.load(f)
    ops = set()
    for path, item in doc["paths"].items():
        for method in item:
            if method in ("get", "put", "post", "delete", "options", "head", "patch", "trace"):
                ops.add((method.upper(), re.sub(r"\{[^}]+\}", "{}", path)))
    return ops


def at_least(found, n, what):
    assert len(found) >= n, f"{what}: only {len(found)} routes read ({sorted(found)}); did the code change shape?"
    return found


def user_router():
    """(METHOD, path) the user API's router dispatches."""
    src = read("src/user_api/mod.rs")
    found = set()
    for name, methods in re.findall(r'\(\s*"(/[a-z0-9._]+)",\s*((?:&Method::[A-Z]+\s*\|?\s*)+)\)', src):
        for m in re.findall(r"Method::([A-Z]+)", methods):
            found.add((m, USER + name[1:]))
    # id routes: `rest.strip_prefix("/shares/")` then a match on the method
    for name, body in re.findall(r'strip_prefix\("(/[a-z]+)/"\)\s*\{(.*?)\n        \}', src, re.S):
        if name == "/uploads":
            continue
        for m in re.findall(r"&Method::([A-Z]+)\s*=>", body):
            found.add((m, USER + name[1:] + "/{}"))
    # tus: the collection (OPTIONS, and POST with no id) and one upload (with an id)
    tus = read("src/user_api/tus.rs")
    if "Method::OPTIONS" in tus:
        found.add(("OPTIONS", USER + "uploads"))
    for which, m in re.findall(r"\((None|Some\(id\)), Method::([A-Z]+)\)", tus):
        found.add((m, USER + "uploads" + ("" if which == "None" else "/{}")))
    return at_least(found, 28, "src/user_api")


def session_router():
    src = read("src/app/session.rs")
    found = {(m, USER + p) for p, m in re.findall(r'\("(session|sessions|2fa)", Method::([A-Z]+)\)', src)}
    found |= {(m, USER + p) for p, m in re.findall(r'path == "([a-z0-9]+)" && method == Method::([A-Z]+)', src)}
    return at_least(found, 8, "src/app/session.rs")


def template(expr, consts):
    """A JS path expression ("users/" + enc(u.name) + "/two-factor", or path + "/quota" with
    `const path = ...`) as a template with {} for each dynamic part; None if unreadable."""
    # a query string added last: `"trash" + (bucket ? "?" + q({ bucket }) : "")`
    expr = re.sub(r'\s\+\s\([^()]*"\?".*\)$', "", expr.strip())
    for name, value in consts.items():
        expr = re.sub(rf"^{name}\b", value, expr)
    parts = [p.strip() for p in re.split(r"\s\+\s", expr)]
    out = ""
    for p in parts:
        lit = re.fullmatch(r'"([^"]*)"', p)
        out += lit.group(1) if lit else "{}"
    out = out.split("?")[0]
    return out if re.fullmatch(r"[a-z0-9/{}\-]+", out) else None


def app_calls():
    """(METHOD, path) of every user API request of app.js and view.js."""
    js = read("src/app/assets/app.js") + read("src/app/assets/view.js")
    found = set()
    for m, arg in re.findall(r'\bcall\("([A-Z]+)",\s*((?:[^,()]|\((?:[^()]|\([^()]*\))*\))+)', js):
        choice = re.fullmatch(r'\w+\s*\?\s*"([a-z0-9]+)"\s*:\s*"([a-z0-9]+)"', arg.strip())
        names = list(choice.groups()) if choice else [template(arg, {})]
        for n in names:
            assert n, f"cannot read the path of call({m!r}, {arg})"
            found.add((m, USER + n))
    for n in re.findall(r'API \+ "([a-z]+)\?', js):
        found.add(("GET", USER + n))
    for m, n in re.findall(r'tusFetch\("([A-Z]+)", API \+ "([a-z]+)"', js):
        found.add((m, USER + n))
    # the upload's own address (the Location answered to POST): HEAD and PATCH
    for m in re.findall(r'tusFetch\("([A-Z]+)", url\)', js) + re.findall(r'x\.open\("([A-Z]+)", url\)', js):
        found.add((m, USER + "uploads/{}"))
    return at_least(found, 30, "app.js and view.js")


def console_calls():
    """(METHOD, path) of every admin API request of admin.js."""
    js = read("src/app/assets/admin.js")
    consts = {k: v for k, v in re.findall(r'const (path) = ([^;]+);', js)}
    found = set()
    for m, arg in re.findall(r'\badmDo\("([A-Z]+)",\s*((?:[^,()]|\((?:[^()]|\([^()]*\))*\))+)', js):
        n = template(arg, consts)
        assert n, f"cannot read the path of admDo({m!r}, {arg})"
        found.add((m, ADMIN + n))
    for n in re.findall(r'\badmGet\("([a-z-]+)"', js):
        found.add(("GET", ADMIN + n))
    return at_least(found, 20, "admin.js")


def main():
    user_ops, admin_ops = operations(USER_DOC), operations(ADMIN_DOC)
    missing = []
    for what, routes, ops in (("user API router", user_router(), user_ops),
                              ("session endpoints", session_router(), user_ops),
                              ("app.js and view.js", app_calls(), user_ops),
                              ("admin.js", console_calls(), admin_ops)):
        lost = sorted(r for r in routes if r not in ops)
        missing += [f"{what}: {m} {p}" for m, p in lost]
        print(f"{what}: {len(routes)} routes, {len(routes) - len(lost)} documented")
    assert not missing, "not in the OpenAPI document:\n  " + "\n  ".join(missing)
    print(f"all routes documented ({len(user_ops)} user API operations, {len(admin_ops)} admin API operations)")


main()
