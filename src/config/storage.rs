//! Where and how the core stores: the `[storage]` section (which OpenDAL service) and the
//! macOS metadata policy.

use std::collections::HashMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which OpenDAL service holds the bytes.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct StorageConfig {
    /// OpenDAL scheme: `fs` (default), `memory`, or any service compiled in.
    pub backend: String,
    /// Root folder for `fs`; defaults to `<data_dir>/files`.
    pub root: Option<PathBuf>,
    /// Extra options passed to the OpenDAL service as they are (e.g. bucket, endpoint).
    pub options: HashMap<String, String>,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            backend: "fs".into(),
            root: None,
            options: HashMap::new(),
        }
    }
}

impl StorageConfig {
    /// Which storage the files are in, as every gateway of one database must agree: the
    /// backend, and on services other than `fs` the bucket and root (not the endpoint, which
    /// gateways may reach by different names). `fs` roots are not compared: gateways may
    /// mount one shared folder at different paths.
    pub fn identity(&self) -> String {
        if self.backend == "fs" {
            return "fs".into();
        }
        let opt = |k: &str| {
            self.options
                .get(k)
                .map(|v| v.trim().trim_matches('/').to_string())
                .unwrap_or_default()
        };
        format!(
            "{} bucket={} root={}",
            self.backend,
            opt("bucket"),
            opt("root")
        )
    }
}

/// What the server does with macOS metadata files; see docs/clients.md.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MacosMetadata {
    /// Stored and listed like any file.
    #[default]
    Keep,
    /// Stored and readable by name (Finder reads them back), but left out of folder listings.
    Hide,
    /// Creating one is refused (403 / AccessDenied).
    Refuse,
}
