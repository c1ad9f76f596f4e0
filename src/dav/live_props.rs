//! Kura's live WebDAV properties: owner, group, mode, tags and description in the
//! `urn:kura:props` namespace, read with PROPFIND and changed with PROPPATCH under the core's
//! rules. Tags read and write as a URL query (`k1=v1&k2=v2`), as S3's `x-amz-tagging` header.

use dav_server::fs::DavProp;

use crate::vfs::tags;
use crate::vfs::Entry;

/// The XML namespace of Kura's properties.
pub const NS: &str = "urn:kura:props";
/// The property names in that namespace.
pub const NAMES: [&str; 5] = ["owner", "group", "mode", "tags", "description"];
/// The properties that are as private as the entry's content (shown only to readers).
pub const PRIVATE: [&str; 2] = ["tags", "description"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The value of one property for an entry.
pub fn value(e: &Entry, name: &str) -> Option<String> {
    match name {
        "owner" => Some(e.owner.clone().unwrap_or_default()),
        "group" => Some(e.group.clone().unwrap_or_default()),
        "mode" => Some(format!("{:03o}", e.mode)),
        "tags" => Some(tags::to_query(&tags::tags_of(&e.headers))),
        "description" => Some(
            tags::description_of(&e.headers)
                .unwrap_or_default()
                .to_string(),
        ),
        _ => None,
    }
}

/// One property as dav-server wants it (with or without its value).
pub fn prop(e: &Entry, name: &str, with_value: bool) -> DavProp {
    let xml = with_value.then(|| {
        let v = escape(&value(e, name).unwrap_or_default());
        format!("<K:{name} xmlns:K=\"{NS}\">{v}</K:{name}>").into_bytes()
    });
    DavProp {
        name: name.to_string(),
        prefix: Some("K".into()),
        namespace: Some(NS.into()),
        xml,
    }
}

/// The text content of a property element as PROPPATCH sends it, entities and CDATA
/// resolved (an element that does not parse alone falls back to its raw inner text).
pub fn text(xml: &[u8]) -> Option<String> {
    match xmltree::Element::parse(xml) {
        Ok(el) => Some(
            el.get_text()
                .map(|t| t.trim().to_string())
                .unwrap_or_default(),
        ),
        Err(_) => raw_text(xml),
    }
}

/// The raw inner text of an element.
fn raw_text(xml: &[u8]) -> Option<String> {
    let mut s = std::str::from_utf8(xml).ok()?.trim_start();
    if s.starts_with("<?") {
        s = s[s.find("?>")? + 2..].trim_start();
    }
    let start = s.find('>')? + 1;
    let end = s.rfind("</")?;
    (start <= end).then(|| s[start..end].trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_of_an_element() {
        assert_eq!(
            text(b"<K:mode xmlns:K=\"urn:kura:props\">750</K:mode>").as_deref(),
            Some("750")
        );
        assert_eq!(text(b"<mode>  g1 </mode>").as_deref(), Some("g1"));
        assert_eq!(text(b"<mode/>").as_deref(), Some(""));
        assert_eq!(
            text(b"<K:tags xmlns:K=\"urn:kura:props\">a=1&amp;b=%C3%A9</K:tags>").as_deref(),
            Some("a=1&b=%C3%A9")
        );
        assert_eq!(raw_text(b"<K:x>1</K:x>").as_deref(), Some("1"));
        assert_eq!(
            text(b"<?xml version=\"1.0\"?><K:group xmlns:K=\"urn:kura:props\">fam</K:group>")
                .as_deref(),
            Some("fam")
        );
    }
}
