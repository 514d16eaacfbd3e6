//! The `cipherstore` command: a thin edge over the library. Parses arguments, reads keys,
//! drives the pipeline and turns errors into one clear line and a non-zero exit.

mod cli;
mod serve;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cipherstore: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
