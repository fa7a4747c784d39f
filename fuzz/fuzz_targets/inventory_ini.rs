//! An INI inventory from arbitrary text; after a NUL, a host pattern to select with.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (inv, pattern) = text.split_once('\0').unwrap_or((text, "all"));
    if let Ok(inv) = rookery_inventory::Inventory::from_str_at(inv, "/nonexistent/fuzz.ini") {
        let _ = inv.select(pattern);
    }
});
