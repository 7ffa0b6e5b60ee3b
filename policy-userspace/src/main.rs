fn main() -> std::process::ExitCode {
    policyd::cli::main()
}
