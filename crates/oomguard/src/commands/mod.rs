//! One file per command; each takes its resolved flags and returns the exit
//! code SPEC.md gives it.

mod explain;

use crate::flags::{Cli, Command};
use std::process::ExitCode;

pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Explain(args) => explain::run(&args),
    }
}
