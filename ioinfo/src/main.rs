//! `ioinfo` is not implemented yet; see the project's open issues.
use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("ioinfo: not implemented yet (tracked in the project's issues); nothing was run");
    ExitCode::from(2)
}
