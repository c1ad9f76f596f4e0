//! `kura fsck`: storage against metadata, then usage against metadata, printed.

use super::admin::open_admin;
use super::CliError;
use crate::config::Config;

/// Runs `kura fsck [--repair]`: storage against metadata, then usage against metadata.
pub async fn fsck(cfg: &Config, repair: bool) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    let r = admin.vfs.fsck(repair).await?;
    let fixed = if repair { " (repaired)" } else { "" };
    for (what, list) in [
        ("stored but not recorded", &r.unrecorded),
        ("recorded but not stored", &r.missing),
        ("size changed on disk", &r.changed),
        ("leftover of an interrupted copy", &r.leftovers),
        ("kept version no row refers to", &r.unreferenced_versions),
        ("version whose bytes are gone", &r.missing_versions),
        (
            "kept version whose size changed on disk",
            &r.changed_versions,
        ),
    ] {
        for p in list {
            println!("{what}: {p}{fixed}");
        }
    }
    if r.unrecorded.is_empty()
        && r.missing.is_empty()
        && r.changed.is_empty()
        && r.leftovers.is_empty()
        && r.unreferenced_versions.is_empty()
        && r.missing_versions.is_empty()
        && r.changed_versions.is_empty()
    {
        println!("storage: no drift");
    }
    if r.usage.is_empty() {
        println!("usage: no drift");
    }
    match r.search_index {
        0 => println!("search index: no drift"),
        n => println!(
            "search index: {n} entries out of step{}",
            if repair { " (rebuilt)" } else { "" }
        ),
    }
    for d in &r.usage {
        println!(
            "usage of {}: recorded {} bytes / {} files, counted {} bytes / {} files{fixed}",
            d.group, d.recorded.0, d.recorded.1, d.actual.0, d.actual.1
        );
        if d.recorded_versions != d.actual_versions {
            println!(
                "kept versions of {}: recorded {} bytes / {} files, counted {} bytes / {} files{fixed}",
                d.group,
                d.recorded_versions.0,
                d.recorded_versions.1,
                d.actual_versions.0,
                d.actual_versions.1
            );
        }
    }
    if !r.is_clean() && !repair {
        return Err(CliError::Usage(
            "drift found; run kura fsck --repair".into(),
        ));
    }
    Ok(())
}
