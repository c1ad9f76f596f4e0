"""Two-factor sign-in in the browser: a user turns TOTP on in her account page (the code
computed here from the secret the page shows, RFC 6238 in a few lines), signs out, signs in
with password and code; a wrong code is refused; she gets new recovery codes (password and
a code again); a new recovery code works once; then the
administrator resets her two-factor authentication from the console, in another browser,
and the password alone signs her in again. The test (web_ui.rs) made the user
KURA_2FA_USER with password KURA_2FA_PASSWORD; KURA_USER is the administrator."""

import base64
import hashlib
import hmac
import struct

from kura_browser import *

TINA = os.environ["KURA_2FA_USER"]
TINA_PW = os.environ["KURA_2FA_PASSWORD"]


def totp(secret, at=None, step=30, digits=6):
    """RFC 6238 (HMAC-SHA1, 30 s, 6 digits) of a base32 secret at time `at`."""
    key = base64.b32decode(secret.strip().upper() + "=" * (-len(secret.strip()) % 8))
    counter = int((time.time() if at is None else at) // step)
    mac = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    o = mac[-1] & 0x0F
    return str((struct.unpack(">I", mac[o:o + 4])[0] & 0x7FFFFFFF) % 10 ** digits).zfill(digits)


def sign_in_with(d, password, code=None):
    """Fills the sign-in form (the code field once the server asked for it) and submits."""
    form = visible(d, "#sign-in-form")
    for name, value in (("user", TINA), ("password", password)):
        f = form.find_element(By.NAME, name)
        f.clear()
        f.send_keys(value)
    if code is not None:
        c = visible(d, "#code-field input[name=code]")
        c.clear()
        c.send_keys(code)
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()


def sign_out(d):
    visible(d, "#sign-out").click()
    visible(d, "#sign-in-form")


def signed_in(d):
    visible(d, "#who")
    text_in(d, "#who-name", TINA)


def main(d):
    sign_in(d, user=TINA, password=TINA_PW)
    d.get(BASE + "/app/#/account")
    text_in(d, "#tf-state", "Off")
    visible(d, "#tf-begin").click()
    secret = visible(d, "#tf-secret").text
    assert len(secret) >= 16, secret
    assert visible(d, "#tf-url").get_attribute("href").startswith("otpauth://totp/"), "no otpauth link"
    f = visible(d, "#tf-confirm")
    # the password again, and a wrong code first: refused, nothing turned on
    f.find_element(By.NAME, "password").send_keys(TINA_PW)
    near = {totp(secret, time.time() + 30 * k) for k in range(-2, 4)}  # codes the server may accept
    wrong = next(c for c in ("000000", "111111", "222222", "333333", "444444", "555555", "666666") if c not in near)
    f.find_element(By.NAME, "code").send_keys(wrong)
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    text_in(d, "#home-error", "Wrong")
    f.find_element(By.NAME, "password").send_keys(TINA_PW)
    code = f.find_element(By.NAME, "code")
    code.clear()
    code.send_keys(totp(secret))
    f.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    visible(d, "#tf-codes")
    recovery = [c.strip() for c in d.find_element(By.ID, "tf-code-list").text.split("\n") if c.strip()]
    assert len(recovery) >= 5, recovery
    text_in(d, "#tf-state", "On")
    shot(d, "turned-on")
    sign_out(d)

    # the password alone is not enough: the page asks for the code
    sign_in_with(d, TINA_PW)
    visible(d, "#code-field")
    text_in(d, "#sign-in-error", "Enter the code")
    assert not d.find_element(By.ID, "who").is_displayed()
    # a wrong code is refused
    sign_in_with(d, TINA_PW, wrong)
    text_in(d, "#sign-in-error", "Wrong user name, password or code")
    assert not d.find_element(By.ID, "who").is_displayed()
    shot(d, "wrong-code")
    # the right one (the next step's: the step used to turn it on is spent)
    sign_in_with(d, TINA_PW, totp(secret, time.time() + 30))
    signed_in(d)
    # new recovery codes take the password again and a code (here a recovery code)
    d.get(BASE + "/app/#/account")
    f = visible(d, "#tf-disable")
    f.find_element(By.NAME, "password").send_keys(TINA_PW)
    f.find_element(By.NAME, "code").send_keys(recovery[1])
    d.find_element(By.ID, "tf-renew").click()

    def renewed(d):
        listed = [c.strip() for c in d.find_element(By.ID, "tf-code-list").text.split("\n") if c.strip()]
        return listed if listed and set(listed).isdisjoint(recovery) else None

    recovery = wait(d, renewed, what="new recovery codes")
    assert len(recovery) >= 5, recovery
    sign_out(d)

    # a recovery code works once
    sign_in_with(d, TINA_PW)
    visible(d, "#code-field")
    sign_in_with(d, TINA_PW, recovery[0])
    signed_in(d)
    sign_out(d)
    sign_in_with(d, TINA_PW)
    visible(d, "#code-field")
    sign_in_with(d, TINA_PW, recovery[0])
    text_in(d, "#sign-in-error", "Wrong user name, password or code")
    assert not d.find_element(By.ID, "who").is_displayed()

    # the administrator resets it from the console, in her own browser
    admin = browser()
    try:
        sign_in(admin)
        admin.get(BASE + "/app/#/admin/users")
        row = f"#adm-users tr[data-key='{TINA}']"
        visible(admin, row)
        reset = admin.find_element(By.CSS_SELECTOR, row + " button.adm-reset-2fa")
        reset.click()  # armed: a second click acts
        text_in(admin, row + " button.adm-reset-2fa", "again")
        admin.find_element(By.CSS_SELECTOR, row + " button.adm-reset-2fa").click()
        text_in(admin, "#status", "Done")
        shot(admin, "admin-reset")
        no_csp_violation(admin)
    finally:
        admin.quit()

    # the password alone signs her in again, and the account page says it is off
    d.get(BASE + "/app/")
    sign_in(d, user=TINA, password=TINA_PW)
    d.get(BASE + "/app/#/account")
    text_in(d, "#tf-state", "Off")
    visible(d, "#tf-begin")


run(main)
