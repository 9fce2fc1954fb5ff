fn main() -> std::process::ExitCode {
    sluice::cli_main()
}
