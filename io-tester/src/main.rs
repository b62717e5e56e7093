//! `io-tester` is not implemented yet; see the project's open issues.
use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("io-tester: not implemented yet (tracked in the project's issues); nothing was run");
    ExitCode::from(2)
}
