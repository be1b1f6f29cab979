//! The `oob` binary: everything lives in the library; see `oob --help`.

/// mimalloc instead of glibc malloc (Cargo.toml says why).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    oob::cli::main()
}
