//! Which new names the core accepts (`check_new_name`, called wherever a name is created)
//! and which names listings hide: today the policy for the metadata files macOS leaves on
//! network volumes (`._*` AppleDouble files and `.DS_Store`): kept by default, or hidden
//! from listings, or refused, for every protocol.

use super::{Entry, VPath, Vfs, VfsError};
use crate::config::MacosMetadata;

/// Whether a file name is one of macOS's metadata files.
pub fn is_macos_metadata(name: &str) -> bool {
    name == ".DS_Store" || name.starts_with("._")
}

impl Vfs {
    /// Refuses a new name when the policy says so; called wherever a name is created.
    pub(super) fn check_new_name(&self, path: &VPath) -> Result<(), VfsError> {
        // Kura's own prefixes on services other than `fs` (kept versions, multipart parts)
        if path.parent().is_root() && path.name().starts_with(".kura-") {
            return Err(VfsError::Forbidden(
                "names starting with .kura- at the root are Kura's own",
            ));
        }
        if self.macos == MacosMetadata::Refuse && is_macos_metadata(path.name()) {
            return Err(VfsError::Forbidden("macOS metadata files are refused here"));
        }
        Ok(())
    }

    /// Drops hidden entries from a listing.
    pub(super) fn visible(&self, entries: Vec<Entry>) -> Vec<Entry> {
        if self.macos != MacosMetadata::Hide {
            return entries;
        }
        entries
            .into_iter()
            .filter(|e| !is_macos_metadata(e.path.name()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::is_macos_metadata;

    #[test]
    fn names_of_macos_metadata() {
        assert!(is_macos_metadata(".DS_Store"));
        assert!(is_macos_metadata("._report.docx"));
        assert!(!is_macos_metadata("_report.docx"));
        assert!(!is_macos_metadata(".ds_store.txt"));
        assert!(!is_macos_metadata("a._b"));
    }
}
