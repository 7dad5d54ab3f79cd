//! The `pushrelay` binary: parses the command line and hands over to [`pushrelay::cli`].

fn main() -> std::process::ExitCode {
    pushrelay::cli::main()
}
