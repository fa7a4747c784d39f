//! rookery-diagnostic: how errors speak to users.
//!
//! - [`Diagnostic`] is implemented by the library error types. A hint is derived from the
//!   error's own fields (a variant, an exit code, a stage), never by matching its message
//!   text, so rewording a message cannot silently drop its hint.
//! - [`one_line`] writes an error and its `source()` chain on one line (`a: b: c`), for
//!   places that hold an error as text (a host's recap line, a task result). Messages never
//!   repeat their source (`#[error("... {source}")]` together with `#[source]`), so no
//!   de-duplication is needed here.
//! - The runner's `error::report` is the one printer (`error:`, `  caused by:`, `hint:`).
//! - [`exit`] is the exit-code table the README documents.

use std::error::Error;
use std::fmt;

pub mod exit;

/// Something the user can do about an error ("raise --timeout for slow hosts").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hint(pub String);

impl Hint {
    pub fn new(text: impl Into<String>) -> Hint {
        Hint(text.into())
    }
}

impl fmt::Display for Hint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What an error carries besides its message.
pub trait Diagnostic: Error {
    /// What the user can do about it, when there is something useful to say.
    fn hint(&self) -> Option<Hint> {
        None
    }

    /// The process exit code a command ends with when this error ends it.
    fn exit_code(&self) -> u8 {
        exit::ERROR
    }
}

/// `err` and its `source()` chain on one line: `what failed: why: why that`.
pub fn one_line(err: &dyn Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct E(&'static str, Option<Box<E>>);
    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }
    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1.as_deref().map(|e| e as &(dyn Error + 'static))
        }
    }

    #[test]
    fn chain_on_one_line() {
        let e = E("a", Some(Box::new(E("b", Some(Box::new(E("c", None)))))));
        assert_eq!(one_line(&e), "a: b: c");
    }
}
