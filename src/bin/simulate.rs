//! Headless runner: runs a lesson's simulation and prints its metrics (see `--help`).
//! Thin shell over `patterns_playground::runner`; exit 2 on bad input, 1 on internal error.

use std::io::Write;
use std::process::ExitCode;

use patterns_playground::runner;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match runner::parse_args(&args) {
        Ok(command) => command,
        Err(error) => {
            eprintln!("simulate: {error}");
            return ExitCode::from(2);
        }
    };
    match runner::execute(&command) {
        Ok(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("simulate: internal error: {error}");
            ExitCode::from(1)
        }
    }
}
