//! The `autoland` binary: parse the command line and hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = autoland::cli::Cli::parse();
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
