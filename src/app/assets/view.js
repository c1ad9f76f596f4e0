// Kura's browser app, second file (loaded after app.js, whose helpers it uses): previews,
// tags and descriptions, old versions' downloads, emptying the trash and share links.
// Kept apart from app.js so that each part of the app can change without the other.
// User data only ever goes in through textContent; no user file's script ever runs: images
// are <img>, text is fetched and set as textContent, Markdown is built node by node, audio
// and video come from download?inline=1, which carries a sandbox CSP; a PDF's pages are images
// the server renders (no PDF viewer, no PDF script, in this page or any other).
"use strict";

/* ---------- what a preview shows ---------- */

const EXT = (name) => (name.includes(".") ? name.slice(name.lastIndexOf(".") + 1).toLowerCase() : "");
const IMAGE_EXT = ["jpg", "jpeg", "png", "gif", "webp"];
const TEXT_EXT = ["txt", "log", "csv", "tsv", "json", "xml", "html", "htm", "css", "js", "mjs", "ts",
  "rs", "py", "go", "c", "h", "cpp", "hpp", "java", "kt", "rb", "php", "sh", "bash", "zsh", "toml",
  "yaml", "yml", "ini", "conf", "cfg", "sql", "diff", "patch", "svg", "tex", "srt", "vtt"];
const AUDIO_EXT = ["mp3", "ogg", "oga", "opus", "wav", "flac", "m4a", "aac"];
const VIDEO_EXT = ["mp4", "webm", "ogv", "mov", "m4v"];
const TEXT_MAX = 1024 * 1024; // bytes of a text file shown (a range request)

function previewKind(e) {
  if (e.folder) return null;
  const x = EXT(e.name), ct = (e.content_type || "").split(";")[0].trim().toLowerCase();
  if (IMAGE_EXT.includes(x) || ["image/jpeg", "image/png", "image/gif", "image/webp"].includes(ct)) return "image";
  if (x === "md" || x === "markdown" || ct === "text/markdown") return "markdown";
  if (x === "pdf" || ct === "application/pdf") return "pdf";
  if (AUDIO_EXT.includes(x) || ct.startsWith("audio/")) return "audio";
  if (VIDEO_EXT.includes(x) || ct.startsWith("video/")) return "video";
  if (TEXT_EXT.includes(x) || ct.startsWith("text/") || ct === "application/json") return "text";
  return null;
}

const inlineUrl = (path) => API + "download?" + q({ path, inline: "1" });

/* ---------- the preview dialog ---------- */

const pv = { list: [], at: 0 };

// Opens the preview of `e`, with next/previous through the previewable files of the folder.
function preview(e) {
  pv.list = view.sorted.filter((x) => previewKind(x));
  pv.at = Math.max(0, pv.list.findIndex((x) => x.path === e.path));
  if (!pv.list.length) pv.list = [e];
  showPreview();
  const d = $("preview");
  if (!d.open) d.showModal();
}

function previewStep(n) {
  if (pv.list.length < 2) return;
  pv.at = (pv.at + n + pv.list.length) % pv.list.length;
  showPreview();
}

async function showPreview() {
  const e = pv.list[pv.at];
  const kind = previewKind(e);
  const box = $("pv-body");
  $("pv-name").textContent = shown(e.name);
  $("pv-count").textContent = t("of", { a: pv.at + 1, b: pv.list.length });
  $("pv-prev").disabled = $("pv-next").disabled = pv.list.length < 2;
  $("pv-download").href = API + "download?" + q({ path: e.path });
  $("pv-download").download = e.name;
  $("pv-error").textContent = "";
  box.dataset.kind = kind || "";
  box.replaceChildren(el("p", { class: "muted", text: t("loading") }));
  const here = () => pv.list[pv.at] === e; // still the one shown
  if (kind === "image") {
    const img = el("img", { alt: e.name, class: "pv-image" });
    img.addEventListener("error", () => { if (here()) $("pv-error").textContent = t("noPreview"); }, { once: true });
    // the thumbnail first (small, decoded by the server), then the file itself
    img.addEventListener("load", () => {
      if (!here() || img.dataset.full) return;
      img.dataset.full = "1";
      const full = new Image();
      full.addEventListener("load", () => { if (here()) img.src = full.src; });
      full.src = inlineUrl(e.path);
    }, { once: true });
    img.src = API + "thumbnail?" + q({ path: e.path, size: "1024" });
    box.replaceChildren(img);
  } else if (kind === "text" || kind === "markdown") {
    let r;
    try {
      r = await fetch(inlineUrl(e.path), { credentials: "same-origin", headers: { Range: `bytes=0-${TEXT_MAX - 1}` } });
    } catch (err) { r = null; }
    if (!here()) return;
    if (!r || !r.ok) { box.replaceChildren(); $("pv-error").textContent = t("failed") + (r ? r.status : "network"); return; }
    const text = await r.text();
    if (!here()) return;
    const cut = e.size > TEXT_MAX ? el("p", { class: "muted", text: t("truncated") }) : "";
    box.replaceChildren(kind === "markdown" ? markdown(text) : el("pre", { class: "pv-text", raw: text }), cut);
  } else if (kind === "pdf") {
    // Chromium's PDF viewer does not run under the sandbox CSP every download carries, and
    // lifting it would let a PDF's scripts run: the server renders each page as an image
    pdfPage(e, 1, here);
  } else if (kind === "audio" || kind === "video") {
    const m = el(kind, { controls: true, preload: "metadata", class: "pv-media" });
    m.src = inlineUrl(e.path);
    box.replaceChildren(m);
  } else {
    box.replaceChildren(el("p", { text: t("noPreview") }));
  }
}

/* ---------- a PDF, page by page: images the server renders ---------- */

// Shows page `n` of the PDF `e` (the answer's X-Kura-Pages header tells how many there are),
// with previous/next page buttons; `here` says whether `e` is still the file shown.
async function pdfPage(e, n, here) {
  const box = $("pv-body");
  box.dataset.want = String(n);
  const mine = () => here() && box.dataset.want === String(n); // still the page asked for
  let r;
  try {
    r = await fetch(API + "thumbnail?" + q({ path: e.path, size: "1024", page: String(n) }), { credentials: "same-origin" });
  } catch (err) { r = null; }
  if (!mine()) return;
  if (!r || !r.ok) {
    let msg = r ? String(r.status) : "network";
    try { msg = (await r.json()).message || msg; } catch (_) { /* not JSON */ }
    if (!mine()) return;
    box.replaceChildren();
    $("pv-error").textContent = t("pdfFailed") + msg;
    return;
  }
  const pages = Math.max(1, Number(r.headers.get("X-Kura-Pages")) || 1);
  const blob = await r.blob();
  if (!mine()) return;
  const img = el("img", { alt: t("pageOf", { a: n, b: pages }) + " — " + e.name, class: "pv-image pv-page" });
  const url = URL.createObjectURL(blob);
  img.addEventListener("load", () => URL.revokeObjectURL(url), { once: true });
  img.addEventListener("error", () => { URL.revokeObjectURL(url); if (here()) $("pv-error").textContent = t("noPreview"); }, { once: true });
  img.src = url;
  const go = (m) => pdfPage(e, m, here);
  box.dataset.page = String(n);
  box.dataset.pages = String(pages);
  $("pv-error").textContent = "";
  box.replaceChildren(
    el("div", { class: "bar pv-pages" },
      el("button", { type: "button", id: "pv-page-prev", text: t("prevPage"), disabled: n <= 1, on: { click: () => go(n - 1) } }),
      el("span", { id: "pv-page", text: t("pageOf", { a: n, b: pages }) }),
      el("button", { type: "button", id: "pv-page-next", text: t("nextPage"), disabled: n >= pages, on: { click: () => go(n + 1) } })),
    img);
}

/* ---------- a tiny, safe Markdown renderer: DOM nodes only, never HTML ---------- */

// Inline spans: `code`, **strong**, *em*, [text](http(s) link); everything else is text.
function inline(text) {
  const out = [];
  const re = /(`[^`]+`)|(\*\*[^*]+\*\*)|(\*[^*\s][^*]*\*)|(\[[^\]]+\]\([^)\s]+\))/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    const s = m[0];
    if (m[1]) out.push(el("code", { raw: s.slice(1, -1) }));
    else if (m[2]) out.push(el("strong", { raw: s.slice(2, -2) }));
    else if (m[3]) out.push(el("em", { raw: s.slice(1, -1) }));
    else {
      const label = s.slice(1, s.indexOf("]("));
      const href = s.slice(s.indexOf("](") + 2, -1);
      // only web links; javascript:, data: and the rest stay text
      out.push(/^https?:\/\//i.test(href)
        ? el("a", { href, raw: label, rel: "noopener noreferrer nofollow", target: "_blank" })
        : document.createTextNode(s));
    }
    last = m.index + s.length;
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

function markdown(src) {
  const root = el("div", { class: "pv-markdown" });
  const lines = src.replace(/\r\n?/g, "\n").split("\n");
  let para = [], list = null;
  const flush = () => {
    if (para.length) root.append(el("p", {}, ...inline(para.join(" "))));
    para = [];
    list = null;
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (/^```/.test(line)) {
      flush();
      const code = [];
      for (i++; i < lines.length && !/^```/.test(lines[i]); i++) code.push(lines[i]);
      root.append(el("pre", {}, el("code", { raw: code.join("\n") })));
      continue;
    }
    const h = /^(#{1,6})\s+(.*)$/.exec(line);
    const li = /^\s*(?:[-*+]|\d+[.)])\s+(.*)$/.exec(line);
    if (h) { flush(); root.append(el("h" + Math.min(6, h[1].length + 2), {}, ...inline(h[2]))); }
    else if (li) {
      if (para.length) flush();
      if (!list) { list = el(/^\s*\d/.test(line) ? "ol" : "ul"); root.append(list); }
      list.append(el("li", {}, ...inline(li[1])));
    } else if (/^>\s?/.test(line)) { flush(); root.append(el("blockquote", {}, ...inline(line.replace(/^>\s?/, "")))); }
    else if (!line.trim()) flush();
    else { list = null; para.push(line.trim()); }
  }
  flush();
  return root;
}

/* ---------- in a file's details: preview, tags and description, share ---------- */

function detailsMore(e) {
  $("d-preview").hidden = !previewKind(e);
  $("d-preview").onclick = () => { $("details").close(); preview(e); };
  const f = $("d-tags");
  f.tags.value = (e.tags || []).map(([k, v]) => (v ? `${k}=${v}` : k)).join(", ");
  f.description.value = e.description || "";
  f.onsubmit = async (ev) => {
    ev.preventDefault();
    const tags = f.tags.value.split(",").map((s) => s.trim()).filter(Boolean).map((s) => {
      const at = s.indexOf("=");
      return at < 0 ? [s, ""] : [s.slice(0, at).trim(), s.slice(at + 1).trim()];
    });
    const r = await call("POST", "tags", { path: e.path, tags, description: f.description.value });
    if (r.status !== 200) { $("d-error").textContent = t("failed") + why(r); return; }
    Object.assign(e, { tags: r.data.tags || [], description: r.data.description || "" });
    status(t("saved"));
    $("d-error").textContent = "";
  };
  $("d-share").onclick = () => shareDialog(e);
}

// A version's bytes, by the id the versions list gives.
const versionLink = (e, v) => el("a", {
  class: "button", text: t("download"), download: e.name,
  "aria-label": t("download") + " " + when(v.modified_ms),
  href: API + "download?" + q({ path: e.path, version: v.id }),
});

/* ---------- share links ---------- */

function shareDialog(e) {
  const d = $("share");
  const f = $("share-form");
  $("share-path").textContent = shown(e.path);
  f.reset();
  f.drop.disabled = !e.folder;
  $("share-result").hidden = true;
  $("share-error").textContent = "";
  f.onsubmit = async (ev) => {
    ev.preventDefault();
    const body = { path: e.path };
    if (f.password.value) body.password = f.password.value;
    if (f.expires.value) body.expires = f.expires.value;
    if (f.max.value) body.max_downloads = Number(f.max.value);
    if (f.drop.checked) body.drop_box = true;
    const r = await call("POST", "shares", body);
    if (r.status !== 201) { $("share-error").textContent = t("failed") + why(r); return; }
    $("share-url").value = location.origin + r.data.url;
    $("share-result").hidden = false;
    $("share-url").select();
  };
  $("share-copy").onclick = async () => {
    $("share-url").select();
    try { await navigator.clipboard.writeText($("share-url").value); status(t("copied")); } catch (_) {
      status(t("copyByHand"));
    }
  };
  if ($("details").open) $("details").close();
  d.showModal();
}

// The user's own links, on the account page, each with Revoke.
async function listShares() {
  const r = await call("GET", "shares");
  const list = r.status === 200 ? r.data.shares || [] : [];
  $("shares-none").hidden = list.length > 0;
  $("share-list").replaceChildren(...list.map((s) => el("li", {},
    el("span", { class: "name", text: s.path }),
    el("span", { class: "muted", text: " " + [
      s.drop_box ? t("dropBox") : "",
      s.password ? t("withPassword") : "",
      s.expires_ms ? t("expires", { t: when(s.expires_ms) }) : "",
      s.max_downloads ? t("downloadsOf", { a: s.downloads, b: s.max_downloads }) : "",
    ].filter(Boolean).join(" — ") + " " }),
    el("button", { type: "button", text: t("revoke"), "aria-label": t("revoke") + " " + s.path, on: { click: async () => {
      const x = await call("DELETE", "shares/" + encodeURIComponent(s.id));
      if (x.status !== 204) { status(t("failed") + why(x), true); return; }
      status(t("revoked"));
      listShares();
    } } }))));
}

/* ---------- emptying the trash (administrators: the core's rule) ---------- */

function trashMore(bucket) {
  $("trash-purge").hidden = !(me && me.admin);
  $("trash-purge").onclick = async () => {
    if (!confirm(t("purgeConfirm"))) return;
    const r = await call("DELETE", "trash" + (bucket ? "?" + q({ bucket }) : ""));
    if (r.status !== 200) { status(t("failed") + why(r), true); return; }
    status(t("purged", { n: r.data.removed, b: bytes(r.data.bytes) }));
    openTrash();
  };
}

document.addEventListener("DOMContentLoaded", () => {
  $("pv-prev").addEventListener("click", () => previewStep(-1));
  $("pv-next").addEventListener("click", () => previewStep(1));
  $("preview").addEventListener("keydown", (ev) => {
    if (ev.key === "ArrowLeft") { ev.preventDefault(); previewStep(-1); }
    if (ev.key === "ArrowRight") { ev.preventDefault(); previewStep(1); }
    // a PDF's pages: Page Up and Page Down
    const b = ev.key === "PageUp" ? $("pv-page-prev") : ev.key === "PageDown" ? $("pv-page-next") : null;
    if (b) { ev.preventDefault(); if (!b.disabled) b.click(); }
  });
  // stop media and drop the frame when the preview closes
  $("preview").addEventListener("close", () => $("pv-body").replaceChildren());
});
