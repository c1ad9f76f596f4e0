//! `kura completions SHELL` and `kura man DIR`: shell completions and man pages generated from
//! the command definitions themselves (clap_complete, clap_mangen), so they never drift.

use std::path::Path;

use clap::CommandFactory;

use super::{Cli, CliError};

/// Prints the completion script for `shell` to standard output.
pub fn completions(shell: clap_complete::Shell) {
    let mut cmd = Cli::command();
    clap_complete::generate(shell, &mut cmd, "kura", &mut std::io::stdout());
}

/// Writes `kura.1` and one page per subcommand (`kura-user-add.1`, ...) into `dir`.
pub fn man(dir: &Path) -> Result<(), CliError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CliError::Usage(format!("cannot create {}: {e}", dir.display())))?;
    clap_mangen::generate_to(Cli::command(), dir)
        .map_err(|e| CliError::Usage(format!("writing man pages to {}: {e}", dir.display())))?;
    println!("man pages written to {}", dir.display());
    Ok(())
}
