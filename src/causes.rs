//! Error messages with their causes, for logs and one-line CLI errors. A leaf.

/// An error with its causes, so "error sending request" says why (refused, certificate, ...).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let text = s.to_string();
        // wrappers often repeat their cause's text
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        src = s.source();
    }
    out
}
