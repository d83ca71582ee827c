//! The `kvnode` binary: see `kvnode --help`.

/// mimalloc rather than the system allocator: a member allocates page
/// buffers and small vectors at a high rate on its driver thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    kvnode::cli::run()
}
