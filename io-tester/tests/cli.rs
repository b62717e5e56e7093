//! Smoke test of the binary's command line (also makes `cargo test --workspace` build the
//! binary for the end-to-end tests in `tests/`).

use std::process::Command;

#[test]
fn help_explains_units() {
    let out = Command::new(env!("CARGO_BIN_EXE_io-tester"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--storage",
        "--conf",
        "KiB/s",
        "microseconds",
        "--allow-block-device-writes",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}");
    }
}
