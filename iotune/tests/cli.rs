//! Smoke test of the binary's command line. (Also makes `cargo test --workspace` build the
//! `iotune` binary, which the end-to-end tests in `tests/` run.)

use std::process::Command;

#[test]
fn help_explains_units() {
    let out = Command::new(env!("CARGO_BIN_EXE_iotune"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--evaluation-directory",
        "bytes",
        "seconds",
        "MiB/s",
        "--sequential-read-buffer-size",
        "in flight",
    ] {
        assert!(text.contains(needle), "--help lacks {needle:?}:\n{text}");
    }
}
