//! `rookery`: parse the command line, set up logging, run, map the outcome to an exit code.

fn main() -> std::process::ExitCode {
    rookery::cli::main()
}
