//! The `mediasync` binary: parse arguments, run, map the outcome to an exit
//! code in one place (non-zero on failure, so systemd's `Restart=` works).

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).format_target(false).init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match mediasync::cli::run(&args) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mediasync: {err}");
            err.exit_code()
        }
    };
    std::process::exit(code);
}
