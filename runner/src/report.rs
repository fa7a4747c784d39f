//! Human rendering of probe results: a header and a device table per host, failures with
//! their reason and hint, and a PLAY RECAP-style summary. Colour only emphasises; every
//! state is also spelled out in words (`yes`/`no`, `ok`/`UNREACHABLE`).

use std::fmt::Write as _;

use rookery_proto::{BlockDevice, HostFacts};

use crate::probe::{HostProbe, ProbeOutcome, Recap};

/// ANSI styling that disappears when colour is off.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub color: bool,
}

impl Style {
    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint("31;1", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
}

/// Bytes in binary units, one decimal: `10.0 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.1} {}", UNITS[u])
}

fn pad(s: &str, visible: usize, width: usize) -> String {
    let mut out = s.to_string();
    for _ in visible..width {
        out.push(' ');
    }
    out
}

/// The per-host header line(s).
pub fn host_header(facts: &HostFacts) -> String {
    let os = if facts.os.pretty_name.is_empty() {
        facts.os.name.clone()
    } else {
        facts.os.pretty_name.clone()
    };
    format!(
        "{} · {os} · kernel {} ({}) · {} CPUs · {} memory",
        facts.hostname,
        facts.kernel,
        facts.arch,
        facts.cpus,
        human_bytes(facts.memory_bytes)
    )
}

/// The device table, one row per device.
pub fn device_table(devices: &[BlockDevice], style: Style) -> String {
    let headers = [
        "DEVICE",
        "CLASS",
        "SIZE",
        "MODEL",
        "SERIAL",
        "AVAILABLE",
        "REASONS",
    ];
    let rows: Vec<[String; 7]> = devices
        .iter()
        .map(|d| {
            [
                d.path.clone(),
                d.class.to_string(),
                human_bytes(d.size_bytes),
                d.model.clone().unwrap_or_else(|| "-".into()),
                d.serial.clone().unwrap_or_else(|| "-".into()),
                if d.available {
                    "yes".into()
                } else {
                    "no".into()
                },
                if d.reject_reasons.is_empty() {
                    "-".into()
                } else {
                    d.reject_reasons
                        .iter()
                        .map(|r| r.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ]
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = String::from("  ");
    for (i, h) in headers.iter().enumerate() {
        let cell = if i + 1 == headers.len() {
            style.bold(h)
        } else {
            pad(&style.bold(h), h.len(), widths[i] + 2)
        };
        line.push_str(&cell);
    }
    let _ = writeln!(out, "{}", line.trim_end());
    for r in &rows {
        let mut line = String::from("  ");
        for (i, c) in r.iter().enumerate() {
            let visible = c.chars().count();
            let styled = match i {
                5 if c == "yes" => style.green(c),
                5 => style.yellow(c),
                _ => c.clone(),
            };
            if i + 1 == r.len() {
                line.push_str(&styled);
            } else {
                line.push_str(&pad(&styled, visible, widths[i] + 2));
            }
        }
        let _ = writeln!(out, "{}", line.trim_end());
    }
    out
}

/// One host's full section.
pub fn host_section(h: &HostProbe, style: Style, verbose: u8) -> String {
    let mut out = String::new();
    let status = match &h.outcome {
        ProbeOutcome::Ok(_) => style.green("ok"),
        ProbeOutcome::Failed(_) => style.red("FAILED"),
        ProbeOutcome::Unreachable(_) => style.red("UNREACHABLE"),
    };
    let mut title = format!("{} [{}] {status}", style.bold("HOST"), style.bold(&h.host));
    if verbose > 0 {
        title.push_str(&style.dim(&format!(
            " ({} ms{})",
            h.duration.as_millis(),
            if h.agent_uploaded {
                ", agent uploaded"
            } else {
                ""
            }
        )));
    }
    let _ = writeln!(out, "{title}");
    match &h.outcome {
        ProbeOutcome::Ok(facts) => {
            let _ = writeln!(out, "  {}", host_header(facts));
            if facts.block_devices.is_empty() {
                let _ = writeln!(out, "  no block devices found");
            } else {
                out.push_str(&device_table(&facts.block_devices, style));
            }
            if verbose > 0 {
                for s in &facts.skipped_devices {
                    let _ = writeln!(
                        out,
                        "  {}",
                        style.dim(&format!("skipped {}: {}", s.name, s.reason))
                    );
                }
            }
        }
        ProbeOutcome::Failed(e) | ProbeOutcome::Unreachable(e) => {
            // The section title names the host already.
            let e = e.strip_prefix(&format!("{}: ", h.host)).unwrap_or(e);
            let _ = writeln!(out, "  {} {e}", style.red("error:"));
            if let Some(hint) = &h.hint {
                let _ = writeln!(out, "  hint: {hint}");
            }
        }
    }
    out
}

/// `PROBE RECAP` with one Ansible-style line per host.
pub fn recap(results: &[HostProbe], style: Style) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{}", style.bold("PROBE RECAP"));
    let width = results
        .iter()
        .map(|h| h.host.chars().count())
        .max()
        .unwrap_or(0);
    for h in results {
        let one = Recap::of(std::slice::from_ref(h));
        let name = match h.outcome {
            ProbeOutcome::Ok(_) => style.green(&h.host),
            ProbeOutcome::Failed(_) | ProbeOutcome::Unreachable(_) => style.red(&h.host),
        };
        let _ = writeln!(
            out,
            "{} : ok={}  failed={}  unreachable={}",
            pad(&name, h.host.chars().count(), width),
            one.ok,
            one.failed,
            one.unreachable
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> HostFacts {
        let dev = |name: &str, available: bool, reasons: &str| {
            format!(
                r#"{{"name":"{name}","path":"/dev/{name}","kind":"disk","size_bytes":10737418240,
                "logical_sector_size":512,"physical_sector_size":4096,"rotational":false,
                "transport":"nvme","class":"nvme","model":"Fast Disk","serial":"SN-{name}",
                "removable":false,"read_only":false,"available":{available},
                "reject_reasons":{reasons}}}"#
            )
        };
        let json = format!(
            r#"{{"hostname":"node1","os":{{"id":"debian","name":"Debian","version_id":"12",
            "pretty_name":"Debian GNU/Linux 12"}},"kernel":"6.1.0","arch":"x86_64","cpus":4,
            "memory_bytes":8589934592,"block_devices":[{},{}]}}"#,
            dev("nvme0n1", true, "[]"),
            dev(
                "nvme1n1",
                false,
                r#"[{"reason":"mounted","detail":"/srv"},{"reason":"has_partitions"}]"#
            )
        );
        serde_json::from_str(&json).unwrap()
    }

    #[test]
    fn table_says_everything_in_words() {
        let f = facts();
        let plain = device_table(&f.block_devices, Style { color: false });
        assert!(!plain.contains('\x1b'));
        let lines: Vec<&str> = plain.lines().collect();
        assert!(lines[0].starts_with("  DEVICE"));
        assert!(
            lines[1].contains("/dev/nvme0n1")
                && lines[1].contains("nvme")
                && lines[1].contains("10.0 GiB")
        );
        assert!(
            lines[1].contains("Fast Disk")
                && lines[1].contains("SN-nvme0n1")
                && lines[1].contains("yes")
        );
        assert!(lines[2].contains(" no ") && lines[2].contains("mounted at /srv, has partitions"));
        // Columns line up: AVAILABLE starts at the same offset in every row.
        let col = lines[0].find("AVAILABLE").unwrap();
        assert_eq!(&lines[1][col..col + 3], "yes");
        assert_eq!(&lines[2][col..col + 2], "no");
        let colored = device_table(&f.block_devices, Style { color: true });
        assert!(colored.contains("\x1b[32myes\x1b[0m"));
        assert_eq!(
            host_header(&f),
            "node1 · Debian GNU/Linux 12 · kernel 6.1.0 (x86_64) · 4 CPUs · 8.0 GiB memory"
        );
    }

    #[test]
    fn bytes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(10 * 1024 * 1024 * 1024), "10.0 GiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
    }
}
