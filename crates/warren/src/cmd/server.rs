//! `warren server` (placeholder, filled by its issue).

/// Flags of `warren server`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("warren server is not built yet")
}
