//! The user's command with `{batch}` and `{accum}` placeholders, checked
//! before anything starts and filled for each attempt.

use std::fmt;

/// Why a command template cannot run. The messages name no command-line
/// flag: how to give what is missing is for the caller to say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// No command at all.
    Empty,
    /// The command holds `{batch}` but no starting batch was given.
    BatchPlaceholderWithoutBatch,
    /// The command holds `{accum}` but no global batch was given to keep.
    AccumWithoutGlobalBatch,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Empty => write!(f, "no command given"),
            TemplateError::BatchPlaceholderWithoutBatch => {
                write!(
                    f,
                    "the command uses {{batch}} but no starting batch is given"
                )
            }
            TemplateError::AccumWithoutGlobalBatch => write!(
                f,
                "the command uses {{accum}} but no global batch is given to keep constant"
            ),
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
}
