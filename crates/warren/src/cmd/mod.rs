//! One module per subcommand: each has clap `Args` and an async `run`.

pub mod agent;
pub mod server;
pub mod template;
pub mod up;
