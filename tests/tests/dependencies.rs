//! A storage engine that links the scheduler without its measurement harness gets the core
//! and the async API with no io-uring, libc or nix in its dependency tree (issue 8, "link only
//! what you use"). Asks cargo itself, as a user would.

use std::process::Command;

#[test]
fn the_scheduler_without_default_features_pulls_no_os_bindings() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml");
    let out = Command::new(&cargo)
        .args([
            "tree",
            "--manifest-path",
            manifest,
            "-p",
            "scheduler",
            "--no-default-features",
            "--features",
            "tokio",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--offline",
        ])
        .output();
    let out = match out {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            println!(
                "skipped: `cargo tree` failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        }
        Err(e) => {
            println!("skipped: cannot run {cargo}: {e}");
            return;
        }
    };
    let tree = String::from_utf8_lossy(&out.stdout);
    let crates: Vec<&str> = tree
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    println!("scheduler --no-default-features --features tokio: {crates:?}");
    assert!(crates.contains(&"scheduler") && crates.contains(&"tokio"));
    for banned in ["io-uring", "libc", "nix", "rustix"] {
        assert!(
            !crates.contains(&banned),
            "{banned} is in the core's dependency tree:\n{tree}"
        );
    }
}
