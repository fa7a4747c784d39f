//! `rookery-agent` command line: `serve [--expect-sha256 HEX]`, `probe [--include-loop]`,
//! `--version`. Parsed by hand: clap would add a noticeable share of the uploaded binary.

use std::io::{self, Write};
use std::process::ExitCode;

use rookery_agent::{probe, server};
use rookery_proto::{EXIT_SELF_CHECK_FAILED, ProbeRequest};

const USAGE: &str = "usage: rookery-agent serve [--expect-sha256 HEX]
       rookery-agent probe [--include-loop] [DEVICE...]
       rookery-agent --version";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(&args[1..]),
        Some("probe") => probe_cmd(&args[1..]),
        Some("--version" | "-V") => {
            // Tests check the suffix to know they drive an agent with fault hooks.
            let hooks = if rookery_agent::prepare::TEST_HOOKS {
                " (test hooks)"
            } else {
                ""
            };
            println!("rookery-agent {}{hooks}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some("--help" | "-h") => {
            println!("{USAGE}");
            ExitCode::SUCCESS
        }
        _ => usage_error(),
    }
}

fn usage_error() -> ExitCode {
    eprintln!("{USAGE}");
    ExitCode::from(64)
}

fn serve(args: &[String]) -> ExitCode {
    let mut expect = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--expect-sha256" => match it.next() {
                Some(h) => expect = Some(h.to_ascii_lowercase()),
                None => return usage_error(),
            },
            _ => return usage_error(),
        }
    }
    if let Some(want) = expect {
        match server::self_sha256() {
            Ok(have) if have == want => {}
            Ok(have) => {
                eprintln!(
                    "rookery-agent: self-check failed: /proc/self/exe hashes to {have}, expected {want}"
                );
                return ExitCode::from(EXIT_SELF_CHECK_FAILED as u8);
            }
            Err(e) => {
                eprintln!("rookery-agent: self-check failed: cannot hash /proc/self/exe: {e}");
                return ExitCode::from(EXIT_SELF_CHECK_FAILED as u8);
            }
        }
    }
    let stdin = io::stdin().lock();
    let stdout = io::stdout().lock();
    match server::serve(stdin, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rookery-agent: protocol output failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn probe_cmd(args: &[String]) -> ExitCode {
    let mut req = ProbeRequest::default();
    for a in args {
        match a.as_str() {
            "--include-loop" => req.include_loop = true,
            s if s.starts_with('-') => return usage_error(),
            s => req.only.push(s.to_string()),
        }
    }
    let facts = probe::probe_host(&req);
    let mut out = io::stdout().lock();
    let written = serde_json::to_writer_pretty(&mut out, &facts)
        .map_err(io::Error::other)
        .and_then(|_| writeln!(out));
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rookery-agent: cannot write facts: {e}");
            ExitCode::FAILURE
        }
    }
}
