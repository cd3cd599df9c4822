//! The GitHub stand-in's program: serves testbed/support's `github` module on a loopback address.
//!
//! Usage: github_standin --fixture FILE [--addr 127.0.0.1:45011] [--api-url http://127.0.0.1:45010]
//! (or TD_GITHUB_FIXTURE, TD_GITHUB_STANDIN_ADDR, TD_GITHUB_PUBLIC_URL).

use trader_deploy_testbed::github::{App, Config, serve};

fn main() -> anyhow::Result<()> {
    let mut fixture = std::env::var("TD_GITHUB_FIXTURE").ok();
    let mut addr =
        std::env::var("TD_GITHUB_STANDIN_ADDR").unwrap_or_else(|_| "127.0.0.1:45011".into());
    let mut api_url =
        std::env::var("TD_GITHUB_PUBLIC_URL").unwrap_or_else(|_| "http://127.0.0.1:45010".into());
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut val = || {
            args.next()
                .ok_or_else(|| anyhow::anyhow!("{a} needs a value"))
        };
        match a.as_str() {
            "--fixture" => fixture = Some(val()?),
            "--addr" => addr = val()?,
            "--api-url" => api_url = val()?,
            "-h" | "--help" => {
                eprintln!(
                    "usage: github_standin --fixture FILE [--addr 127.0.0.1:45011] [--api-url URL]"
                );
                return Ok(());
            }
            other => anyhow::bail!("unknown argument {other}"),
        }
    }
    let fixture = fixture.ok_or_else(|| anyhow::anyhow!("--fixture FILE is required"))?;
    let addr: std::net::SocketAddr = addr.parse()?;
    anyhow::ensure!(
        addr.ip().is_loopback(),
        "the stand-in binds loopback addresses only, not {addr}"
    );
    let app = App::new(Config {
        fixture_path: fixture.into(),
        api_url,
    })?;
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(serve(app, addr))
}
