//! The `sluice` broker's CLI entry point, built inside the test package so that integration tests
//! get its path via `env!("CARGO_BIN_EXE_sluice-test-broker")` for process-level tests (kill -9,
//! SIGTERM, bad configuration). It runs exactly what the real `sluice` binary runs.

fn main() -> std::process::ExitCode {
    sluice::cli_main()
}
