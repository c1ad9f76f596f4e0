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
            escape(&name)
        ));
    }
    page(
        title,
        &format!(
            "<h1>{}</h1><p><a href=\"{}\">Download everything as a zip</a></p><table>{rows}</table>",
            escape(title),
            escape(zip_href)
        ),
    )
}

/// The drop box: choose files, each is sent with a plain PUT to `base` + its name.
pub fn drop_box(title: &str, base: &str) -> String {
    let script = format!(
        "const base={};document.getElementById('f').addEventListener('submit',async e=>{{e.preventDefault();const out=document.getElementById('out');for(const f of document.getElementById('files').files){{const r=await fetch(base+encodeURIComponent(f.name),{{method:'PUT',body:f}});const li=document.createElement('li');li.textContent=f.name+': '+(r.ok?'uploaded':'refused ('+r.status+' '+(await r.text()).trim()+')');out.appendChild(li);}}}});",
        serde_json::to_string(base).unwrap_or_else(|_| "\"\"".into())
    );
    page(
        title,
        &format!(
            "<h1>{}</h1><p>Files you send here are added to the folder; existing files are never replaced.</p><form id=\"f\"><input type=\"file\" id=\"files\" multiple required> <button type=\"submit\">Upload</button></form><ul id=\"out\"></ul><noscript><p>Without JavaScript, send each file with <code>curl -T FILE {}</code>.</p></noscript><script>{script}</script>",
            escape(title),
            escape(base)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
