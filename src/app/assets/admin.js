// The admin console (#/admin/...), for administrators: users, groups and quotas, access keys,
// share links, WebDAV locks, replication and the server's facts. It calls the admin API
// (/api/v1/) with the session cookie and its CSRF token, through app.js's `call`; every rule
// (names, the last administrator, quotas...) is the server's. Loaded after app.js, whose
// helpers (el, t, $, call, show, status, why, bytes, when) it uses; its strings join the one
// catalogue. User data only ever goes in through textContent.
"use strict";

Object.assign(CATALOGUE.en, {
  admin: "Admin", admOnly: "This page is for administrators.", admTabs: "Admin sections",
  admUsers: "Users", admGroups: "Groups and quotas", admKeys: "S3 access keys", admShares: "Share links",
  admLocks: "WebDAV locks", admReplication: "Replication", admServer: "Server",
  admAddUser: "Add a user", admPasswordOpt: "Password (empty: one is generated)", admAdmin: "Administrator",
  admPrimary: "Primary group", admNone: "(none)", admAdd: "Add", admGroupsOf: "Groups",
  admResetPw: "Reset password", admReset2fa: "Reset two-factor", admMakeAdmin: "Make administrator",
  admUnmakeAdmin: "Withdraw administrator", admRemove: "Remove", admConfirm: "Really? Click again",
  admNewPassword: "New password for {user}", admGenerated: "Password of {user}, shown only now: ",
  admYes: "yes", admNo: "no", admAddGroup: "Add a group", admMembers: "Members", admAddMember: "Add member",
  admQuotaBytes: "Quota (e.g. 10 GB, 500 MiB; empty: none)", admQuotaFiles: "File quota (empty: none)",
  admSetQuota: "Set quota", admUsedBytes: "{used} of {quota}", admNoQuota: "{used}, no quota",
  admFiles: "{used} files of {quota}", admFilesFree: "{used} files, no file quota",
  admVersions: "Old versions and trash: {b} in {n} files", admBadSize: "Not a size: {s}",
  admCreateKey: "Create a key for", admCreate: "Create", admKeyId: "Access key ID", admCreated: "Created",
  admSecret: "Secret of {id} (for {user}), shown only now: ", admRevoke: "Revoke",
  admPath: "Path", admUser: "User", admPassword: "Password", admExpires: "Expires", admNever: "never",
  admDownloads: "Downloads", admDropBox: "Drop box", admNoShares: "No share links.",
  admScope: "Scope", admDepth: "Depth", admOwner: "Owner", admBreak: "Break", admNoLocks: "No locks.",
  admPeers: "Peers", admRules: "Rules", admEndpoint: "Endpoint", admNodeId: "Node ID",
  admFingerprint: "CA fingerprint", admBucket: "Bucket", admPeer: "Peer", admPrefix: "Prefix",
  admBoth: "Both ways", admBacklog: "Backlog", admLag: "Lag", admLastError: "Last error",
  admShipped: "Shipped", admSkipped: "Skipped", admNoPeers: "No peers.", admNoRules: "No rules.",
  admVersion: "Version", admUptime: "Up for", admStarted: "Started", admTls: "TLS certificate (SHA-256)",
  admTlsDays: "Certificate expires in", admDays: "{n} days", admTlsOff: "off (plain HTTP behind a proxy)",
  admStorage: "Storage backend", admPublicUrl: "Public address", admDone: "Done.",
});
Object.assign(CATALOGUE.fr, {
  admin: "Administration", admOnly: "Cette page est réservée aux administrateurs.", admTabs: "Sections d'administration",
  admUsers: "Utilisateurs", admGroups: "Groupes et quotas", admKeys: "Clés d'accès S3", admShares: "Liens de partage",
  admLocks: "Verrous WebDAV", admReplication: "Réplication", admServer: "Serveur",
  admAddUser: "Ajouter un utilisateur", admPasswordOpt: "Mot de passe (vide : il est généré)", admAdmin: "Administrateur",
  admPrimary: "Groupe principal", admNone: "(aucun)", admAdd: "Ajouter", admGroupsOf: "Groupes",
  admResetPw: "Nouveau mot de passe", admReset2fa: "Réinitialiser la double authentification", admMakeAdmin: "Rendre administrateur",
  admUnmakeAdmin: "Retirer l'administration", admRemove: "Supprimer", admConfirm: "Vraiment ? Cliquez encore",
  admNewPassword: "Nouveau mot de passe de {user}", admGenerated: "Mot de passe de {user}, affiché cette fois seulement : ",
  admYes: "oui", admNo: "non", admAddGroup: "Ajouter un groupe", admMembers: "Membres", admAddMember: "Ajouter un membre",
  admQuotaBytes: "Quota (ex. 10 GB, 500 MiB ; vide : aucun)", admQuotaFiles: "Quota de fichiers (vide : aucun)",
  admSetQuota: "Fixer le quota", admUsedBytes: "{used} sur {quota}", admNoQuota: "{used}, sans quota",
  admFiles: "{used} fichiers sur {quota}", admFilesFree: "{used} fichiers, sans quota de fichiers",
  admVersions: "Anciennes versions et corbeille : {b} en {n} fichiers", admBadSize: "Taille invalide : {s}",
  admCreateKey: "Créer une clé pour", admCreate: "Créer", admKeyId: "Identifiant de clé", admCreated: "Créée",
  admSecret: "Secret de {id} (pour {user}), affiché cette fois seulement : ", admRevoke: "Révoquer",
  admPath: "Chemin", admUser: "Utilisateur", admPassword: "Mot de passe", admExpires: "Expire", admNever: "jamais",
  admDownloads: "Téléchargements", admDropBox: "Dépôt", admNoShares: "Aucun lien de partage.",
  admScope: "Portée", admDepth: "Profondeur", admOwner: "Propriétaire", admBreak: "Lever", admNoLocks: "Aucun verrou.",
  admPeers: "Pairs", admRules: "Règles", admEndpoint: "Adresse", admNodeId: "Identifiant de nœud",
  admFingerprint: "Empreinte de l'AC", admBucket: "Bucket", admPeer: "Pair", admPrefix: "Préfixe",
  admBoth: "Dans les deux sens", admBacklog: "En attente", admLag: "Retard", admLastError: "Dernière erreur",
  admShipped: "Envoyés", admSkipped: "Sautés", admNoPeers: "Aucun pair.", admNoRules: "Aucune règle.",
  admVersion: "Version", admUptime: "En marche depuis", admStarted: "Démarré", admTls: "Certificat TLS (SHA-256)",
  admTlsDays: "Le certificat expire dans", admDays: "{n} jours", admTlsOff: "désactivé (HTTP derrière un proxy)",
  admStorage: "Stockage", admPublicUrl: "Adresse publique", admDone: "Fait.",
});

const ADMIN_API = "/api/v1/";
const ADMIN_TABS = ["users", "groups", "keys", "shares", "locks", "replication", "server"];
const admCall = (method, path, body) => call(method, ADMIN_API + path, body);
const enc = encodeURIComponent;
let admTab = "users";

// #/admin/TAB: the tab bar and the tab's view (a non-administrator gets one sentence).
function adminRoute(h) {
  show("admin");
  const box = $("admin");
  if (!me || !me.admin) { box.replaceChildren(el("p", { text: t("admOnly") })); return; }
  admTab = ADMIN_TABS.includes(h.split("/")[2]) ? h.split("/")[2] : "users";
  const label = { users: "admUsers", groups: "admGroups", keys: "admKeys", shares: "admShares",
    locks: "admLocks", replication: "admReplication", server: "admServer" };
  const tabs = el("nav", { id: "adm-tabs", "aria-label": t("admTabs") }, ...ADMIN_TABS.map((k) =>
    el("a", { href: "#/admin/" + k, text: t(label[k]), id: "adm-tab-" + k,
      "aria-current": k === admTab ? "page" : "false" })));
  const body = el("div", { id: "adm-body" });
  box.replaceChildren(el("h2", { id: "admin-title", text: t(label[admTab]) }), tabs, body);
  admRender();
}

// Draws the current tab again from fresh answers.
async function admRender() {
  const views = { users: admUsers, groups: admGroups, keys: admKeys, shares: admShares,
    locks: admLocks, replication: admReplication, server: admServer };
  const body = $("adm-body");
  const parts = await views[admTab]();
  if (parts && $("adm-body") === body) body.replaceChildren(...parts);
}

// Runs an admin API call; on success says so and draws the tab again, else shows why.
async function admDo(method, path, body, after) {
  const r = await admCall(method, path, body);
  if (r.status >= 200 && r.status < 300) {
    status(t("admDone"));
    if (after) after(r.data);
    await admRender();
  } else {
    status(t("failed") + why(r), true);
  }
  return r;
}

// GETs a list; null (with the reason shown) when refused.
async function admGet(path) {
  const r = await admCall("GET", path);
  if (r.status !== 200) { status(t("failed") + why(r), true); return null; }
  return r.data;
}

// A table of rows (cells: text or nodes); `key` names each row for tests and screen readers.
function admTable(id, heads, rows, empty) {
  if (!rows.length) return el("p", { id, class: "muted", text: t(empty) });
  // user data in a cell shows its bidi controls as markers (app.js: shown)
  const part = (x) => (typeof x === "string" ? shown(x) : x);
  const cell = (tag, c) => el(tag, {}, ...(Array.isArray(c) ? c : [c == null ? "" : c]).map(part));
  return el("div", { class: "adm-scroll" }, el("table", { id, class: "adm" },
    el("thead", {}, el("tr", {}, ...heads.map((h) => cell("th", t(h))))),
    el("tbody", {}, ...rows.map(([key, cells]) =>
      el("tr", { "data-key": key }, ...cells.map((c) => cell("td", c)))))));
}

// A button that asks to be clicked a second time (within 5 s) before it acts.
function admDanger(text, cls, act) {
  const b = el("button", { type: "button", class: "danger " + cls, text });
  b.addEventListener("click", () => {
    if (b.dataset.armed) { delete b.dataset.armed; act(); return; }
    b.dataset.armed = "1";
    b.textContent = t("admConfirm");
    setTimeout(() => { delete b.dataset.armed; b.textContent = text; }, 5000);
  });
  return b;
}

const admButton = (text, cls, act) => el("button", { type: "button", class: cls, text, on: { click: act } });

function admField(label, input) {
  return el("label", {}, el("span", { text: t(label) }), input);
}

function admSelect(name, values, blank) {
  const s = el("select", { name });
  if (blank) s.append(el("option", { value: "", text: t("admNone") }));
  for (const v of values) s.append(el("option", { value: v, text: v }));
  return s;
}

// A secret shown once (a generated password, an access key's secret), with its label.
function admOnce(label, secret) {
  const box = el("p", { id: "adm-once", class: "once", role: "alert" }, label, el("code", { text: secret }));
  $("status").replaceChildren(box);
}

// "10 GB", "500 MiB", "1.5TB", "1048576" -> bytes; "" -> null; NaN when it is not a size.
function admSize(s) {
  s = s.trim();
  if (!s) return null;
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgtp])(i?)b?|b)?$/i.exec(s);
  if (!m) return NaN;
  const pow = m[2] ? "kmgtp".indexOf(m[2].toLowerCase()) + 1 : 0;
  return Math.round(Number(m[1]) * (m[3] ? 1024 : 1000) ** pow);
}

/* ---------- users ---------- */

async function admUsers() {
  const [users, groups] = await Promise.all([admGet("users"), admGet("groups")]);
  if (!users || !groups) return null;
  const form = el("form", { id: "adm-user-form", class: "adm-form" },
    el("h3", { text: t("admAddUser") }),
    admField("user", el("input", { name: "username", required: true, maxlength: "64", autocomplete: "off" })),
    admField("admPasswordOpt", el("input", { name: "password", type: "password", autocomplete: "new-password" })),
    admField("admPrimary", admSelect("group", groups.map((g) => g.name), true)),
    el("label", { class: "check" }, el("input", { type: "checkbox", name: "admin" }), el("span", { text: t("admAdmin") })),
    el("button", { type: "submit", text: t("admAdd") }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const f = ev.target, body = { name: f.username.value, admin: f.admin.checked };
    if (f.password.value) body.password = f.password.value;
    if (f.group.value) body.group = f.group.value;
    admDo("POST", "users", body, (d) => { if (d.password) admOnce(t("admGenerated", { user: d.user.name }), d.password); });
  });
  const rows = users.map((u) => [u.name, [
    u.name, u.admin ? t("admYes") : t("admNo"), u.primary_group || "", u.groups.join(", "),
    el("span", { class: "bar" },
      admButton(t("admResetPw"), "adm-reset-pw", async () => {
        const pw = await ask(t("admNewPassword", { user: u.name }));
        if (pw) admDo("PATCH", "users/" + enc(u.name), { password: pw });
      }),
      admDanger(t("admReset2fa"), "adm-reset-2fa", () => admDo("DELETE", "users/" + enc(u.name) + "/two-factor")),
      admDanger(t(u.admin ? "admUnmakeAdmin" : "admMakeAdmin"), "adm-toggle-admin",
        () => admDo("PATCH", "users/" + enc(u.name), { admin: !u.admin })),
      admDanger(t("admRemove"), "adm-remove", () => admDo("DELETE", "users/" + enc(u.name)))),
  ]]);
  return [form, admTable("adm-users", ["user", "admAdmin", "admPrimary", "admGroupsOf", "actions"], rows, "admUsers")];
}

/* ---------- groups, memberships, quotas ---------- */

async function admGroups() {
  const [groups, users] = await Promise.all([admGet("groups"), admGet("users")]);
  if (!groups || !users) return null;
  const form = el("form", { id: "adm-group-form", class: "adm-form" },
    el("h3", { text: t("admAddGroup") }),
    admField("group", el("input", { name: "groupname", required: true, maxlength: "64", autocomplete: "off" })),
    el("button", { type: "submit", text: t("admAdd") }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    admDo("POST", "groups", { name: ev.target.groupname.value });
  });
  return [form, ...groups.map((g) => admGroup(g, users))];
}

function admGroup(g, users) {
  const path = "groups/" + enc(g.name);
  const used = bytes(g.used_bytes);
  const usage = g.quota_bytes == null ? t("admNoQuota", { used })
    : t("admUsedBytes", { used, quota: bytes(g.quota_bytes) });
  const meter = el("meter", { min: "0", max: String(g.quota_bytes || 1),
    value: String(Math.min(g.used_bytes + g.version_bytes, g.quota_bytes || 0)), "aria-label": usage });
  const files = g.quota_objects == null ? t("admFilesFree", { used: g.used_objects })
    : t("admFiles", { used: g.used_objects, quota: g.quota_objects });
  const quota = el("form", { class: "adm-form adm-quota" },
    admField("admQuotaBytes", el("input", { name: "bytes", value: g.quota_bytes == null ? "" : String(g.quota_bytes) })),
    admField("admQuotaFiles", el("input", { name: "objects", inputmode: "numeric",
      value: g.quota_objects == null ? "" : String(g.quota_objects) })),
    el("button", { type: "submit", text: t("admSetQuota") }));
  quota.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const b = admSize(ev.target.bytes.value), o = admSize(ev.target.objects.value);
    if (Number.isNaN(b) || Number.isNaN(o)) {
      status(t("admBadSize", { s: Number.isNaN(b) ? ev.target.bytes.value : ev.target.objects.value }), true);
      return;
    }
    admDo("PUT", path + "/quota", { bytes: b, objects: o });
  });
  const members = el("ul", { class: "plain adm-members" }, ...g.members.map((m) => el("li", { "data-key": m },
    el("span", { text: m + " " }),
    admButton(t("admRemove"), "link adm-remove-member", () => admDo("DELETE", path + "/members/" + enc(m))))));
  const others = users.map((u) => u.name).filter((n) => !g.members.includes(n));
  const add = el("form", { class: "bar adm-add-member" },
    el("label", { class: "sr", for: "adm-add-" + g.name, text: t("admAddMember") }),
    Object.assign(admSelect("user", others, false), { id: "adm-add-" + g.name }),
    el("button", { type: "submit", text: t("admAddMember"), disabled: !others.length }));
  add.addEventListener("submit", (ev) => {
    ev.preventDefault();
    admDo("PUT", path + "/members/" + enc(ev.target.user.value));
  });
  return el("article", { class: "adm-group", "data-key": g.name },
    el("h3", { text: g.name }),
    el("p", { class: "adm-usage" }, meter, " ", el("span", { class: "adm-usage-text", text: usage })),
    el("p", { class: "muted", text: files }),
    el("p", { class: "muted", text: t("admVersions", { b: bytes(g.version_bytes), n: g.version_objects }) }),
    quota,
    el("h4", { text: t("admMembers") }), members, add,
    admDanger(t("admRemove"), "adm-remove-group", () => admDo("DELETE", path)));
}

/* ---------- access keys, share links, locks ---------- */

async function admKeys() {
  const [keys, users] = await Promise.all([admGet("keys"), admGet("users")]);
  if (!keys || !users) return null;
  const form = el("form", { id: "adm-key-form", class: "bar adm-form" },
    admField("admCreateKey", admSelect("user", users.map((u) => u.name), false)),
    el("button", { type: "submit", text: t("admCreate") }));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    admDo("POST", "keys", { user: ev.target.user.value }, (d) =>
      admOnce(t("admSecret", { id: d.access_key_id, user: d.user }), d.secret_access_key));
  });
  const rows = keys.map((k) => [k.id, [el("code", { text: k.id }), k.user, when(k.created_ms),
    admDanger(t("admRevoke"), "adm-revoke-key", () => admDo("DELETE", "keys/" + enc(k.id)))]]);
  return [form, admTable("adm-keys", ["admKeyId", "admUser", "admCreated", "actions"], rows, "admKeys")];
}

async function admShares() {
  const shares = await admGet("shares");
  if (!shares) return null;
  const rows = shares.map((s) => [s.id, [s.path, s.user, s.password ? t("admYes") : t("admNo"),
    s.expires_ms ? when(s.expires_ms) : t("admNever"),
    s.max_downloads == null ? String(s.downloads) : `${s.downloads} / ${s.max_downloads}`,
    s.upload_only ? t("admYes") : t("admNo"), when(s.created_ms),
    admDanger(t("admRevoke"), "adm-revoke-share", () => admDo("DELETE", "shares/" + enc(s.id)))]]);
  return [admTable("adm-shares", ["admPath", "admUser", "admPassword", "admExpires", "admDownloads",
    "admDropBox", "admCreated", "actions"], rows, "admNoShares")];
}

async function admLocks() {
  const locks = await admGet("locks");
  if (!locks) return null;
  const rows = locks.map((l) => [l.token, [l.path, l.user || "", l.scope, l.depth,
    l.expires_ms ? when(l.expires_ms) : t("admNever"), l.owner || "",
    admDanger(t("admBreak"), "adm-break-lock", () => admDo("DELETE", "locks/" + enc(l.token)))]]);
  return [admTable("adm-locks", ["admPath", "admUser", "admScope", "admDepth", "admExpires", "admOwner",
    "actions"], rows, "admNoLocks")];
}

/* ---------- replication and the server ---------- */

async function admReplication() {
  const [peers, rules] = await Promise.all([admGet("peers"), admGet("replication")]);
  if (!peers || !rules) return null;
  const peerRows = peers.map((p) => [p.name, [p.name, p.endpoint, el("code", { text: p.access_key }),
    p.node_id || "", p.ca_fingerprint || ""]]);
  const ruleRows = rules.map((r) => [r.bucket + " " + r.peer, [r.bucket, r.peer, r.prefix,
    r.bidirectional ? t("admYes") : t("admNo"), String(r.backlog),
    r.lag_seconds == null ? "" : duration(r.lag_seconds), r.last_error || "", String(r.shipped),
    r.skipped ? `${r.skipped} (${r.last_skipped || ""})` : "0"]]);
  return [
    el("h3", { text: t("admPeers") }),
    admTable("adm-peers", ["name", "admEndpoint", "admKeyId", "admNodeId", "admFingerprint"], peerRows, "admNoPeers"),
    el("h3", { text: t("admRules") }),
    admTable("adm-rules", ["admBucket", "admPeer", "admPrefix", "admBoth", "admBacklog", "admLag",
      "admLastError", "admShipped", "admSkipped"], ruleRows, "admNoRules"),
  ];
}

async function admServer() {
  const f = await admGet("facts");
  if (!f) return null;
  const facts = [
    ["admVersion", f.version], ["admNodeId", f.node_id],
    ["admUptime", duration(f.uptime_seconds)], ["admStarted", when(f.started_ms)],
    ["admTls", f.tls_fingerprint ? `${f.tls_fingerprint} (${f.tls_source})` : t("admTlsOff")],
    ["admTlsDays", f.tls_days_left == null ? "" : t("admDays", { n: f.tls_days_left })],
    ["admStorage", f.storage_backend], ["admPublicUrl", f.public_url],
  ];
  return [el("dl", { id: "adm-facts" }, ...facts.flatMap(([k, v]) => [el("dt", { text: t(k) }), el("dd", { text: v })]))];
}
