//! `warren agent` (placeholder, filled by its issue).

/// Flags of `warren agent`.
#[derive(Debug, clap::Args)]
pub struct Args {}

pub async fn run(_args: Args) -> anyhow::Result<()> {
    anyhow::bail!("warren agent is not built yet")
}
