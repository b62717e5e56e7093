//! `io-tester` is not implemented yet; see the project's open issues.
//!
//! Only the hidden `--check-conf FILE [--sched-groups FILE] [--smp N]` mode works: it parses a
//! job file and prints it as JSON (see `workload::check_conf_cli`).
use std::process::ExitCode;

mod workload;

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    if args.first().is_some_and(|a| a == "--check-conf") {
        return workload::check_conf_cli(&args[1..]);
    }
    eprintln!("io-tester: not implemented yet (tracked in the project's issues); nothing was run");
    ExitCode::from(2)
}
