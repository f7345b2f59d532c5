//! What one access line costs: CPU per line of the log as the binary ships it (lines written by
//! `log_output`'s own access-line writer, buffered, to a file), beside the same log writing
//! them through `tracing_subscriber`'s general formatter, and the same loop with the access log
//! off (`RUST_LOG=info,trustcaptcha::access=off`), whose cost is subtracted from both.
//!
//! ```sh
//! cargo run --release -p trustcaptcha-bench --bin access-bench
//! ```
//!
//! Each measurement is a process of its own (the log is a process's global subscriber, as in
//! the server), logging `TRUSTCAPTCHA_BENCH_LINES` lines (default 3 000 000) into a file under
//! `target/bench/`; the three kinds alternate, `ROUNDS` times (default 5), and each line of the
//! output gives min / median / max over the rounds. Text format unless
//! `TRUSTCAPTCHA_BENCH_LOG_FORMAT=json`.

use std::process::{Command, Stdio};

use trustcaptcha_bench::cpu_seconds;
use trustcaptcha_server::log_output::{self, LogFormat};
use trustcaptcha_server::testing;

const KIND_ENV: &str = "TRUSTCAPTCHA_BENCH_ACCESS_KIND";

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

fn format() -> LogFormat {
    match std::env::var("TRUSTCAPTCHA_BENCH_LOG_FORMAT").as_deref() {
        Ok("json") => LogFormat::Json,
        _ => LogFormat::Text,
    }
}

/// In a child: logs the lines and prints the process's CPU seconds.
fn child(kind: &str, lines: u64) {
    let guard = match kind {
        "general" => testing::install_general_log(format()),
        _ => log_output::install(format()),
    }
    .expect("log installed");
    testing::log_access_lines(lines);
    drop(guard);
    println!("{}", cpu_seconds(std::process::id()));
}

fn main() {
    let lines = env_or("TRUSTCAPTCHA_BENCH_LINES", 3_000_000_u64);
    if let Ok(kind) = std::env::var(KIND_ENV) {
        child(&kind, lines);
        return;
    }
    let rounds = env_or("ROUNDS", 5_usize);
    let kinds = [
        ("shipped", "info"),
        ("general", "info"),
        ("off", "info,trustcaptcha::access=off"),
    ];
    std::fs::create_dir_all("target/bench").expect("target/bench");
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); kinds.len()];
    for _ in 0..rounds {
        for (index, (kind, filter)) in kinds.iter().enumerate() {
            let log =
                std::fs::File::create(format!("target/bench/access-{kind}.log")).expect("log file");
            let output = Command::new(std::env::current_exe().expect("this binary"))
                .env(KIND_ENV, kind)
                .env("RUST_LOG", filter)
                .stderr(Stdio::from(log))
                .output()
                .expect("child");
            let seconds: f64 = String::from_utf8_lossy(&output.stdout)
                .trim()
                .parse()
                .expect("CPU seconds");
            cpu[index].push(seconds);
        }
    }
    #[expect(clippy::cast_precision_loss, reason = "a count of lines")]
    let per_line = |seconds: f64| seconds * 1e9 / lines as f64;
    println!(
        "{lines} access lines per process ({:?} format), {rounds} rounds alternating; ns of CPU per line, min / median / max",
        format()
    );
    let off = &cpu[2];
    for (index, (kind, _)) in kinds.iter().enumerate() {
        let mut costs: Vec<f64> = cpu[index]
            .iter()
            .zip(off)
            .map(|(on, off)| per_line(on - off))
            .collect();
        let mut totals: Vec<f64> = cpu[index].iter().map(|s| per_line(*s)).collect();
        costs.sort_by(f64::total_cmp);
        totals.sort_by(f64::total_cmp);
        let spread = |values: &[f64]| {
            format!(
                "{:.0} / {:.0} / {:.0}",
                values[0],
                values[values.len() / 2],
                values[values.len() - 1]
            )
        };
        if index == 2 {
            println!("{kind:>8}: the loop alone {}", spread(&totals));
        } else {
            println!(
                "{kind:>8}: the line {} (with the loop {})",
                spread(&costs),
                spread(&totals)
            );
        }
    }
}
