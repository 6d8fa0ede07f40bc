//! `rapport`: the command-line front of Rapport. It reads the settings file,
//! parses arguments, sets up logging, calls into the crates and turns errors
//! into an exit code; the work itself lives in the library crates.

mod cli;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // SAFETY: no other thread exists yet (the runtime starts below).
    let loaded = match unsafe { cli::config::load(&args) } {
        Ok(l) => l,
        Err(err) => {
            eprintln!("error: {err:#}");
            return ExitCode::FAILURE;
        }
    };
    let matches = cli::Cli::command().get_matches_from(&args);
    let args = match cli::Cli::from_arg_matches(&matches) {
        Ok(a) => a,
        Err(err) => err.exit(),
    };
    cli::init_tracing(args.global.verbose);
    if let cli::Command::Config(cli::ConfigCmd::Show(show)) = &args.command {
        cli::config::show(&loaded, &matches, show);
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
