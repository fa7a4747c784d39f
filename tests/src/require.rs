//! Prerequisite checks. In CI (`ROOKERY_REQUIRE_REAL=1`) a missing prerequisite fails the
//! test; elsewhere the test prints why it skipped and returns early.

/// True when the environment demands real components (CI).
pub fn required() -> bool {
    std::env::var("ROOKERY_REQUIRE_REAL").is_ok_and(|v| v == "1" || v == "true")
}

/// Returns `true` when the test may proceed. When `ok` is false: panics under
/// `ROOKERY_REQUIRE_REAL=1`, otherwise prints a skip note and returns `false`.
#[track_caller]
pub fn prerequisite(ok: bool, what: &str) -> bool {
    if ok {
        return true;
    }
    if required() {
        panic!("prerequisite missing: {what} (ROOKERY_REQUIRE_REAL=1 forbids skipping)");
    }
    eprintln!(
        "SKIPPED: prerequisite missing: {what} (set ROOKERY_REQUIRE_REAL=1 to make this a failure)"
    );
    false
}

/// Running as root (loop devices, mounts, sudo setup).
pub fn is_root() -> bool {
    // Reading /proc avoids a libc dependency for one call.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// An executable on PATH (or an absolute path that exists).
pub fn have_program(name: &str) -> bool {
    if name.contains('/') {
        return std::path::Path::new(name).exists();
    }
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
}
