//! Smoke test of the binary's command line. (Also makes `cargo test --workspace` build the
//! `iotune` binary, which the end-to-end tests in `tests/` run.)

use test_support::{assert_mentions, help};

#[test]
fn help_explains_units() {
    let text = help(env!("CARGO_BIN_EXE_iotune"));
    assert_mentions(
        &text,
        &[
            "--evaluation-directory",
            "bytes",
            "seconds",
            "MiB/s",
            "--sequential-read-buffer-size",
            "in flight",
        ],
    );
}

/// Issue 9: every numeric option's range is stated, with its unit, and the exit status for a
/// value out of range.
#[test]
fn help_states_the_ranges() {
    let text = help(env!("CARGO_BIN_EXE_iotune"));
    assert_mentions(
        &text,
        &[
            "seconds, 1 to 86400",
            "percent (0 to 100)",
            "1 to 1024",
            "1 to 4096",
            "1 to 1048576",
            "multiple of 512 up to 1 GiB",
            "at most 16 sizes",
            "0 to 600",
            "2 bad command line",
        ],
    );
}
