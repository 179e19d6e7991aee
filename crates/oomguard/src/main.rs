//! The `oomguard` command: flags, human rendering and the exit-code contract
//! of docs/reference.md over the `oomguard-core` library. Errors are printed once, as a
//! chain, with exit code 2; a closed pipe (`oomguard explain big.log | head`)
//! ends quietly.

mod child;
mod commands;
mod flags;
mod serve;
mod style;
mod tui;

use clap::Parser;
use std::io::{self, ErrorKind};
use std::process::ExitCode;

fn main() -> ExitCode {
    // A bug must still end as the reference's (docs/reference.md) one-paragraph error with exit 2, not
    // a panic message and a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let at = info
            .location()
            .map(|l| format!(" at {}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let what = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        eprintln!("oomguard: internal error{at}: {what}. This is a bug in oomguard; please report it with the command line.");
        std::process::exit(2);
    }));
    let cli = flags::Cli::parse();
    match commands::dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitCode::SUCCESS;
            }
            eprintln!("oomguard: {err:#}{}", flag_hint(&err));
            ExitCode::from(2)
        }
    }
}

/// What to type instead, for a library error whose cause a flag fixes: the
/// library's messages name no flag.
fn flag_hint(err: &anyhow::Error) -> &'static str {
    use oomguard_core::gpu::SourceError;
    use oomguard_core::supervise::TemplateError;
    for cause in err.chain() {
        if let Some(e) = cause.downcast_ref::<SourceError>() {
            return match e {
                SourceError::NoDriver(_) => {
                    "; use --replay FILE to play a recording, or --source nvidia-smi"
                }
                SourceError::NoNvmlSupport => "; use --source nvidia-smi",
                _ => "",
            };
        }
        if let Some(e) = cause.downcast_ref::<TemplateError>() {
            return match e {
                TemplateError::Empty => "; put it after `--`, e.g. `oomguard run --batch 32 -- python train.py --batch-size {batch}`",
                TemplateError::BatchPlaceholderWithoutBatch => "; --batch N says where to start",
                TemplateError::AccumWithoutGlobalBatch => "; --global-batch N says what to keep constant",
            };
        }
    }
    ""
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|e| e.kind() == ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::flag_hint;
    use oomguard_core::gpu::SourceError;
    use oomguard_core::supervise::TemplateError;

    #[test]
    fn library_errors_are_told_the_flag_that_fixes_them() {
        let e = anyhow::Error::new(TemplateError::AccumWithoutGlobalBatch).context("run");
        assert!(flag_hint(&e).contains("--global-batch N"));
        let e = anyhow::Error::new(SourceError::NoDriver("libnvidia-ml.so.1".into()));
        assert!(flag_hint(&e).contains("--replay FILE"));
        let e = anyhow::Error::new(SourceError::NvidiaSmi("exit status 15".into()));
        assert_eq!(flag_hint(&e), "");
        assert_eq!(flag_hint(&anyhow::anyhow!("not a library error")), "");
    }
}
