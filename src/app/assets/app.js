// Kura's browser app. Every string is in the catalogue below; the browser's language picks.
"use strict";

const CATALOGUE = {
  en: {
    signInTitle: "Sign in", user: "User name", password: "Password",
    code: "Code from your authenticator app (or a recovery code)", signIn: "Sign in",
    signOut: "Sign out", signOutAll: "Sign out everywhere", account: "Your account",
    sessions: "Signed-in browsers", twoFactor: "Two-factor authentication",
    tfOn: "On.", tfOff: "Off.", tfEnable: "Turn on", tfDisable: "Turn off",
    tfScan: "Add this secret to your authenticator app, then enter the code it shows.",
    tfLink: "Open in an authenticator app", tfConfirm: "Confirm",
    tfCodes: "Recovery codes: each works once if you lose your phone. Keep them safe now; they are not shown again.",
    invalid: "Wrong user name, password or code.", needCode: "Enter the code of your authenticator app.",
    throttled: "Too many failed attempts; wait a moment and try again.", failed: "The server refused: ",
    since: "since", current: "(this browser)",
  },
  fr: {
    signInTitle: "Connexion", user: "Nom d'utilisateur", password: "Mot de passe",
    code: "Code de votre application d'authentification (ou code de secours)", signIn: "Se connecter",
    signOut: "Se déconnecter", signOutAll: "Se déconnecter partout", account: "Votre compte",
    sessions: "Navigateurs connectés", twoFactor: "Authentification à deux facteurs",
    tfOn: "Activée.", tfOff: "Désactivée.", tfEnable: "Activer", tfDisable: "Désactiver",
    tfScan: "Ajoutez ce secret à votre application d'authentification, puis saisissez le code affiché.",
    tfLink: "Ouvrir dans une application d'authentification", tfConfirm: "Confirmer",
    tfCodes: "Codes de secours : chacun sert une fois si vous perdez votre téléphone. Conservez-les maintenant ; ils ne seront plus affichés.",
    invalid: "Nom, mot de passe ou code incorrect.", needCode: "Saisissez le code de votre application d'authentification.",
    throttled: "Trop d'échecs ; patientez un instant puis réessayez.", failed: "Le serveur a refusé : ",
    since: "depuis", current: "(ce navigateur)",
  },
};

const lang = (navigator.languages || [navigator.language || "en"])
  .map((l) => l.slice(0, 2).toLowerCase()).find((l) => CATALOGUE[l]) || "en";
const t = (key) => CATALOGUE[lang][key] || CATALOGUE.en[key] || key;
const $ = (id) => document.getElementById(id);
const API = "/api/user/v1/";
let csrf = "";

function translate() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-t]")) el.textContent = t(el.dataset.t);
}

async function call(method, path, body, headers = {}) {
  const h = { ...headers };
  if (method !== "GET") h["X-Kura-CSRF"] = csrf;
  if (body !== undefined) h["Content-Type"] = "application/json";
  const r = await fetch(API + path, {
    method, headers: h, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  return { status: r.status, data };
}

function show(section) {
  for (const id of ["sign-in", "home"]) $(id).hidden = id !== section;
  $("who").hidden = section !== "home";
}

async function start() {
  translate();
  const r = await call("GET", "session");
  if (r.status === 200) return home(r.data);
  show("sign-in");
}

async function signIn(ev) {
  ev.preventDefault();
  const f = ev.target;
  const basic = "Basic " + btoa(unescape(encodeURIComponent(f.user.value + ":" + f.password.value)));
  const body = f.code.value ? { code: f.code.value } : {};
  const r = await call("POST", "session", body, { Authorization: basic });
  if (r.status === 200) { f.password.value = ""; f.code.value = ""; return home(r.data); }
  if (r.data.error === "second_factor_required") {
    $("code-field").hidden = false; f.code.focus();
    $("sign-in-error").textContent = t("needCode");
  } else if (r.status === 429) {
    $("sign-in-error").textContent = t("throttled");
  } else {
    $("sign-in-error").textContent = r.data.error === "invalid" ? t("invalid") : t("failed") + (r.data.message || r.status);
  }
}

async function home(me) {
  csrf = me.csrf;
  $("who-name").textContent = me.user;
  show("home");
  const s = await call("GET", "session");
  $("tf-state").textContent = s.data.two_factor ? t("tfOn") : t("tfOff");
  $("tf-begin").hidden = !!s.data.two_factor;
  $("tf-disable").hidden = !s.data.two_factor;
  const list = await call("GET", "sessions");
  const ul = $("sessions");
  ul.replaceChildren();
  for (const x of list.data.sessions || []) {
    const li = document.createElement("li");
    li.textContent = `${x.agent || "?"} — ${x.client || "?"}, ${t("since")} ${new Date(x.created_ms).toLocaleString(lang)}`;
    ul.append(li);
  }
}

async function signOut(all) {
  await call("DELETE", all ? "sessions" : "session");
  csrf = "";
  show("sign-in");
}

async function tfBegin() {
  const r = await call("POST", "2fa");
  if (r.status !== 200) { $("home-error").textContent = t("failed") + (r.data.message || r.status); return; }
  $("tf-secret").textContent = r.data.secret;
  $("tf-url").href = r.data.url;
  $("tf-confirm").dataset.secret = r.data.secret;
  $("tf-confirm").hidden = false;
}

async function tfConfirm(ev) {
  ev.preventDefault();
  const f = ev.target;
  // the password again: a session alone must not turn it on
  const basic = "Basic " + btoa(unescape(encodeURIComponent($("who-name").textContent + ":" + f.password.value)));
  const r = await call("PUT", "2fa", { secret: f.dataset.secret, code: f.code.value }, { Authorization: basic });
  f.password.value = "";
  if (r.status !== 200) { $("home-error").textContent = r.data.error === "invalid" ? t("invalid") : t("failed") + (r.data.message || r.status); return; }
  f.hidden = true; f.code.value = "";
  $("tf-code-list").textContent = r.data.recovery_codes.join("\n");
  $("tf-codes").hidden = false;
  $("tf-state").textContent = t("tfOn");
  $("tf-begin").hidden = true;
}

async function tfDisable(ev) {
  ev.preventDefault();
  const r = await call("DELETE", "2fa", { code: ev.target.code.value });
  if (r.status === 204) { csrf = ""; show("sign-in"); return; }
  $("home-error").textContent = r.data.error === "invalid" ? t("invalid") : t("failed") + (r.data.message || r.status);
}

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut(false));
  $("sign-out-all").addEventListener("click", () => signOut(true));
  $("tf-begin").addEventListener("click", tfBegin);
  $("tf-confirm").addEventListener("submit", tfConfirm);
  $("tf-disable").addEventListener("submit", tfDisable);
  start();
});
