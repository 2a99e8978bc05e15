//! The DynamoDB metering proxy (`tests/src/capacity.rs`) as a process of its own, for the
//! deployed-path cost driver (`benches/perf/lifecycle.py`), whose functions run as separate
//! processes: they reach DynamoDB Local through it.
//!
//! Usage: cargo bench -p paysession-tests --bench metering_proxy -- TARGET_URL
//! Prints `url=<the proxy's URL>`, then answers lines on stdin:
//! - `reset`: forgets what was metered, answers `ok`;
//! - `report SESSIONS DELIVERIES`: prints the cost report of what was metered since the last
//!   `reset` or `report` (as the lifecycle cost bench does, nothing subtracted), then one
//!   line `totals {json}` of its figures per paid session.

use std::io::BufRead;

use paysession_tests::capacity::{CapacityProxy, print_report};
use serde_json::json;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let target = std::env::args().skip(1).find(|a| !a.starts_with('-')).expect("usage: metering_proxy TARGET_URL");
    let proxy = CapacityProxy::start(&target).await;
    println!("url={}", proxy.url);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    while let Some(line) = rx.recv().await {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["reset"] => {
                proxy.take();
                println!("ok");
            }
            ["report", sessions, deliveries] => {
                let (Ok(sessions), Ok(deliveries)) = (sessions.parse::<usize>(), deliveries.parse::<usize>()) else {
                    println!("error: report takes two counts");
                    continue;
                };
                let t = print_report(sessions.max(1), deliveries, &proxy.take(), None);
                let totals = json!({
                    "requests": t.requests, "write_units": t.write_units, "aws_write_units": t.aws_write_units,
                    "read_units": t.read_units, "scans": t.scans, "dollars_per_million": t.dollars_per_million,
                });
                println!("totals {totals}");
            }
            _ => println!("error: expected `reset` or `report SESSIONS DELIVERIES`"),
        }
    }
}
