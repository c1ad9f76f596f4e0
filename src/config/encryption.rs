//! The `[encryption]` section: where the master key of encrypted buckets comes from and
//! whether new buckets are encrypted (docs/encryption.md).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The `[encryption]` section of the configuration.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct EncryptionSettings {
    /// A file holding the master key (32 bytes or 64 hex digits); default: the data dir's
    /// `encryption.key`, made on first need.
    pub key_file: Option<PathBuf>,
    /// A command printing the master key (run once at start), e.g. a password manager's.
    pub key_command: Option<String>,
    /// New buckets are encrypted.
    pub default: bool,
}
