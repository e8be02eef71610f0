//! `veritrail serve` in headless Chromium: page loads and the in-browser verification of one
//! event on a large log, side by side with a 1,000-record log in the same run.
//!
//! ```text
//! cargo bench -p veritrail-cli --bench serve_browser              # 10,000,000 records
//! cargo bench -p veritrail-cli --bench serve_browser -- 1000000   # another size
//! ```
//!
//! The logs are built once with `veritrail append` (realistic `http` events, one in ten a
//! refusal) under `$CARGO_TARGET_TMPDIR/serve-bench/` and reused by later runs. Each figure is
//! the median of 7 navigations after one not counted, measured by the page itself (Navigation Timing: start to the
//! end of `load`; the Verify button: click to verdict, `data-ms`). Needs Debian's `chromium`
//! and `chromium-driver`.

#[path = "../tests/common/mod.rs"]
mod common;
#[path = "../tests/cli_serve/driver.rs"]
mod driver;

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Instant;

use driver::Browser;

const RUNS: usize = 7;
const BIN: &str = env!("CARGO_BIN_EXE_veritrail");

fn main() {
    let records: u64 = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or(10_000_000, |a| a.parse().expect("RECORDS is a number"));
    let base = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("serve-bench");
    std::fs::create_dir_all(&base).unwrap();
    let key = base.join("bench.key");
    if !key.exists() {
        run(&[
            "keygen",
            "bench.veritrail.test/log",
            "--out",
            key.to_str().unwrap(),
        ]);
    }
    let vkey = std::fs::read_to_string(base.join("bench.key.pub")).unwrap();
    let small = build(&base, &key, 1_000);
    let large = build(&base, &key, records);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let browser = Browser::start_in(&base.join("shots")).await;
        let a = measure(&browser, &small, 1_000, vkey.trim()).await;
        let b = measure(&browser, &large, records, vkey.trim()).await;
        println!("| measure (median of {RUNS}) | 1,000 records | {records} records | ratio |");
        println!("| --- | ---: | ---: | ---: |");
        for ((what, x), (_, y)) in a.iter().zip(&b) {
            println!("| {what} | {x:.1} ms | {y:.1} ms | {:.2} |", y / x);
        }
        browser.client.clone().close().await.unwrap();
    });
}

/// Runs `veritrail ARGS` to success.
fn run(args: &[&str]) {
    let status = Command::new(BIN).args(args).status().unwrap();
    assert!(status.success(), "veritrail {args:?}");
}

/// The log of `n` records under `base`, built unless a complete one is there.
fn build(base: &Path, key: &Path, n: u64) -> PathBuf {
    let dir = base.join(format!("log-{n}"));
    let done = dir.join("BUILT");
    if done.exists() {
        return dir;
    }
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let started = Instant::now();
    let mut append = Command::new(BIN)
        .args([
            "append",
            dir.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = BufWriter::with_capacity(1 << 20, append.stdin.take().unwrap());
    for i in 0..n {
        writeln!(input, "{}", common::http_event(i)).unwrap();
    }
    drop(input);
    assert!(append.wait().unwrap().success(), "append {n} records");
    std::fs::write(&done, b"").unwrap();
    eprintln!(
        "built {} ({n} records) in {:.1} s",
        dir.display(),
        started.elapsed().as_secs_f64()
    );
    dir
}

/// `veritrail serve LOG --no-auth`, killed when dropped.
struct Serve(Child, String);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(log: &Path) -> Serve {
    let log = log.to_str().unwrap();
    let serve = ["serve", log, "--no-auth", "--listen", "127.0.0.1:0"];
    let (child, addr) = common::start_server(Command::new(BIN).args(serve), "serve");
    let url = format!("http://{addr}");
    Serve(child, url)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The medians, by what was measured.
async fn measure(browser: &Browser, log: &Path, n: u64, key: &str) -> Vec<(String, f64)> {
    let started = Instant::now();
    let server = serve(log);
    eprintln!(
        "{n} records: serve answered after {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    let url = |path: &str| format!("{}{path}", server.1);
    let mut out = Vec::new();
    let pages = [
        ("events page, newest 50", "/events".to_owned()),
        ("events page, oldest 50", "/events?before=50".to_owned()),
        ("event page, middle record", format!("/events/{}", n / 2)),
        ("event page, last record", format!("/events/{}", n - 1)),
        ("overview", "/".to_owned()),
        (
            "search matching nothing (reads its 200,000-record budget)",
            "/events?sub=nobody".to_owned(),
        ),
    ];
    for (what, path) in &pages {
        // One navigation first, not counted: the browser's caches and the server's first read.
        browser.goto(&url(path)).await;
        let mut times = Vec::new();
        for _ in 0..RUNS {
            browser.goto(&url(path)).await;
            times.push(browser.load_ms().await);
        }
        out.push((what.to_string(), median(times)));
    }
    let mut verify = Vec::new();
    let mut total = Vec::new();
    for _ in 0..RUNS {
        browser.goto(&url(&format!("/events/{}", n / 2))).await;
        let load = browser.load_ms().await;
        let (state, text, ms) = browser.verify(key).await;
        assert_eq!(state, "verified", "{text}");
        verify.push(ms);
        total.push(load + ms);
    }
    out.push((
        "in-browser Verify, middle record".to_owned(),
        median(verify),
    ));
    out.push((
        "event page load + Verify, middle record".to_owned(),
        median(total),
    ));
    browser.shot(&format!("event-{n}")).await;
    out
}
