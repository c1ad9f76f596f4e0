"""The admin console: the administrator creates a group, a user (primary group the new one,
member of `staff`) and a quota on `staff`, in the console; then the new user signs in in a
fresh browser profile and sees only what she may: the bucket of `staff` with its quota, not
the administrator's bucket, no admin link, no console at #/admin, and the admin API refuses
her session."""

from selenium.webdriver.support.ui import Select

from kura_browser import *


def group_card(d, name):
    return visible(d, f".adm-group[data-key='{name}']")


def submit(form):
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def main(d):
    sign_in(d)
    visible(d, "#admin-link").click()
    text_in(d, "#admin-title", "Users")
    visible(d, "#adm-users tr[data-key='admin']")

    # a group
    d.get(BASE + "/app/#/admin/groups")
    f = visible(d, "#adm-group-form")
    f.find_element(By.NAME, "groupname").send_keys("family")
    submit(f)
    group_card(d, "family")

    # a user whose primary group is the new one
    d.get(BASE + "/app/#/admin/users")
    f = visible(d, "#adm-user-form")
    f.find_element(By.NAME, "username").send_keys("eve")
    f.find_element(By.NAME, "password").send_keys("eve-password-1")
    Select(f.find_element(By.NAME, "group")).select_by_value("family")
    submit(f)
    text_in(d, "#adm-users tr[data-key='eve']", "family")

    # eve joins staff, and staff gets a quota
    d.get(BASE + "/app/#/admin/groups")
    g = group_card(d, "staff")
    Select(g.find_element(By.CSS_SELECTOR, ".adm-add-member select")).select_by_value("eve")
    g.find_element(By.CSS_SELECTOR, ".adm-add-member button").click()
    wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, ".adm-group[data-key='staff'] li[data-key='eve']"),
         what="eve among the members of staff")
    g = group_card(d, "staff")
    q = g.find_element(By.CSS_SELECTOR, ".adm-quota")
    q.find_element(By.NAME, "bytes").clear()
    q.find_element(By.NAME, "bytes").send_keys("2 GB")
    submit(q)
    text_in(d, ".adm-group[data-key='staff'] .adm-usage-text", "of 2.0 GB")
    # a size that is none is refused before any request
    g = group_card(d, "staff")
    q = g.find_element(By.CSS_SELECTOR, ".adm-quota")
    q.find_element(By.NAME, "bytes").clear()
    q.find_element(By.NAME, "bytes").send_keys("lots")
    submit(q)
    text_in(d, "#status", "Not a size")
    shot(d, "groups")

    # every other section draws from the API
    for tab, css, text in (("keys", "#adm-key-form", "Create"), ("shares", "#adm-shares", "No share"),
                           ("locks", "#adm-locks", "No locks"), ("replication", "#adm-rules", "No rules"),
                           ("server", "#adm-facts", "fs")):
        d.get(BASE + f"/app/#/admin/{tab}")
        text_in(d, css, text)
    text_in(d, "#adm-facts", "SHA-256")
    shot(d, "server")

    # an access key: its secret shown once
    d.get(BASE + "/app/#/admin/keys")
    f = visible(d, "#adm-key-form")
    Select(f.find_element(By.NAME, "user")).select_by_value("eve")
    submit(f)
    secret = visible(d, "#adm-once code").text
    assert len(secret) >= 20, secret
    text_in(d, "#adm-keys", "eve")
    assert secret not in d.find_element(By.ID, "adm-keys").text

    # the new user, in a fresh profile
    e = browser()
    try:
        sign_in(e, "eve", "eve-password-1")
        open_folder(e, "/")
        wait_names(e, ["photos"], gone=["secret"])
        assert "secret" not in names(e), names(e)
        open_folder(e, "/photos")
        wait_names(e, ["beach.txt"])
        text_in(e, "#quota-text", "2.0 GB")
        text_in(e, "#quota-text", "staff")
        assert not e.find_element(By.ID, "admin-link").is_displayed(), "a non-admin sees the admin link"
        e.get(BASE + "/app/#/admin/users")
        text_in(e, "#admin", "for administrators")
        assert not e.find_elements(By.CSS_SELECTOR, "#adm-users, #adm-user-form, #adm-tabs")
        shot(e, "non-admin")
        # and the API refuses her session, reads and writes alike
        got = e.execute_async_script("""
            const done = arguments[arguments.length - 1];
            (async () => {
              const s = await (await fetch('/api/user/v1/session')).json();
              const a = await fetch('/api/v1/users');
              const b = await fetch('/api/v1/users', {method: 'POST',
                headers: {'Content-Type': 'application/json', 'X-Kura-CSRF': s.csrf},
                body: JSON.stringify({name: 'mallory', admin: true})});
              return [a.status, b.status];
            })().then(done, (err) => done(String(err)));""")
        assert got == [403, 403], got
    except BaseException:
        shot(e, "failure")
        print(f"console: {console(e)}", file=sys.stderr)
        raise
    finish(e)
    # nobody called mallory was made
    d.get(BASE + "/app/#/admin/users")
    visible(d, "#adm-users tr[data-key='eve']")
    assert not d.find_elements(By.CSS_SELECTOR, "#adm-users tr[data-key='mallory']")


run(main)
