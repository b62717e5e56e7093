//! Smoke test of the binary's command line (also makes `cargo test --workspace` build the
//! binary for the end-to-end tests in `tests/`).

use test_support::{assert_mentions, help};

#[test]
fn help_explains_units() {
    let text = help(env!("CARGO_BIN_EXE_io-tester"));
    assert_mentions(
        &text,
        &[
            "--storage",
            "--conf",
            "KiB/s",
            "microseconds",
            "--allow-block-device-writes",
        ],
    );
}

/// Issue 9: every option's range is stated, with its unit, and the exit status for a value
/// out of range.
#[test]
fn help_states_the_ranges() {
    let text = help(env!("CARGO_BIN_EXE_io-tester"));
    assert_mentions(
        &text,
        &[
            "seconds: more than 0, at most 604800",
            "milliseconds: from 2^-24",
            "to 3600000",
            "1 to 1024",
            "power of two from 512 to 1 MiB",
            "1 to 4294967295",
            "2 bad command line",
        ],
    );
}
