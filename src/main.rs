//! The `autoland` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match autoland::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // A monitoring plugin answers in its own protocol even when called wrongly.
            if std::env::args().nth(1).as_deref() == Some("check") && e.use_stderr() {
                println!(
                    "AUTOLAND UNKNOWN - {}",
                    e.to_string().lines().next().unwrap_or("bad arguments")
                );
                return ExitCode::from(3);
            }
            e.exit();
        }
    };
    autoland::cli::init_logging(&cli);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("autoland: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(autoland::cli::run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("autoland: {e:#}");
            ExitCode::FAILURE
        }
    }
}
