//! Command-line flags, parsed into one settings value per command before any
//! work starts. The library never sees a flag.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "oomguard",
    version,
    about = "Prevent, explain and recover from GPU out-of-memory failures",
    long_about = "Prevent, explain and recover from GPU out-of-memory failures.\n\nExit codes: 0 success; 1 the answer is no (no OOM event found); 2 usage, input or environment error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Find every OOM event in logs or tracebacks and explain cause and fix.
    #[command(
        long_about = "Find every out-of-memory event in logs, tracebacks or pasted text (plain or .gz, any size, \
ANSI colours, CRLF, wrapped lines) and explain each: the memory accounting, the phase, the ranked causes \
and the fixes with values and code.\n\nReads standard input when no PATH is given or PATH is '-'. \
Exit code 0 when an event was found, 1 when none was, 2 on an input error."
    )]
    Explain(ExplainArgs),
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Files to read ('-' for standard input; .gz is decompressed).
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The batch size of the failing run: fixes then name a batch that fits.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub batch: Option<u64>,
    /// Machine-readable output on stdout: {"events": [...]}.
    #[arg(long)]
    pub json: bool,
}
