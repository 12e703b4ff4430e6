//! The command's errors: one line for the person at the terminal, what went wrong and, where
//! there is something to do about it, what to do (`error: <what>; <what to do>`).

use std::fmt;
use std::io;

use crate::keyfile::{describe_io, KeyFileError};

/// Why a command failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum CliError {
    /// A failure with its explanation.
    Failed {
        /// What went wrong.
        what: String,
        /// What to do about it.
        hint: Option<String>,
    },
    /// Standard output could not be written (a closed pipe is not worth a message).
    Stdout(io::Error),
}

impl CliError {
    /// A failure saying `what` went wrong.
    pub fn new(what: impl Into<String>) -> Self {
        CliError::Failed {
            what: what.into(),
            hint: None,
        }
    }

    /// Adds what to do about it.
    #[must_use]
    pub fn hint(self, hint: impl Into<String>) -> Self {
        match self {
            CliError::Failed { what, .. } => CliError::Failed {
                what,
                hint: Some(hint.into()),
            },
            other => other,
        }
    }

    /// A failed I/O operation on a named thing: `cannot <action>: <reason>`.
    pub fn io(action: impl fmt::Display, err: &io::Error) -> Self {
        Self::new(format!("cannot {action}: {}", describe_io(err)))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CliError::Failed { what, hint: None } => f.write_str(what),
            CliError::Failed {
                what,
                hint: Some(hint),
            } => write!(f, "{what}; {hint}"),
            CliError::Stdout(e) => write!(f, "cannot write to standard output: {}", describe_io(e)),
        }
    }
}

impl std::error::Error for CliError {}

impl From<KeyFileError> for CliError {
    fn from(e: KeyFileError) -> Self {
        // Key file messages already say what to do.
        CliError::new(e.to_string())
    }
}
