//! The small HTML pages a visitor sees: password form, folder listing, drop box, messages.

use crate::vfs::Entry;

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;padding:0 1rem}table{border-collapse:collapse;width:100%}td{padding:.2rem .5rem}td.n{text-align:right}";

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A name as a visitor reads it: escaped, with each character that reorders the text around
/// it (`crate::delivery::headers::is_bidi_control`) shown as a marker, `⟨U+202E⟩`, as the
/// app shows them: `invoice_\u{202E}fdp.exe` must not read `invoice_exe.pdf`.
pub fn shown(s: &str) -> String {
    escape(&shown_plain(s))
}

/// A size for people: bytes, KiB, MiB, GiB.
fn human(size: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if size < 1024 {
        return format!("{size} bytes");
    }
    let mut v = size as f64;
    let mut unit = "";
    for u in UNITS {
        v /= 1024.0;
        unit = u;
        if v < 1024.0 {
            break;
        }
    }
    format!("{v:.1} {unit}")
}

/// A shared file's landing page: its name, size, a Download button (`download` is its
/// address) and, for an image, `preview` shown inline.
pub fn file(name: &str, size: u64, download: &str, preview: Option<&str>) -> String {
    let img = preview.map_or(String::new(), |src| {
        format!(
            "<p><img id=\"preview\" src=\"{}\" alt=\"{}\" style=\"max-width:100%;max-height:70vh\"></p>",
            escape(src),
            shown(name)
        )
    });
    page(
        &shown_plain(name),
        &format!(
            "<h1 id=\"name\">{}</h1><p id=\"size\">{} ({size} bytes)</p>{img}<p><a id=\"download\" href=\"{}\" download><button type=\"button\">Download</button></a></p>",
            shown(name),
            human(size),
            escape(download)
        ),
    )
}

/// `shown` before escaping (for `page`, which escapes its title).
fn shown_plain(s: &str) -> String {
    s.chars()
        .map(|c| {
            if crate::delivery::headers::is_bidi_control(c) {
                format!("\u{27E8}U+{:04X}\u{27E9}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><meta name=\"robots\" content=\"noindex\"><title>{}</title><style>{STYLE}</style></head>\n<body>{body}</body></html>\n",
        escape(title)
    )
}

/// The password form; posts back to the same URL.
pub fn password_form(wrong: bool) -> String {
    let note = if wrong {
        "<p><strong>Wrong password.</strong></p>"
    } else {
        ""
    };
    page(
        "Password required",
        &format!(
            "<h1>Password required</h1>{note}<form method=\"post\"><label>Password <input type=\"password\" name=\"password\" autofocus required></label> <button type=\"submit\">Open</button></form>"
        ),
    )
}

/// A short page saying why nothing is shown.
pub fn message(title: &str, text: &str) -> String {
    page(
        title,
        &format!("<h1>{}</h1><p>{}</p>", escape(title), escape(text)),
    )
}

/// A folder listing: links to each entry (`href` gives each link) and to the zip.
pub fn listing(
    title: &str,
    entries: &[(Entry, String)],
    zip_href: &str,
    up: Option<&str>,
) -> String {
    let mut rows = String::new();
    if let Some(up) = up {
        rows.push_str(&format!(
            "<tr><td><a href=\"{}\">..</a></td><td></td></tr>",
            escape(up)
        ));
    }
    for (e, href) in entries {
        let name = e.path.name();
        let (name, size) = if e.is_dir {
            (format!("{name}/"), String::new())
        } else {
            (name.to_string(), e.size.to_string())
        };
        rows.push_str(&format!(
            "<tr><td><a href=\"{}\">{}</a></td><td class=\"n\">{size}</td></tr>",
            escape(href),
            shown(&name)
        ));
    }
    page(
        &shown_plain(title),
        &format!(
            "<h1>{}</h1><p><a href=\"{}\">Download everything as a zip</a></p><table>{rows}</table>",
            shown(title),
            escape(zip_href)
        ),
    )
}

/// The drop box's script, the one script of these pages: constant (the folder's address is in
/// the form's `data-base`), so the pages' Content-Security-Policy names it by its hash.
const DROP_SCRIPT: &str = "const form=document.getElementById('f');const base=form.dataset.base;form.addEventListener('submit',async e=>{e.preventDefault();const out=document.getElementById('out');for(const f of document.getElementById('files').files){const r=await fetch(base+encodeURIComponent(f.name),{method:'PUT',body:f});const li=document.createElement('li');li.textContent=f.name+': '+(r.ok?'uploaded':'refused ('+r.status+' '+(await r.text()).trim()+')');out.appendChild(li);}});";

/// The Content-Security-Policy of every share page: nothing but the site's own images, inline
/// style, and the drop box's script by hash; no framing, no forms elsewhere.
pub fn policy() -> &'static str {
    static POLICY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use base64::Engine;
        use sha2::Digest;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(sha2::Sha256::digest(DROP_SCRIPT.as_bytes()));
        format!(
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; script-src 'sha256-{hash}'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
    });
    &POLICY
}

/// The drop box: choose files, each is sent with a plain PUT to `base` + its name.
pub fn drop_box(title: &str, base: &str) -> String {
    let script = DROP_SCRIPT;
    page(
        title,
        &format!(
            "<h1>{}</h1><p>Files you send here are added to the folder; existing files are never replaced.</p><form id=\"f\" data-base=\"{}\"><input type=\"file\" id=\"files\" multiple required> <button type=\"submit\">Upload</button></form><ul id=\"out\"></ul><noscript><p>Without JavaScript, send each file with <code>curl -T FILE {}</code>.</p></noscript><script>{script}</script>",
            escape(title),
            escape(base),
            escape(base)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_landing_page_shows_a_hostile_name_as_text_with_markers() {
        let p = file("<b>invoice_\u{202E}fdp.exe", 1536, "/s/t?download=1", None);
        assert!(
            p.contains("&lt;b&gt;invoice_\u{27E8}U+202E\u{27E9}fdp.exe"),
            "{p}"
        );
        assert!(!p.contains('\u{202E}') && !p.contains("<b>"), "{p}");
        assert!(p.contains("1.5 KiB (1536 bytes)"), "{p}");
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
