//! A playbook from arbitrary text, checked against the built-in modules. The directory does
//! not exist, so `import_playbook`/`vars_files` fail instead of reading the machine.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rookery_playbook::{Registry, parse_playbook};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse_playbook(text, Path::new("/nonexistent/fuzz.yaml"), &Registry::builtin());
});
