//! `kura fsck`: storage against metadata, then usage against metadata, printed.

use super::admin::open_admin;
use super::CliError;
use crate::config::Config;
use crate::vfs::FsckReport;

/// Runs `kura fsck [--repair]`: storage against metadata, then usage against metadata.
pub async fn fsck(cfg: &Config, repair: bool) -> Result<(), CliError> {
    let admin = open_admin(cfg).await?;
    let r = admin.vfs.fsck(repair).await?;
    print_storage(&r, repair);
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
    let fixed = if repair { " (repaired)" } else { "" };
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
    if !repair && !r.is_clean() {
        return Err(CliError::Usage(
            "drift found; run kura fsck --repair".into(),
        ));
    }
    if repair && !r.is_repaired() {
        return Err(CliError::Usage(
            "drift left that --repair does not fix (see the lines above)".into(),
        ));
    }
    Ok(())
}

/// One line per storage finding, each saying what a repair did with it.
fn print_storage(r: &FsckReport, repair: bool) {
    let now_dirs = |dir: bool| -> Vec<String> {
        r.swapped
            .iter()
            .filter(|(_, d)| *d == dir)
            .map(|(p, _)| p.clone())
            .collect()
    };
    let (now_dirs, now_files) = (now_dirs(true), now_dirs(false));
    let refused: Vec<String> = r
        .refused
        .iter()
        .map(|(p, why)| format!("{} ({why})", shown(p)))
        .collect();
    // what a repair fixes (unless it fails on an entry), and the word for it
    let repairable: [(&str, &[String], &str); 10] = [
        ("stored but not recorded", &r.unrecorded, "repaired"),
        ("recorded but not stored", &r.missing, "repaired"),
        ("size changed on disk", &r.changed, "repaired"),
        (
            "recorded as a file, a folder on disk",
            &now_dirs,
            "repaired",
        ),
        (
            "recorded as a folder, a file on disk",
            &now_files,
            "repaired",
        ),
        ("empty folder without a row", &r.empty_dirs, "removed"),
        ("leftover of an interrupted copy", &r.leftovers, "repaired"),
        (
            "kept version no row refers to",
            &r.unreferenced_versions,
            "repaired",
        ),
        (
            "version whose bytes are gone",
            &r.missing_versions,
            "repaired",
        ),
        (
            "blob no row refers to, over an hour old",
            &r.orphan_blobs,
            "removed",
        ),
    ];
    let mut any = false;
    for (what, list, done) in repairable {
        for p in list {
            any = true;
            let outcome = match (repair, r.unrepaired.get(p)) {
                (false, _) => String::new(),
                (true, None) => format!(" ({done})"),
                (true, Some(why)) => format!(" (not repaired: {why})"),
            };
            println!("{what}: {}{outcome}", shown(p));
        }
    }
    let shown_all = |l: &[String]| l.iter().map(|p| shown(p)).collect::<Vec<_>>();
    let left: [(&str, Vec<String>); 4] = [
        ("not recorded: a name Kura refuses", refused),
        ("symlink, not recorded", shown_all(&r.symlinks)),
        ("not a file or folder, not recorded", shown_all(&r.special)),
        (
            "kept version whose size changed on disk",
            shown_all(&r.changed_versions),
        ),
    ];
    for (what, list) in left {
        for p in list {
            any = true;
            let outcome = if repair { " (left as it is)" } else { "" };
            println!("{what}: {p}{outcome}");
        }
    }
    if !any {
        println!("storage: no drift");
    }
}

/// A path as printed: control characters escaped, so a stored name cannot write to the
/// terminal.
fn shown(p: &str) -> String {
    let mut out = String::with_capacity(p.len());
    for c in p.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}
