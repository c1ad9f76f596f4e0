//! The `[smtp]` section: the mail server e-mail notifications go through (used by
//! `crate::notify`); unset, e-mail rules cannot be delivered and wait in the queue.

use serde::{Deserialize, Serialize};

/// How the connection to the mail server is secured.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// STARTTLS on the submission port (587), required.
    #[default]
    Starttls,
    /// TLS from the first byte (465).
    Tls,
    /// No encryption (a relay on this machine or a test server only).
    None,
}

/// The `[smtp]` section of the configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SmtpConfig {
    /// The mail server's host name; empty: no e-mail.
    pub host: String,
    /// Its port (587 for STARTTLS, 465 for TLS, 25 for a local relay).
    pub port: u16,
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// Login, if the server wants one.
    pub username: Option<String>,
    /// Password of that login.
    pub password: Option<String>,
    /// The sender address of notifications.
    pub from: String,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: String::new(),
            port: 587,
            security: SmtpSecurity::Starttls,
            username: None,
            password: None,
            from: "kura@localhost".into(),
        }
    }
}
