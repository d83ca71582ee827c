//! The `kvnode` binary: see `kvnode --help`.

fn main() -> std::process::ExitCode {
    kvnode::cli::run()
}
