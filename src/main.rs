//! Wiring only: read the environment once, mask secrets, build the config, run, report.

use std::process::ExitCode;

use trader_deploy::context::RunContext;
use trader_deploy::inputs::{self, Env, RawInputs};
use trader_deploy::outputs::{Outputs, Status};
use trader_deploy::runner::Runner;
use trader_deploy::{cli, pipeline, window};

fn main() -> ExitCode {
    let env = Env::from_process();
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == window::command::NAME) {
        return ExitCode::from(window::command::main(&args[1..]));
    }

    // Under Actions the entrypoint gets no arguments and reads INPUT_*; otherwise it is a CLI.
    let raw = if args.len() <= 1 && env.in_actions() {
        RawInputs::from_env(&env)
    } else {
        match cli::parse(&args) {
            Ok(raw) => raw,
            Err(cli::CliError::Usage(e)) => {
                let _ = e.print();
                return if e.use_stderr() {
                    ExitCode::from(2)
                } else {
                    ExitCode::SUCCESS
                };
            }
            Err(cli::CliError::Input(e)) => {
                Runner::new(env.in_actions(), None, None).error("Invalid input", &e.to_string());
                return ExitCode::FAILURE;
            }
        }
    };

    let ctx = match RunContext::from_env(&env) {
        Ok(ctx) => ctx,
        Err(e) => {
            let runner = Runner::new(env.in_actions(), None, None);
            runner.error("Invalid run context", &e.to_string());
            return ExitCode::FAILURE;
        }
    };
    let runner = Runner::new(
        ctx.in_actions,
        ctx.output_path.clone(),
        ctx.summary_path.clone(),
    );
    // Secrets are masked before validation, so no message can echo one.
    for s in raw.secret_values() {
        runner.mask(&s);
    }
    init_tracing(&env, &runner);

    let config = match inputs::resolve(&raw, &ctx) {
        Ok(c) => c,
        Err(e) => {
            runner.error("Invalid input", &e.to_string());
            // In a workflow the step's `status` output still says so, for `if:` conditions.
            if !runner.in_actions() {
                return ExitCode::FAILURE;
            }
            let refused = Outputs {
                status: Status::Failed,
                ..Outputs::default()
            };
            return finish(&runner, &refused, ExitCode::FAILURE);
        }
    };
    for s in config.secrets() {
        runner.mask(&s);
    }

    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            runner.error(
                "Internal error",
                &format!("failed to start the async runtime: {e}"),
            );
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(pipeline::run(&config, &ctx, &runner));
    log_own_resources();
    match result {
        Ok(outputs) => finish(&runner, &outputs, ExitCode::SUCCESS),
        Err(f) => {
            runner.error(f.title.as_str(), &format!("{:#}", f.error));
            finish(&runner, &f.outputs, ExitCode::FAILURE)
        }
    }
}

/// The action's own CPU time and peak memory, helm excluded (RUSAGE_SELF does not count
/// children): one debug line for `make bench` (`TRADER_DEPLOY_LOG=trader_deploy=debug`).
fn log_own_resources() {
    // SAFETY: getrusage only writes the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tracing::debug!(
        "own resources: user {:.3}s sys {:.3}s max_rss {}KiB",
        secs(u.ru_utime),
        secs(u.ru_stime),
        u.ru_maxrss
    );
}

fn finish(runner: &Runner, outputs: &Outputs, code: ExitCode) -> ExitCode {
    if let Err(e) = outputs.write(runner) {
        runner.error("Outputs", &e.to_string());
        return ExitCode::FAILURE;
    }
    code
}

/// The diagnostic log on stderr, through the runner's redaction and command neutralization (the
/// runner reads stderr for workflow commands too).
fn init_tracing(env: &Env, runner: &Runner) {
    let runner = runner.clone();
    let filter = tracing_subscriber::EnvFilter::try_new(env.log_filter().unwrap_or("warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(move || runner.log_writer())
        .with_target(false)
        .try_init();
}
