//! `warren template` (placeholder, filled by its issue).

/// Subcommands of `warren template`.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Build a template image on this host.
    Build {},
}

pub async fn run(_command: Command) -> anyhow::Result<()> {
    anyhow::bail!("warren template is not built yet")
}
