//! One file per command; each takes its resolved flags and returns the exit
//! code docs/reference.md gives it.

mod catalogs;
mod explain;
mod plan;
mod run;
mod snapshot;
mod tune;
pub mod watch;

use crate::flags::{Cli, Command};
use std::process::ExitCode;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Explain(args) => explain::run(&args),
        Command::Plan(args) => plan::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Tune(args) => tune::run(&args),
        Command::Watch(args) => watch::run(&args),
        Command::Snapshot(args) => snapshot::run(&args),
        Command::Models(args) => catalogs::models(&args),
        Command::Gpus(args) => catalogs::gpus(&args),
        Command::Guard { kill_after_ms } => Ok(crate::child::guard(kill_after_ms)),
    }
}
