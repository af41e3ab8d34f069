/// mimalloc: measurably less CPU per request than glibc malloc on the proxy path (see the
/// `mimalloc` feature in Cargo.toml and BENCHMARKS.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    authgate::cli::main()
}
