//! Unknown keys in the config file and unknown `KURA_*` variables: each becomes a warning
//! naming the closest known key, so a typo is not silently ignored.

use std::path::Path;

use figment::providers::{Format, Toml};
use figment::value::Value;
use figment::Provider;

use super::Config;

/// Variables that are not settings but are read by the command line itself.
const NOT_SETTINGS: &[&str] = &[
    "config",
    // `kura peer add --mailbox`'s secret (read by the command line, not a setting)
    "mailbox_secret",
    // `kura db migrate`'s target URL (keeps its password out of `ps`)
    "migrate_to",
    "test_crash_after_steps",
    "test_shipment_pause_ms",
    "test_tombstone_pause_ms",
];

/// Every dotted key of the configuration; maps and unset tables accept any key below them.
fn known() -> Vec<String> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    walk(&join(prefix, k), v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    let mut out = Vec::new();
    if let Ok(v) = serde_json::to_value(Config::default()) {
        walk("", &v, &mut out);
    }
    out
}

fn join(prefix: &str, k: &str) -> String {
    if prefix.is_empty() {
        k.to_string()
    } else {
        format!("{prefix}.{k}")
    }
}

fn is_known(key: &str, known: &[String]) -> bool {
    known
        .iter()
        .any(|k| k == key || key.starts_with(&format!("{k}.")))
}

/// The known key nearest to `key`, when it is near enough to be a typo.
fn closest<'a>(key: &str, known: &'a [String]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(key, k), k))
        .filter(|(d, _)| *d <= (key.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.as_str())
}

/// Warnings for the keys of `file` that no setting has.
pub fn in_file(file: &Path) -> Vec<String> {
    let Ok(data) = Toml::file(file).data() else {
        return Vec::new(); // extract() reports the syntax error
    };
    let mut keys = Vec::new();
    fn walk(prefix: &str, v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Dict(_, d) => {
                for (k, v) in d {
                    walk(&join(prefix, k), v, out);
                }
            }
            _ => out.push(prefix.to_string()),
        }
    }
    for dict in data.values() {
        for (k, v) in dict {
            walk(k, v, &mut keys);
        }
    }
    let known = known();
    keys.into_iter()
        .filter(|k| !is_known(k, &known))
        .map(|k| {
            let hint = closest(&k, &known)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            format!(
                "unknown setting `{k}` in {} is ignored{hint}",
                file.display()
            )
        })
        .collect()
}

/// Warnings for `KURA_*` variables that name no setting.
pub fn in_env(vars: impl Iterator<Item = (String, String)>) -> Vec<String> {
    let known = known();
    let var_of = |k: &str| format!("KURA_{}", k.replace('.', "__").to_uppercase());
    vars.filter_map(|(name, _)| {
        let key = name
            .strip_prefix("KURA_")?
            .to_lowercase()
            .replace("__", ".");
        if NOT_SETTINGS.contains(&key.as_str()) || is_known(&key, &known) {
            return None;
        }
        let hint = closest(&key, &known)
            .map(|c| format!(" (did you mean {}?)", var_of(c)))
            .unwrap_or_default();
        Some(format!("unknown variable {name} is ignored{hint}"))
    })
    .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn typos_are_named_with_the_closest_key() {
        let vars = [
            ("KURA_LISTN", "x"),
            ("KURA_LIMITS__SHARE_BURTS", "x"),
            ("KURA_STORAGE__OPTIONS__BUCKET", "x"),
            ("KURA_CONFIG", "x"),
            ("KURA_TLS", "x"),
            ("KURA_TEST_SHIPMENT_PAUSE_MS", "x"),
            ("KURA_WHATEVER_ELSE_ENTIRELY", "x"),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()));
        let w = super::in_env(vars.into_iter());
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(w[0].contains("KURA_LISTN") && w[0].contains("KURA_LISTEN"));
        assert!(w[1].contains("did you mean KURA_LIMITS__SHARE_BURST?"));
        assert!(w[2].contains("KURA_WHATEVER_ELSE_ENTIRELY") && !w[2].contains("mean"));

        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("kura.toml");
        std::fs::write(
            &f,
            "listen_addr = \"127.0.0.1:1\"\ntls = false\n[limits]\nshare_brust = 3\n",
        )
        .unwrap();
        let w = super::in_file(&f);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w
            .iter()
            .any(|m| m.contains("`limits.share_brust`") && m.contains("`limits.share_burst`")));
        assert!(w.iter().any(|m| m.contains("`listen_addr`")));
    }
}
