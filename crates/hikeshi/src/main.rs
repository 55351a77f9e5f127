//! The `hikeshi` binary: parses the command line and hands over to
//! [`hikeshi::cli`]. Errors are printed once, with their causes, and mapped
//! to exit codes (see `hikeshi --help`).

use std::process::ExitCode;

fn main() -> ExitCode {
    hikeshi::cli::main()
}
