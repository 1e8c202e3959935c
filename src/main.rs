//! The `enclave` binary: parses the command line and hands over to the library.

/// A response is built from many small allocations; mimalloc serves them faster than the
/// system allocator (measured in `scripts/bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    enclave::cli::main()
}
