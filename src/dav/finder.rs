//! Which macOS Finder builds must not be told RFC 4331 quotas: since macOS 15.4 (Darwin
//! 24.4) webdavfs stalls about 90 s at mount when a server answers its quota PROPFIND with
//! `quota-available-bytes`/`quota-used-bytes` (Cryptomator's and copyparty's reports).

/// First Darwin release (macOS 15.4) whose webdavfs stalls on quota properties.
const FIRST_STALLING: (u32, u32) = (24, 4);

/// Whether a client with this User-Agent gets quota properties: every client but the
/// webdavfs of macOS 15.4 and later, which then shows no free space instead of hanging.
pub fn gets_quota(user_agent: &str) -> bool {
    if !user_agent.starts_with("WebDAVFS/") {
        return true;
    }
    let Some(darwin) = user_agent
        .split_whitespace()
        .find_map(|w| w.strip_prefix("Darwin/"))
    else {
        return true;
    };
    let mut parts = darwin.split('.').map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten().or(Some(0))) {
        (Some(major), Some(minor)) => (major, minor) < FIRST_STALLING,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::gets_quota;

    #[test]
    fn finder_before_macos_15_4_gets_quota() {
        assert!(gets_quota(
            "WebDAVFS/3.0.0 (03008000) Darwin/22.1.0 (arm64)"
        ));
        assert!(gets_quota(
            "WebDAVFS/3.0.0 (03008000) Darwin/24.3.0 (x86_64)"
        ));
    }

    #[test]
    fn finder_of_macos_15_4_and_later_does_not() {
        assert!(!gets_quota(
            "WebDAVFS/3.0.0 (03008000) Darwin/24.4.0 (arm64)"
        ));
        assert!(!gets_quota(
            "WebDAVFS/3.0.0 (03008000) Darwin/24.6.0 (arm64)"
        ));
        assert!(!gets_quota(
            "WebDAVFS/3.0.0 (03008000) Darwin/25.2.0 (arm64)"
        ));
        assert!(!gets_quota("WebDAVFS/3.0.0 (03008000) Darwin/25 (arm64)"));
    }

    #[test]
    fn other_clients_and_odd_agents_get_quota() {
        assert!(gets_quota("rclone/v1.60.1"));
        assert!(gets_quota("Microsoft-WebDAV-MiniRedir/10.0.19045"));
        assert!(gets_quota("gvfs/1.50.3"));
        assert!(gets_quota(""));
        assert!(gets_quota("WebDAVFS/3.0.0"));
        assert!(gets_quota("WebDAVFS/3.0.0 Darwin/x.y"));
        assert!(gets_quota("curl/8.0 Darwin/25.0.0"));
    }
}
