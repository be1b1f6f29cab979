//! The `oob` binary: everything lives in the library; see `oob --help`.

fn main() -> std::process::ExitCode {
    oob::cli::main()
}
