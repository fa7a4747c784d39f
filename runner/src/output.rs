//! Output settings shared by every command: human (colour on a TTY unless `NO_COLOR`) or
//! JSON for machines. Data goes to stdout; logs and progress to stderr.

use std::io::IsTerminal;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// Tables and a recap for people.
    #[default]
    Human,
    /// JSON for machines (one document, or one event per line for streaming commands).
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: OutputFormat,
    /// Colour on stdout (TTY and no `NO_COLOR`).
    pub color: bool,
    /// Draw progress bars on stderr (TTY, human output, not quiet).
    pub progress: bool,
    pub verbose: u8,
    pub quiet: bool,
}

impl Output {
    pub fn new(format: OutputFormat, verbose: u8, quiet: bool) -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let stdout_tty = std::io::stdout().is_terminal();
        let stderr_tty = std::io::stderr().is_terminal();
        Output {
            format,
            color: stdout_tty && !no_color && format == OutputFormat::Human,
            progress: stderr_tty && format == OutputFormat::Human && !quiet,
            verbose,
            quiet,
        }
    }
}
