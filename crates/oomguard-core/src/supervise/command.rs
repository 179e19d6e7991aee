//! The user's command with `{batch}` and `{accum}` placeholders, checked
//! before anything starts and filled for each attempt.

use std::fmt;

/// Why a command template cannot run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    Empty,
    BatchPlaceholderWithoutBatch,
    AccumWithoutGlobalBatch,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Empty => write!(f, "no command given: put it after `--`, e.g. `oomguard run --batch 32 -- python train.py --batch-size {{batch}}`"),
            TemplateError::BatchPlaceholderWithoutBatch => {
                write!(f, "the command uses {{batch}} but no --batch N says where to start")
            }
            TemplateError::AccumWithoutGlobalBatch => {
                write!(f, "the command uses {{accum}} but no --global-batch N says what to keep constant")
            }
        }
    }
}

impl std::error::Error for TemplateError {}

/// A command whose arguments may hold `{batch}` and `{accum}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    args: Vec<String>,
}

impl CommandTemplate {
    /// Checks the template against the flags given.
    pub fn new(
        args: Vec<String>,
        has_batch: bool,
        has_global_batch: bool,
    ) -> Result<CommandTemplate, TemplateError> {
        if args.is_empty() || args[0].is_empty() {
            return Err(TemplateError::Empty);
        }
        let t = CommandTemplate { args };
        if t.uses("{batch}") && !has_batch {
            return Err(TemplateError::BatchPlaceholderWithoutBatch);
        }
        if t.uses("{accum}") && !has_global_batch {
            return Err(TemplateError::AccumWithoutGlobalBatch);
        }
        Ok(t)
    }

    fn uses(&self, placeholder: &str) -> bool {
        self.args.iter().any(|a| a.contains(placeholder))
    }

    /// True when the batch size reaches the command through its arguments
    /// (otherwise only `OOMGUARD_BATCH` carries it).
    pub fn uses_batch(&self) -> bool {
        self.uses("{batch}")
    }

    /// The program and arguments for one attempt.
    pub fn fill(&self, batch: u64, accum: Option<u64>) -> Vec<String> {
        self.args
            .iter()
            .map(|a| {
                let a = a.replace("{batch}", &batch.to_string());
                match accum {
                    Some(k) => a.replace("{accum}", &k.to_string()),
                    None => a,
                }
            })
            .collect()
    }
}

/// Gradient-accumulation steps that keep `batch x accum >= global`.
pub fn accumulation(global: u64, batch: u64) -> u64 {
    global.div_ceil(batch.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn placeholders_are_filled_everywhere() {
        let t = CommandTemplate::new(
            args(&["python", "train.py", "--bs={batch}", "--accum", "{accum}"]),
            true,
            true,
        )
        .unwrap();
        assert_eq!(
            t.fill(12, Some(6)),
            args(&["python", "train.py", "--bs=12", "--accum", "6"])
        );
        assert!(t.uses_batch());
    }

    #[test]
    fn bad_templates_are_refused_before_running() {
        assert_eq!(
            CommandTemplate::new(vec![], true, false),
            Err(TemplateError::Empty)
        );
        assert_eq!(
            CommandTemplate::new(args(&["x", "{batch}"]), false, false),
            Err(TemplateError::BatchPlaceholderWithoutBatch)
        );
        assert_eq!(
            CommandTemplate::new(args(&["x", "{accum}"]), true, false),
            Err(TemplateError::AccumWithoutGlobalBatch)
        );
    }

    #[test]
    fn accumulation_keeps_the_global_batch() {
        assert_eq!(accumulation(64, 24), 3);
        assert_eq!(accumulation(64, 64), 1);
        assert_eq!(accumulation(64, 100), 1);
    }
}
