"""Sign in, sign out, and a wrong password refused, then throttled (even the right one)."""

from kura_browser import *


def main(d):
    sign_in(d)
    shot(d, "signed-in")
    d.find_element(By.ID, "sign-out").click()
    visible(d, "#sign-in-form")
    # signed out for real: a reload shows the sign-in form again
    d.get(BASE + "/app/")
    visible(d, "#sign-in-form")
    sign_in(d, password="wrong-password", expect_ok=False)
    text_in(d, "#sign-in-error", "Wrong user name")
    shot(d, "wrong-password")
    throttled = False
    for _ in range(10):
        sign_in(d, password="wrong-password", expect_ok=False)
        time.sleep(0.3)
        if "Too many" in d.find_element(By.ID, "sign-in-error").text:
            throttled = True
            break
    assert throttled, "wrong passwords were never throttled"
    # the right password is refused too while the address is locked out
    sign_in(d, expect_ok=False)
    text_in(d, "#sign-in-error", "Too many")
    assert not d.find_element(By.ID, "who").is_displayed()
    shot(d, "throttled")


run(main)
