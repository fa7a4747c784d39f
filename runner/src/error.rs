//! The one error printer. Every command that ends on an error prints it here:
//!
//! ```text
//! error: node2: the agent did not start: it ended (exit code 126) before its protocol marker
//!   caused by: ...
//! hint: the agent's directory may be on a noexec mount; ...
//! ```
//!
//! Hints and exit codes come from [`Diagnostic`] implementations of the library error types
//! anywhere in the `source()` chain (the outermost one that has an exit code decides it), so a
//! hint follows its error through any wrapping. Places that keep an error as one line of text
//! (a host's recap, a task result) use [`rookery_diagnostic::one_line`].

use std::error::Error;

use rookery_diagnostic::Diagnostic;

use crate::exit;

/// Print `err` (with its causes and hints) to stderr; returns the exit code it calls for.
pub fn report(err: &(dyn Error + 'static)) -> u8 {
    let (code, lines) = render(err);
    for line in lines {
        eprintln!("{line}");
    }
    code
}

/// The lines [`report`] prints, and the exit code.
pub fn render(err: &(dyn Error + 'static)) -> (u8, Vec<String>) {
    let mut lines = vec![format!("error: {err}")];
    let mut hints: Vec<String> = Vec::new();
    let mut code = None;
    let mut cur: Option<&(dyn Error + 'static)> = Some(err);
    let mut first = true;
    while let Some(e) = cur {
        if !first {
            lines.push(format!("  caused by: {e}"));
        }
        first = false;
        if let Some(d) = diagnostic(e) {
            code = code.or(Some(d.exit_code()));
            if let Some(h) = d.hint().map(|h| h.to_string())
                && !hints.contains(&h)
            {
                hints.push(h);
            }
        }
        cur = e.source();
    }
    lines.extend(hints.into_iter().map(|h| format!("hint: {h}")));
    (code.unwrap_or(exit::ERROR), lines)
}

/// The [`Diagnostic`] view of an error, for the library error types that have one. Rust
/// cannot ask a `dyn Error` for another trait, so the types are listed here, once.
fn diagnostic<'a>(e: &'a (dyn Error + 'static)) -> Option<&'a dyn Diagnostic> {
    macro_rules! first_of {
        ($($t:ty),* $(,)?) => {
            $(if let Some(d) = e.downcast_ref::<$t>() {
                return Some(d);
            })*
        };
    }
    first_of!(
        rookery_yaml::Error,
        rookery_inventory::InventoryError,
        rookery_transport::ConnectError,
        rookery_transport::SessionError,
        rookery_playbook::LoadError,
        rookery_playbook::ExecError,
        rookery_playbook::vars::VarsError,
        rookery_stack::hosts::FactsError,
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn causes_and_hints_come_from_the_chain() {
        let err = rookery_transport::ConnectError::Refused {
            host: "n1".into(),
            addr: "10.0.0.1:22".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused),
        };
        let (code, lines) = render(&err);
        assert_eq!(code, exit::HOSTS_UNREACHABLE);
        assert_eq!(lines[0], "error: n1: connection to 10.0.0.1:22 refused");
        assert!(lines[1].starts_with("  caused by: "), "{lines:?}");
        assert_eq!(
            lines[2],
            "hint: is sshd running there, and is ansible_port right?"
        );
    }

    #[test]
    fn input_errors_exit_65() {
        let e = rookery_stack::yaml::parse::<rookery_stack::Stack>("a: [", Path::new("s.yaml"))
            .unwrap_err();
        let (code, lines) = render(&e);
        assert_eq!(code, exit::INPUT);
        assert!(lines[0].starts_with("error: s.yaml:"), "{lines:?}");
    }
}
