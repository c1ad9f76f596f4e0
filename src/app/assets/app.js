// Kura's browser app: no framework, no build step. Every string is in the catalogue below
// (the browser's language picks); user data only ever goes in through textContent.
"use strict";

const CATALOGUE = {
  en: {
    // previews, tags, versions, trash, shares (view.js)
    preview: "Preview", previous: "Previous", next: "Next", noPreview: "No preview for this file.",
    truncated: "Only the first megabyte is shown.", pdfFailed: "This PDF cannot be shown: ", pageOf: "Page {a} of {b}", prevPage: "Previous page", nextPage: "Next page",
    tags: "Tags (key=value, separated by commas)", description: "Description", saved: "Saved.",
    share: "Share", shareTitle: "Share a link", sharePassword: "Password (optional)",
    shareExpires: "Expires after (e.g. 7d, 12h; empty: never)", shareMax: "Most downloads (empty: no limit)",
    shareDrop: "Drop box: visitors may only add files", shareCreate: "Create the link", shareLink: "Link",
    copyLink: "Copy", copied: "Copied.", copyByHand: "Select the link and copy it.",
    yourShares: "Your share links", noShares: "No share links.", revoke: "Revoke", revoked: "Revoked.",
    dropBox: "drop box", withPassword: "password", expires: "expires {t}", downloadsOf: "{a} of {b} downloads",
    emptyTrash: "Empty the trash", purgeConfirm: "Remove everything in this trash for good?",
    purged: "Removed {n} entries ({b}).",
    skip: "Skip to content", menu: "Main menu", crumbs: "Folders", files: "Files", trash: "Trash",
    signInTitle: "Sign in", user: "User name", password: "Password",
    code: "Code from your authenticator app (or a recovery code)", signIn: "Sign in",
    signOut: "Sign out", signOutAll: "Sign out everywhere", account: "Your account",
    sessions: "Signed-in browsers", twoFactor: "Two-factor authentication",
    tfOn: "On.", tfOff: "Off.", tfEnable: "Turn on", tfDisable: "Turn off",
    tfAgain: "To turn it off or get new recovery codes, enter your password and a code (or a recovery code).",
    tfRenew: "New recovery codes",
    tfScan: "Add this secret to your authenticator app, then enter the code it shows.",
    tfLink: "Open in an authenticator app", tfConfirm: "Confirm",
    tfCodes: "Recovery codes: each works once if you lose your phone. Keep them safe now; they are not shown again.",
    invalid: "Wrong user name, password or code.", needCode: "Enter the code of your authenticator app.",
    throttled: "Too many failed attempts; wait a moment and try again.", failed: "The server refused: ",
    since: "since", current: "(this browser)",
    searchLabel: "Search names, tags and descriptions", searchHint: "Search (name, tag:key=value)", search: "Search",
    results: "Search results", noResults: "Nothing found.", more: "More",
    newFolder: "New folder", uploadFiles: "Upload files", uploadFolder: "Upload a folder",
    zip: "Download as zip", move: "Move", copy: "Copy", delete: "Delete", rename: "Rename",
    download: "Download", versions: "Versions", save: "Save", close: "Close", ok: "OK", cancel: "Cancel",
    name: "Name", size: "Size", modified: "Modified", access: "Owner, group, mode", actions: "Actions",
    mode: "Mode (octal, e.g. 0640)", group: "Group", owner: "Owner", type: "Type", lock: "Lock",
    listLabel: "Folder contents", selectAll: "Select all", select: "Select", details: "Details of",
    empty: "This folder is empty.", dropHint: "Drop files or folders here to upload them.",
    selected: "{n} selected", entries: "{n} entries", folder: "Folder", buckets: "Buckets",
    lockedBy: "Locked by {who}", until: "until {t}", noExpiry: "with no expiry", notLocked: "Not locked",
    quota: "{used} of {quota} used (group {group})", noQuota: "No quota",
    newFolderName: "Name of the new folder", newName: "New name",
    moveTo: "Move to", copyTo: "Copy to", moveHere: "Move here", copyHere: "Copy here",
    done: "Done: {n}.", someFailed: "{n} failed: {why}", deleted: "Deleted {n}; the trash can restore them.",
    uploads: "Uploads", uploadDone: "Uploaded", uploadFailed: "Failed: ", retrying: "Connection lost; retrying…",
    resumable: "Unfinished uploads: {n}. Pick the same files again in the same folder to resume them.",
    timeLeft: "{t} left", of: "{a} of {b}", perSecond: "{s}/s",
    bucket: "Bucket", allBuckets: "All buckets", trashEmpty: "The trash is empty.", restore: "Restore",
    restored: "Restored.", deletedOn: "deleted {t}", filesBytes: "{n} files, {b}",
    deleteMarker: "deleted", currentVersion: "current",
    loading: "Loading…", locked: "locked",
  },
  fr: {
    // aperçus, étiquettes, versions, corbeille, partages (view.js)
    preview: "Aperçu", previous: "Précédent", next: "Suivant", noPreview: "Pas d'aperçu pour ce fichier.",
    truncated: "Seul le premier mégaoctet est affiché.", pdfFailed: "Ce PDF ne peut pas être affiché : ", pageOf: "Page {a} sur {b}", prevPage: "Page précédente", nextPage: "Page suivante",
    tags: "Étiquettes (clé=valeur, séparées par des virgules)", description: "Description", saved: "Enregistré.",
    share: "Partager", shareTitle: "Partager un lien", sharePassword: "Mot de passe (facultatif)",
    shareExpires: "Expire après (ex. 7d, 12h ; vide : jamais)", shareMax: "Téléchargements au plus (vide : sans limite)",
    shareDrop: "Dépôt : les visiteurs peuvent seulement ajouter des fichiers", shareCreate: "Créer le lien", shareLink: "Lien",
    copyLink: "Copier", copied: "Copié.", copyByHand: "Sélectionnez le lien et copiez-le.",
    yourShares: "Vos liens de partage", noShares: "Aucun lien de partage.", revoke: "Révoquer", revoked: "Révoqué.",
    dropBox: "dépôt", withPassword: "mot de passe", expires: "expire le {t}", downloadsOf: "{a} téléchargements sur {b}",
    emptyTrash: "Vider la corbeille", purgeConfirm: "Supprimer définitivement tout ce qui est dans cette corbeille ?",
    purged: "{n} éléments supprimés ({b}).",
    skip: "Aller au contenu", menu: "Menu principal", crumbs: "Dossiers", files: "Fichiers", trash: "Corbeille",
    signInTitle: "Connexion", user: "Nom d'utilisateur", password: "Mot de passe",
    code: "Code de votre application d'authentification (ou code de secours)", signIn: "Se connecter",
    signOut: "Se déconnecter", signOutAll: "Se déconnecter partout", account: "Votre compte",
    sessions: "Navigateurs connectés", twoFactor: "Authentification à deux facteurs",
    tfOn: "Activée.", tfOff: "Désactivée.", tfEnable: "Activer", tfDisable: "Désactiver",
    tfAgain: "Pour la désactiver ou obtenir de nouveaux codes de secours, saisissez votre mot de passe et un code (ou un code de secours).",
    tfRenew: "Nouveaux codes de secours",
    tfScan: "Ajoutez ce secret à votre application d'authentification, puis saisissez le code affiché.",
    tfLink: "Ouvrir dans une application d'authentification", tfConfirm: "Confirmer",
    tfCodes: "Codes de secours : chacun sert une fois si vous perdez votre téléphone. Conservez-les maintenant ; ils ne seront plus affichés.",
    invalid: "Nom, mot de passe ou code incorrect.", needCode: "Saisissez le code de votre application d'authentification.",
    throttled: "Trop d'échecs ; patientez un instant puis réessayez.", failed: "Le serveur a refusé : ",
    since: "depuis", current: "(ce navigateur)",
    searchLabel: "Chercher dans les noms, étiquettes et descriptions", searchHint: "Chercher (nom, tag:clé=valeur)", search: "Chercher",
    results: "Résultats", noResults: "Rien trouvé.", more: "Plus",
    newFolder: "Nouveau dossier", uploadFiles: "Envoyer des fichiers", uploadFolder: "Envoyer un dossier",
    zip: "Télécharger en zip", move: "Déplacer", copy: "Copier", delete: "Supprimer", rename: "Renommer",
    download: "Télécharger", versions: "Versions", save: "Enregistrer", close: "Fermer", ok: "OK", cancel: "Annuler",
    name: "Nom", size: "Taille", modified: "Modifié", access: "Propriétaire, groupe, droits", actions: "Actions",
    mode: "Droits (octal, ex. 0640)", group: "Groupe", owner: "Propriétaire", type: "Type", lock: "Verrou",
    listLabel: "Contenu du dossier", selectAll: "Tout sélectionner", select: "Sélectionner", details: "Détails de",
    empty: "Ce dossier est vide.", dropHint: "Déposez ici des fichiers ou des dossiers pour les envoyer.",
    selected: "{n} sélectionnés", entries: "{n} éléments", folder: "Dossier", buckets: "Buckets",
    lockedBy: "Verrouillé par {who}", until: "jusqu'à {t}", noExpiry: "sans échéance", notLocked: "Non verrouillé",
    quota: "{used} utilisés sur {quota} (groupe {group})", noQuota: "Pas de quota",
    newFolderName: "Nom du nouveau dossier", newName: "Nouveau nom",
    moveTo: "Déplacer vers", copyTo: "Copier vers", moveHere: "Déplacer ici", copyHere: "Copier ici",
    done: "Fait : {n}.", someFailed: "{n} en échec : {why}", deleted: "{n} supprimés ; la corbeille peut les restaurer.",
    uploads: "Envois", uploadDone: "Envoyé", uploadFailed: "Échec : ", retrying: "Connexion perdue ; nouvel essai…",
    resumable: "Envois inachevés : {n}. Choisissez de nouveau les mêmes fichiers dans le même dossier pour les reprendre.",
    timeLeft: "encore {t}", of: "{a} sur {b}", perSecond: "{s}/s",
    bucket: "Bucket", allBuckets: "Tous les buckets", trashEmpty: "La corbeille est vide.", restore: "Restaurer",
    restored: "Restauré.", deletedOn: "supprimé le {t}", filesBytes: "{n} fichiers, {b}",
    deleteMarker: "supprimé", currentVersion: "actuelle",
    loading: "Chargement…", locked: "verrouillé",
  },
};

const lang = (navigator.languages || [navigator.language || "en"])
  .map((l) => l.slice(0, 2).toLowerCase()).find((l) => CATALOGUE[l]) || "en";
const t = (key, vars = {}) => (CATALOGUE[lang][key] || CATALOGUE.en[key] || key)
  .replace(/\{(\w+)\}/g, (_, k) => String(vars[k]));
const $ = (id) => document.getElementById(id);
const API = "/api/user/v1/";
const ROW = 44; // px: one row of the virtualised list (app.css says the same)
let csrf = "";
let me = null;

/* ---------- small helpers ---------- */

// Characters that reorder the text around them (bidi embeddings, overrides, isolates and
// marks): in a name they make "invoice_\u202Efdp.exe" read "invoice_exe.pdf". Kura keeps
// such names (WebDAV and S3 clients may carry them); the app shows each of these characters
// as a visible marker, "⟨U+202E⟩", wherever it shows names, paths and other user data
// (docs/web.md). A file's own contents in a preview are shown as they are ("raw").
const BIDI = /[\u061C\u200E\u200F\u202A-\u202E\u2066-\u2069]/g;
const shown = (s) => String(s).replace(BIDI, (c) =>
  "⟨U+" + c.codePointAt(0).toString(16).toUpperCase().padStart(4, "0") + "⟩");

function el(tag, props = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "text") e.textContent = shown(v);
    else if (k === "raw") e.textContent = v;
    else if (k === "aria-label") e.setAttribute(k, shown(v));
    else if (k === "class") e.className = v;
    else if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (k in e && typeof v !== "string") e[k] = v;
    else e.setAttribute(k, v);
  }
  e.append(...children);
  return e;
}

function translate() {
  document.documentElement.lang = lang;
  for (const e of document.querySelectorAll("[data-t]")) e.textContent = t(e.dataset.t);
  for (const e of document.querySelectorAll("[data-tp]")) e.placeholder = t(e.dataset.tp);
  for (const e of document.querySelectorAll("[data-ta]")) e.setAttribute("aria-label", t(e.dataset.ta));
}

function bytes(n) {
  if (n == null) return "";
  const u = ["B", "KB", "MB", "GB", "TB", "PB"];
  let i = 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toFixed(n < 10 ? 1 : 0) : n) + " " + u[i];
}
const when = (ms) => (ms ? new Date(ms).toLocaleString(lang) : "");
function duration(s) {
  if (!isFinite(s)) return "…";
  s = Math.round(s);
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + (s % 60) + " s";
  return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
}
const parent = (p) => p.slice(0, p.lastIndexOf("/")) || "/";
const join = (dir, name) => (dir === "/" ? "" : dir) + "/" + name;
const b64 = (s) => btoa(unescape(encodeURIComponent(s)));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function status(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}
const why = (r) => r.data.message || r.data.error || String(r.status);

async function call(method, path, body, headers = {}) {
  const h = { ...headers };
  if (method !== "GET") h["X-Kura-CSRF"] = csrf;
  if (body !== undefined) h["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch((path.startsWith("/") ? "" : API) + path, {
      method, headers: h, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (e) {
    return { status: 0, data: { message: String(e) } };
  }
  const data = r.status === 204 ? {} : await r.json().catch(() => ({}));
  // the session ended: sign in again (a wrong password or code, 401 invalid, ends nothing)
  if (r.status === 401 && data.error !== "invalid" && path !== "session" && me) { me = null; show("sign-in"); }
  return { status: r.status, data };
}
const q = (params) => new URLSearchParams(params).toString();

const icon = (folder) => el("span", { class: "icon " + (folder ? "i-folder" : "i-file"), "aria-hidden": "true" });

/* ---------- views and routing ---------- */

const VIEWS = ["sign-in", "files", "search", "trash", "home", "admin"];
function show(section) {
  for (const id of VIEWS) $(id).hidden = id !== section;
  const inside = section !== "sign-in";
  $("who").hidden = !inside;
  $("search-form").hidden = !inside;
}

function route() {
  if (!me) return show("sign-in");
  status("");
  let h;
  try { h = decodeURIComponent(location.hash.slice(1) || "/files/"); }
  catch { location.hash = "#/files/"; return; } // a malformed address (`#/files/%`) goes home
  if (h.startsWith("/files")) return openFolder(("/" + h.slice(6)).replace(/\/+/g, "/").replace(/(.)\/$/, "$1"));
  if (h === "/trash") return openTrash();
  if (h === "/account") return home();
  if (h.startsWith("/search/")) return runSearch(h.slice(8));
  if (h.startsWith("/admin")) return adminRoute(h); // admin.js
  location.hash = "#/files/";
}
const go = (hash) => { if (location.hash === hash) route(); else location.hash = hash; };
const folderHash = (p) => "#/files" + p.split("/").map(encodeURIComponent).join("/") + (p === "/" ? "" : "/");

async function start() {
  translate();
  const r = await call("GET", "session");
  if (r.status === 200) return signedIn(r.data);
  show("sign-in");
}

function signedIn(who) {
  me = who;
  csrf = who.csrf;
  $("who-name").textContent = shown(who.user);
  $("admin-link").hidden = !who.admin;
  resumableNotice();
  route();
}

/* ---------- sign-in, account, two-factor ---------- */

async function signIn(ev) {
  ev.preventDefault();
  const f = ev.target;
  const basic = "Basic " + b64(f.user.value + ":" + f.password.value);
  const body = f.code.value ? { code: f.code.value } : {};
  const r = await call("POST", "session", body, { Authorization: basic });
  if (r.status === 200) {
    f.password.value = ""; f.code.value = ""; $("sign-in-error").textContent = "";
    return signedIn(r.data);
  }
  if (r.data.error === "second_factor_required") {
    $("code-field").hidden = false; f.code.focus();
    $("sign-in-error").textContent = t("needCode");
  } else if (r.status === 429) {
    $("sign-in-error").textContent = t("throttled");
  } else {
    $("sign-in-error").textContent = r.data.error === "invalid" ? t("invalid") : t("failed") + why(r);
  }
}

async function home() {
  show("home");
  const s = await call("GET", "session");
  $("tf-state").textContent = s.data.two_factor ? t("tfOn") : t("tfOff");
  $("tf-begin").hidden = !!s.data.two_factor;
  $("tf-disable").hidden = !s.data.two_factor;
  const list = await call("GET", "sessions");
  $("sessions").replaceChildren(...(list.data.sessions || []).map((x) => el("li", {
    text: `${x.agent || "?"} — ${x.client || "?"}, ${t("since")} ${when(x.created_ms)}`,
  })));
  listShares(); // view.js
}

async function signOut(all) {
  await call("DELETE", all ? "sessions" : "session");
  csrf = ""; me = null;
  show("sign-in");
}

async function tfBegin() {
  const r = await call("POST", "2fa");
  if (r.status !== 200) { $("home-error").textContent = t("failed") + why(r); return; }
  $("tf-secret").textContent = r.data.secret;
  $("tf-url").href = r.data.url;
  $("tf-confirm").dataset.secret = r.data.secret;
  $("tf-confirm").hidden = false;
}

async function tfConfirm(ev) {
  ev.preventDefault();
  const f = ev.target;
  // the password again: a session alone must not turn it on
  const basic = "Basic " + b64(me.user + ":" + f.password.value);
  const r = await call("PUT", "2fa", { secret: f.dataset.secret, code: f.code.value }, { Authorization: basic });
  f.password.value = "";
  if (r.status !== 200) { $("home-error").textContent = r.data.error === "invalid" ? t("invalid") : t("failed") + why(r); return; }
  f.hidden = true; f.code.value = "";
  $("tf-code-list").textContent = r.data.recovery_codes.join("\n");
  $("tf-codes").hidden = false;
  $("tf-state").textContent = t("tfOn");
  $("tf-begin").hidden = true;
}

// Turning it off, or new recovery codes (the button pressed says which): the password again
// and a code, which the server checks (a session alone does neither).
async function tfDisable(ev) {
  ev.preventDefault();
  const f = ev.target;
  const renew = ev.submitter && ev.submitter.name === "renew";
  const basic = "Basic " + b64(me.user + ":" + f.password.value);
  const r = renew
    ? await call("POST", "2fa/recovery-codes", { code: f.code.value }, { Authorization: basic })
    : await call("DELETE", "2fa", { code: f.code.value }, { Authorization: basic });
  f.password.value = ""; f.code.value = "";
  if (r.status === 204) { csrf = ""; me = null; show("sign-in"); return; }
  if (renew && r.status === 200) {
    $("home-error").textContent = "";
    $("tf-code-list").textContent = r.data.recovery_codes.join("\n");
    $("tf-codes").hidden = false;
    return;
  }
  $("home-error").textContent = r.data.error === "invalid" ? t("invalid") : t("failed") + why(r);
}

/* ---------- the files view ---------- */

const view = {
  path: "/", entries: [], sorted: [], sort: "name", desc: false,
  selected: new Set(), focus: 0, buckets: [],
};

// Buckets (with their quota meters), fetched once per visit of the top level.
async function loadBuckets() {
  const r = await call("GET", "buckets");
  if (r.status !== 200) { status(t("failed") + why(r), true); return []; }
  view.buckets = r.data.buckets || [];
  return view.buckets;
}

// All pages of a folder (the API pages by name; sorting by size or date needs them all).
async function loadEntries(path) {
  const out = [];
  let after = null;
  do {
    const params = { path, limit: "5000" };
    if (after) params.after = after;
    const r = await call("GET", "files?" + q(params));
    if (r.status !== 200) { status(t("failed") + why(r), true); return null; }
    out.push(...r.data.entries);
    after = r.data.next;
  } while (after);
  return out;
}

async function openFolder(path) {
  show("files");
  const started = performance.now();
  if (path !== view.path) { view.selected.clear(); view.focus = 0; $("list-scroll").scrollTop = 0; }
  view.path = path;
  delete $("list").dataset.path;
  if (!$("status").textContent) status(t("loading"));
  crumbs($("crumbs"), path, (p) => go(folderHash(p)));
  let entries;
  if (path === "/") {
    entries = (await loadBuckets()).map((b) => ({ ...b, path: "/" + b.name, folder: true, size: null, lock: null }));
  } else {
    if (!view.buckets.length) await loadBuckets();
    entries = await loadEntries(path);
    if (!entries) return;
  }
  if (view.path !== path) return; // another folder was opened meanwhile
  view.entries = entries;
  sortEntries();
  meter();
  renderList();
  $("list").dataset.renderMs = String(Math.round(performance.now() - started));
  $("list").dataset.path = path;
  if ($("status").textContent === t("loading")) status("");
  $("list-count").textContent = t("entries", { n: entries.length });
}

function crumbs(nav, path, open) {
  const parts = path.split("/").filter(Boolean);
  const items = [el("button", { type: "button", text: t("buckets"), on: { click: () => open("/") } })];
  parts.forEach((name, i) => {
    const p = "/" + parts.slice(0, i + 1).join("/");
    items.push(el("span", { text: " / ", "aria-hidden": "true" }));
    items.push(i === parts.length - 1
      ? el("span", { text: name, "aria-current": "location" })
      : el("button", { type: "button", text: name, on: { click: () => open(p) } }));
  });
  nav.replaceChildren(...items);
}

function meter() {
  const bucket = view.path.split("/")[1];
  const b = view.buckets.find((x) => x.name === bucket);
  const quota = b && b.quota;
  $("quota").hidden = !b;
  if (!b) return;
  if (!quota || !quota.quota) {
    $("quota-meter").hidden = true;
    $("quota-text").textContent = t("noQuota");
    return;
  }
  $("quota-meter").hidden = false;
  $("quota-meter").max = quota.quota;
  $("quota-meter").value = quota.used;
  $("quota-meter").high = quota.quota * 0.9;
  $("quota-text").textContent = t("quota", { used: bytes(quota.used), quota: bytes(quota.quota), group: quota.group });
}

const collator = new Intl.Collator(lang, { numeric: true, sensitivity: "base" });
function sortEntries() {
  const key = {
    name: (a, b) => collator.compare(a.name, b.name),
    size: (a, b) => (a.size || 0) - (b.size || 0) || collator.compare(a.name, b.name),
    date: (a, b) => (a.modified_ms || 0) - (b.modified_ms || 0) || collator.compare(a.name, b.name),
  }[view.sort];
  const dir = view.desc ? -1 : 1;
  view.sorted = view.entries.slice().sort((a, b) => (b.folder - a.folder) || dir * key(a, b));
  for (const h of ["name", "size", "date"]) {
    $("h-" + h).setAttribute("aria-sort", h === view.sort ? (view.desc ? "descending" : "ascending") : "none");
  }
}

function lockText(lock) {
  if (!lock) return t("notLocked");
  return t("lockedBy", { who: lock.holder }) + " " +
    (lock.expires_ms ? t("until", { t: when(lock.expires_ms) }) : t("noExpiry"));
}

// The virtualised list: only the rows in sight (and a few around) are in the page.
let drawn = { from: -1, to: -1, n: -1 };
function renderList(force = true) {
  const list = view.sorted;
  const body = $("list-body");
  const scroller = $("list-scroll");
  body.style.height = list.length * ROW + "px";
  $("list").setAttribute("aria-rowcount", String(list.length + 1));
  $("list-empty").hidden = list.length > 0;
  const from = Math.max(0, Math.floor(scroller.scrollTop / ROW) - 10);
  const to = Math.min(list.length, Math.ceil((scroller.scrollTop + scroller.clientHeight) / ROW) + 10);
  if (!force && drawn.from === from && drawn.to === to && drawn.n === list.length) return;
  drawn = { from, to, n: list.length };
  const rows = [];
  for (let i = from; i < to; i++) rows.push(row(list[i], i));
  body.replaceChildren(...rows);
  selectionBar();
}

function row(e, i) {
  const sel = el("input", {
    type: "checkbox", checked: view.selected.has(e.name), tabIndex: -1,
    "aria-label": t("select") + " " + e.name,
    on: { change: (ev) => { toggle(e.name, ev.target.checked); } },
  });
  const name = e.folder
    ? el("button", { type: "button", class: "link name", text: e.name, tabIndex: -1, on: { click: () => go(folderHash(e.path)) } })
    : el("a", { class: "name", text: e.name, tabIndex: -1, href: API + "download?" + q({ path: e.path }), download: e.name,
      // a file the app can preview opens its preview (view.js); others download
      on: { click: (ev) => { if (previewKind(e)) { ev.preventDefault(); preview(e); } } } });
  const lock = e.lock ? el("span", { class: "lock", text: t("locked"), title: lockText(e.lock), "aria-label": lockText(e.lock) }) : "";
  const r = el("div", { class: "row" + (view.selected.has(e.name) ? " selected" : ""), role: "row", "aria-rowindex": String(i + 2), tabIndex: i === view.focus ? 0 : -1 },
    el("span", { role: "cell", class: "c-sel" }, sel),
    el("span", { role: "cell", class: "c-name" }, icon(e.folder), name, lock),
    el("span", { role: "cell", class: "c-size", text: e.folder ? "" : bytes(e.size) }),
    el("span", { role: "cell", class: "c-date", text: when(e.modified_ms) }),
    el("span", { role: "cell", class: "c-perm", text: `${e.owner || ""}${e.group ? ":" + e.group : ""} ${e.mode || ""}` }),
    el("span", { role: "cell", class: "c-act" }, el("button", {
      type: "button", class: "more", text: "⋯", tabIndex: -1, "aria-label": t("details") + " " + e.name,
      on: { click: () => details(e) },
    })));
  r.dataset.index = String(i);
  r.style.top = i * ROW + "px";
  r.addEventListener("focus", () => { view.focus = i; });
  return r;
}

function toggle(name, on) {
  if (on) view.selected.add(name); else view.selected.delete(name);
  renderList();
}

function selectionBar() {
  const n = view.selected.size;
  $("selection").hidden = n === 0 || view.path === "/";
  $("sel-count").textContent = t("selected", { n });
  $("select-all").checked = n > 0 && n === view.entries.length;
  $("new-folder").hidden = false;
  const inBucket = view.path !== "/";
  $("pick-files-label").hidden = !inBucket;
  $("pick-folder-label").hidden = !inBucket;
  if (n) $("sel-zip").href = API + "zip?" + q({ dir: view.path, names: [...view.selected].join("/") });
}

function focusRow(i) {
  const n = view.sorted.length;
  if (!n) return;
  i = Math.max(0, Math.min(n - 1, i));
  view.focus = i;
  const s = $("list-scroll");
  if (i * ROW < s.scrollTop) s.scrollTop = i * ROW;
  else if ((i + 1) * ROW > s.scrollTop + s.clientHeight) s.scrollTop = (i + 1) * ROW - s.clientHeight;
  renderList();
  const r = $("list-body").querySelector(`[data-index="${i}"]`);
  if (r) r.focus();
}

function listKeys(ev) {
  const e = view.sorted[view.focus];
  const page = Math.max(1, Math.floor($("list-scroll").clientHeight / ROW) - 1);
  const moves = { ArrowDown: 1, ArrowUp: -1, PageDown: page, PageUp: -page };
  if (ev.key in moves) { ev.preventDefault(); focusRow(view.focus + moves[ev.key]); return; }
  if (ev.key === "Home") { ev.preventDefault(); focusRow(0); return; }
  if (ev.key === "End") { ev.preventDefault(); focusRow(view.sorted.length - 1); return; }
  if (!e) return;
  if (ev.key === "Enter") { ev.preventDefault(); if (e.folder) go(folderHash(e.path)); else details(e); }
  else if (ev.key === " ") { ev.preventDefault(); toggle(e.name, !view.selected.has(e.name)); focusRow(view.focus); }
  else if (ev.key === "Delete") { ev.preventDefault(); removeMany(view.selected.size ? selectedPaths() : [e.path]); }
  else if (ev.key === "F2") { ev.preventDefault(); rename(e); }
  else if (ev.key === "Backspace" && view.path !== "/") { ev.preventDefault(); go(folderHash(parent(view.path))); }
}

const selectedPaths = () => [...view.selected].map((n) => join(view.path, n));

/* ---------- changes ---------- */

function ask(label, initial = "") {
  return new Promise((resolve) => {
    const d = $("ask"), f = $("ask-form");
    $("ask-label").textContent = label;
    f.value.value = initial;
    const done = (v) => { f.onsubmit = null; $("ask-cancel").onclick = null; d.close(); resolve(v); };
    f.onsubmit = (ev) => { ev.preventDefault(); done(f.value.value); };
    $("ask-cancel").onclick = () => done(null);
    d.onclose = () => resolve(null);
    d.showModal();
    f.value.focus();
    f.value.select();
  });
}

function report(r, n) {
  if (r.status !== 200) { status(t("failed") + why(r), true); return; }
  const failed = r.data.failed || [];
  if (failed.length) status(t("someFailed", { n: failed.length, why: failed.map((f) => `${f.path}: ${f.message || f.error}`).join("; ") }), true);
  else status(n ? n : t("done", { n: (r.data.done || []).length }));
}

async function newFolder() {
  const name = await ask(t("newFolderName"));
  if (!name) return;
  const r = await call("POST", "folders", { path: join(view.path, name) });
  if (r.status !== 201 && r.status !== 200) status(t("failed") + why(r), true);
  else status(t("done", { n: 1 }));
  openFolder(view.path);
}

async function rename(e) {
  const name = await ask(t("newName"), e.name);
  if (!name || name === e.name) return;
  const r = await call("POST", "rename", { path: e.path, to: join(parent(e.path), name) });
  if (r.status !== 200 && r.status !== 201 && r.status !== 204) status(t("failed") + why(r), true);
  else status(t("done", { n: 1 }));
  $("details").close();
  openFolder(view.path);
}

async function removeMany(paths) {
  if (!paths.length) return;
  const r = await call("POST", "delete", { paths });
  view.selected.clear();
  report(r, r.status === 200 && !(r.data.failed || []).length ? t("deleted", { n: paths.length }) : "");
  if ($("details").open) $("details").close();
  openFolder(view.path);
}

async function transfer(paths, copy) {
  if (!paths.length) return;
  const to = await pickFolder(copy ? t("copyTo") : t("moveTo"), copy ? t("copyHere") : t("moveHere"));
  if (!to) return;
  const r = await call("POST", copy ? "copy" : "move", { sources: paths, to });
  if (!copy) view.selected.clear();
  report(r);
  if ($("details").open) $("details").close();
  openFolder(view.path);
}

// A folder picker over the same listing API; resolves to the chosen path, or null.
function pickFolder(title, okText) {
  return new Promise((resolve) => {
    const d = $("picker");
    let at = view.path;
    $("picker-title").textContent = title;
    $("picker-ok").textContent = okText;
    const open = async (p) => {
      at = p;
      crumbs($("picker-crumbs"), p, open);
      $("picker-ok").disabled = p === "/";
      let folders;
      if (p === "/") folders = (await loadBuckets()).map((b) => ({ name: b.name, path: "/" + b.name }));
      else folders = ((await loadEntries(p)) || []).filter((e) => e.folder);
      folders.sort((a, b) => collator.compare(a.name, b.name));
      $("picker-list").replaceChildren(...folders.map((f) => el("li", {},
        el("button", { type: "button", class: "link" , on: { click: () => open(f.path) } }, icon(true), el("span", { text: f.name })))));
    };
    const done = (v) => { d.onclose = null; d.close(); resolve(v); };
    $("picker-ok").onclick = () => done(at);
    $("picker-cancel").onclick = () => done(null);
    d.onclose = () => resolve(null);
    open(at);
    d.showModal();
  });
}

async function details(e) {
  const d = $("details");
  $("d-name").textContent = shown(e.name);
  const facts = [
    [t("type"), e.folder ? t("folder") : e.content_type || ""],
    [t("size"), e.folder ? "" : bytes(e.size)],
    [t("modified"), when(e.modified_ms)],
    [t("owner"), e.owner || ""], [t("group"), e.group || ""], [t("mode"), e.mode || ""],
    [t("lock"), lockText(e.lock)],
  ];
  $("d-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
  $("d-download").hidden = e.folder;
  $("d-download").href = API + "download?" + q({ path: e.path });
  $("d-download").download = e.name;
  $("d-versions").hidden = e.folder;
  $("d-versions-box").hidden = true;
  $("d-error").textContent = "";
  const f = $("d-attrs");
  f.mode.value = e.mode || "";
  f.group.value = e.group || "";
  f.onsubmit = async (ev) => {
    ev.preventDefault();
    const change = { path: e.path };
    if (f.mode.value !== (e.mode || "")) change.mode = f.mode.value;
    if (f.group.value && f.group.value !== (e.group || "")) change.group = f.group.value;
    const r = await call("POST", "attributes", change);
    if (r.status !== 200) { $("d-error").textContent = t("failed") + why(r); return; }
    d.close();
    status(t("done", { n: 1 }));
    openFolder(view.path);
  };
  $("d-rename").onclick = () => rename(e);
  $("d-move").onclick = () => transfer([e.path], false);
  $("d-copy").onclick = () => transfer([e.path], true);
  $("d-delete").onclick = () => removeMany([e.path]);
  $("d-versions").onclick = () => versions(e);
  detailsMore(e); // preview, tags, share (view.js)
  if (!d.open) d.showModal();
}

async function versions(e) {
  const r = await call("GET", "versions?" + q({ path: e.path }));
  if (r.status !== 200) { $("d-error").textContent = t("failed") + why(r); return; }
  const items = (r.data.versions || []).map((v, i) => el("li", {},
    el("span", { text: `${when(v.modified_ms)} — ${v.delete_marker ? t("deleteMarker") : bytes(v.size)}${i === 0 && !v.replaced_ms ? " (" + t("currentVersion") + ")" : ""} ` }),
    v.delete_marker ? "" : versionLink(e, v), " ",
    v.delete_marker ? "" : el("button", { type: "button", text: t("restore"), on: { click: async () => {
      const x = await call("POST", "restore", { path: e.path, version: v.id });
      if (x.status !== 200) { $("d-error").textContent = t("failed") + why(x); return; }
      $("details").close();
      status(t("restored"));
      openFolder(view.path);
    } } })));
  $("d-version-list").replaceChildren(...items);
  $("d-versions-box").hidden = false;
}

/* ---------- uploads: a small tus 1.0 client ---------- */

const TUS = { "Tus-Resumable": "1.0.0" };
const CHUNK = 32 * 1024 * 1024;
const PARALLEL = 3;
const queue = [];
const jobs = [];
let running = 0;

// The key an upload is remembered by across reloads: same user, target, size and date.
const fingerprint = (j) => `kura-tus:${me.user}:${j.target}:${j.file.size}:${j.file.lastModified}`;

function enqueue(list) {
  // list: [{file, dir}] where dir is the target folder
  $("uploads").hidden = false;
  for (const { file, dir } of list) {
    const j = { file, dir, target: join(dir, file.name), sent: 0, base: 0, started: 0, state: "wait" };
    j.bar = el("progress", { max: file.size || 1, value: 0 });
    j.info = el("span", { class: "muted" });
    j.li = el("li", {}, el("span", { class: "up-name", text: j.target }), j.bar, j.info);
    j.bar.setAttribute("aria-label", shown(j.target));
    $("up-list").append(j.li);
    jobs.push(j);
    queue.push(j);
  }
  pump();
  progress();
}

function pump() {
  while (running < PARALLEL && queue.length) {
    const j = queue.shift();
    running++;
    upload(j).then(() => {
      j.state = "done";
      j.info.textContent = t("uploadDone");
    }, (e) => {
      j.state = "failed";
      j.info.textContent = t("uploadFailed") + (e && e.message ? e.message : String(e));
      j.info.className = "error";
    }).finally(() => {
      running--;
      progress();
      if (j.dir === view.path || view.path === parent(j.dir) || j.dir.startsWith(view.path + "/")) refreshSoon();
      pump();
    });
  }
}

let refreshTimer = 0;
function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(() => { if (!$("files").hidden) openFolder(view.path); }, 300);
}

async function tusFetch(method, url, headers = {}, body) {
  const h = { ...TUS, ...headers };
  if (method !== "HEAD") h["X-Kura-CSRF"] = csrf;
  return fetch(url, { method, headers: h, body, credentials: "same-origin", cache: "no-store" });
}

async function upload(j) {
  const key = fingerprint(j);
  let url = localStorage.getItem(key);
  let offset = 0;
  if (url) {
    const h = await tusFetch("HEAD", url).catch(() => null);
    if (h && h.ok) {
      offset = Number(h.headers.get("Upload-Offset")) || 0;
      j.li.dataset.resumedFrom = String(offset);
    } else { url = null; localStorage.removeItem(key); }
  }
  if (!url) {
    const meta = `path ${b64(j.dir)},filename ${b64(j.file.name)}` + (j.file.type ? `,filetype ${b64(j.file.type)}` : "");
    const r = await tusFetch("POST", API + "uploads", { "Upload-Length": String(j.file.size), "Upload-Metadata": meta });
    if (r.status !== 201) {
      const body = await r.json().catch(() => ({}));
      throw new Error(body.message || body.error || String(r.status));
    }
    url = new URL(r.headers.get("Location"), location.href).pathname;
    localStorage.setItem(key, url);
  }
  j.state = "run";
  j.base = offset;
  j.sent = offset;
  j.started = performance.now();
  let failures = 0;
  // an empty file is whole once created
  for (let done = j.file.size === 0; !done;) {
    try {
      offset = await patch(j, url, offset);
      failures = 0;
      done = offset >= j.file.size;
    } catch (e) {
      if (e.fatal) { localStorage.removeItem(key); throw e; }
      failures++;
      if (failures > 12) throw e;
      j.info.textContent = t("retrying");
      await sleep(Math.min(8000, 500 * 2 ** failures));
      const h = await tusFetch("HEAD", url).catch(() => null);
      if (h && h.ok) offset = Number(h.headers.get("Upload-Offset")) || 0;
      else if (h && (h.status === 404 || h.status === 410)) { localStorage.removeItem(key); throw new Error(t("failed") + h.status); }
      j.sent = offset;
      j.li.dataset.resumedFrom = String(offset);
      // the last PATCH arrived whole before the connection dropped
      done = j.file.size > 0 && offset >= j.file.size;
    }
  }
  localStorage.removeItem(key);
  j.sent = j.file.size;
  j.bar.value = j.file.size || 1;
}

function patch(j, url, offset) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open("PATCH", url);
    x.setRequestHeader("Tus-Resumable", "1.0.0");
    x.setRequestHeader("X-Kura-CSRF", csrf);
    x.setRequestHeader("Upload-Offset", String(offset));
    x.setRequestHeader("Content-Type", "application/offset+octet-stream");
    x.upload.onprogress = (ev) => { j.sent = offset + ev.loaded; progress(); };
    x.onload = () => {
      if (x.status === 204) return resolve(Number(x.getResponseHeader("Upload-Offset")));
      let body = {};
      try { body = JSON.parse(x.responseText); } catch (_) { /* not JSON */ }
      const e = new Error(body.message || body.error || String(x.status));
      // an offset out of step, a lock or a server error may pass; the rest will not
      e.fatal = ![409, 423, 500, 502, 503, 504].includes(x.status);
      reject(e);
    };
    x.onerror = () => reject(new Error("network"));
    x.send(j.file.slice(offset, Math.min(j.file.size, offset + CHUNK)));
  });
}

let lastDraw = 0;
function progress() {
  const now = performance.now();
  if (now - lastDraw < 200 && running) return;
  lastDraw = now;
  let total = 0, sent = 0, rate = 0;
  for (const j of jobs) {
    total += j.file.size;
    sent += j.state === "failed" ? j.file.size : j.sent;
    if (j.state !== "run") continue;
    const secs = (now - j.started) / 1000;
    const speed = secs > 0.5 ? (j.sent - j.base) / secs : 0;
    rate += speed;
    j.bar.value = j.sent;
    j.info.textContent = t("of", { a: bytes(j.sent), b: bytes(j.file.size) }) +
      (speed ? " — " + t("perSecond", { s: bytes(speed) }) + " — " + t("timeLeft", { t: duration((j.file.size - j.sent) / speed) }) : "");
  }
  $("up-total").max = total || 1;
  $("up-total").value = sent;
  $("up-total-text").textContent = t("of", { a: bytes(sent), b: bytes(total) }) +
    (rate ? " — " + t("perSecond", { s: bytes(rate) }) + " — " + t("timeLeft", { t: duration((total - sent) / rate) }) : "");
}

function resumableNotice() {
  let n = 0;
  for (let i = 0; i < localStorage.length; i++) if (localStorage.key(i).startsWith(`kura-tus:${me.user}:`)) n++;
  $("up-resume").hidden = n === 0;
  $("up-resume").textContent = t("resumable", { n });
  if (n) $("uploads").hidden = false;
}

function picked(input) {
  const list = [...input.files].map((file) => {
    const rel = file.webkitRelativePath || "";
    const sub = rel.includes("/") ? rel.slice(0, rel.lastIndexOf("/")) : "";
    return { file, dir: sub ? join(view.path, sub) : view.path };
  });
  input.value = "";
  if (list.length) enqueue(list);
}

// Files and whole folders dropped on the page (folders walked through the entries API).
async function dropped(ev) {
  ev.preventDefault();
  document.body.classList.remove("dragging");
  if (view.path === "/" || $("files").hidden) return;
  const base = view.path;
  const out = [];
  const walk = async (entry, dir) => {
    if (entry.isFile) {
      const file = await new Promise((res, rej) => entry.file(res, rej));
      out.push({ file, dir });
    } else if (entry.isDirectory) {
      const reader = entry.createReader();
      for (;;) {
        const batch = await new Promise((res, rej) => reader.readEntries(res, rej));
        if (!batch.length) break;
        for (const e of batch) await walk(e, join(dir, entry.name));
      }
    }
  };
  const entries = [...ev.dataTransfer.items].map((i) => i.webkitGetAsEntry && i.webkitGetAsEntry()).filter(Boolean);
  if (entries.length) for (const e of entries) await walk(e, base);
  else for (const file of ev.dataTransfer.files) out.push({ file, dir: base });
  if (out.length) enqueue(out);
}

/* ---------- search ---------- */

let searchNext = null;
async function runSearch(query, more = false) {
  show("search");
  $("search-q").value = query;
  const params = { q: query, limit: "100" };
  if (more && searchNext) params.cursor = searchNext;
  const r = await call("GET", "search?" + q(params));
  if (!more) $("results").replaceChildren();
  if (r.status !== 200) { status(t("failed") + why(r), true); return; }
  status("");
  searchNext = r.data.next_cursor;
  $("more-results").hidden = !searchNext;
  const items = r.data.items.map((it) => {
    const tags = (it.tags || []).map(([k, v]) => `${k}=${v}`).join(", ");
    const open = () => (it.is_dir ? go(folderHash(it.path)) : go(folderHash(parent(it.path))));
    return el("li", {},
      el("button", { type: "button", class: "link", on: { click: open } }, icon(it.is_dir), el("span", { text: it.path })),
      el("span", { class: "muted", text: " " + [it.is_dir ? "" : bytes(it.size), when(it.modified_ms), tags, it.description || ""].filter(Boolean).join(" — ") }));
  });
  if (!more && !items.length) items.push(el("li", { text: t("noResults") }));
  $("results").append(...items);
}

/* ---------- trash ---------- */

async function openTrash() {
  show("trash");
  const sel = $("trash-bucket");
  const keep = sel.value;
  const buckets = await loadBuckets();
  sel.replaceChildren(el("option", { value: "", text: t("allBuckets") }), ...buckets.map((b) => el("option", { value: b.name, text: b.name })));
  sel.value = keep;
  trashMore(sel.value); // view.js
  const r = await call("GET", "trash" + (sel.value ? "?" + q({ bucket: sel.value }) : ""));
  if (r.status !== 200) { status(t("failed") + why(r), true); return; }
  const list = r.data.deletes || [];
  $("trash-empty").hidden = list.length > 0;
  $("trash-list").replaceChildren(...list.map((d) => el("li", {},
    icon(d.folder), el("span", { class: "name", text: d.path }),
    el("span", { class: "muted", text: " " + t("deletedOn", { t: when(d.deleted_ms) }) + " — " + t("filesBytes", { n: d.files, b: bytes(d.bytes) }) + " " }),
    el("button", { type: "button", text: t("restore"), "aria-label": t("restore") + " " + d.path, on: { click: async () => {
      const x = await call("POST", "restore", { path: d.path });
      if (x.status !== 200) { status(t("failed") + why(x), true); return; }
      status(t("restored"));
      openTrash();
    } } }))));
}

/* ---------- wiring ---------- */

document.addEventListener("DOMContentLoaded", () => {
  $("sign-in-form").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", () => signOut(false));
  $("sign-out-all").addEventListener("click", () => signOut(true));
  $("tf-begin").addEventListener("click", tfBegin);
  $("tf-confirm").addEventListener("submit", tfConfirm);
  $("tf-disable").addEventListener("submit", tfDisable);
  $("search-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    go("#/search/" + encodeURIComponent($("search-q").value));
  });
  $("more-results").addEventListener("click", () => runSearch($("search-q").value, true));
  $("trash-bucket").addEventListener("change", openTrash);
  $("new-folder").addEventListener("click", newFolder);
  $("pick-files").addEventListener("change", (ev) => picked(ev.target));
  $("pick-folder").addEventListener("change", (ev) => picked(ev.target));
  $("sel-delete").addEventListener("click", () => removeMany(selectedPaths()));
  $("sel-move").addEventListener("click", () => transfer(selectedPaths(), false));
  $("sel-copy").addEventListener("click", () => transfer(selectedPaths(), true));
  $("select-all").addEventListener("change", (ev) => {
    view.selected = new Set(ev.target.checked ? view.entries.map((e) => e.name) : []);
    renderList();
  });
  for (const b of document.querySelectorAll("[data-sort]")) {
    b.addEventListener("click", () => {
      view.desc = view.sort === b.dataset.sort ? !view.desc : false;
      view.sort = b.dataset.sort;
      sortEntries();
      renderList();
    });
  }
  $("list-scroll").addEventListener("scroll", () => renderList(false), { passive: true });
  $("list-body").addEventListener("keydown", listKeys);
  $("up-close").addEventListener("click", () => { $("uploads").hidden = true; });
  document.addEventListener("dragover", (ev) => { ev.preventDefault(); document.body.classList.add("dragging"); });
  document.addEventListener("dragleave", (ev) => { if (!ev.relatedTarget) document.body.classList.remove("dragging"); });
  document.addEventListener("drop", dropped);
  window.addEventListener("hashchange", route);
  window.addEventListener("resize", () => renderList(false));
  start();
});
