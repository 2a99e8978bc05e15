//! Serialising and reading timestamps: chrono's serde impl against
//! `paysession_domain::rfc3339`, in alternated rounds of the same run.
//! `cargo bench -p paysession-domain --bench timestamps [-- COUNT]` prints ns per timestamp
//! for each, writing and reading, and their ratios.

use std::hint::black_box;
use std::time::Instant;

use chrono::{DateTime, TimeZone, Utc};

fn main() {
    let count: usize = std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    // Instants around now at nanosecond precision, as the clock gives them.
    let base = 1_780_000_000_000_000_000_i64;
    let times: Vec<DateTime<Utc>> = (0..count as i64).map(|i| Utc.timestamp_nanos(base + i * 7_919_993)).collect();
    let mut out = Vec::with_capacity(64);
    let mut chrono_ns = Vec::new();
    let mut ours_ns = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        for t in &times {
            out.clear();
            serde_json::to_writer(&mut out, t).unwrap();
            black_box(&out);
        }
        chrono_ns.push(started.elapsed().as_nanos() as f64 / count as f64);
        let started = Instant::now();
        for t in &times {
            out.clear();
            paysession_domain::rfc3339::serialize(t, &mut serde_json::Serializer::new(&mut out)).unwrap();
            black_box(&out);
        }
        ours_ns.push(started.elapsed().as_nanos() as f64 / count as f64);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (c, o) = (median(&mut chrono_ns), median(&mut ours_ns));
    println!("{count} timestamps x 5 rounds, median ns per timestamp: chrono {c:.1}, rfc3339 {o:.1}; rfc3339 / chrono = {:.2}", o / c);

    // Reading them back, as JSON strings.
    let texts: Vec<String> = times.iter().map(|t| serde_json::to_string(t).unwrap()).collect();
    let (mut chrono_read, mut ours_read) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let started = Instant::now();
        for text in &texts {
            black_box(serde_json::from_str::<DateTime<Utc>>(text).unwrap());
        }
        chrono_read.push(started.elapsed().as_nanos() as f64 / count as f64);
        let started = Instant::now();
        for text in &texts {
            black_box(paysession_domain::rfc3339::deserialize(&mut serde_json::Deserializer::from_str(text)).unwrap());
        }
        ours_read.push(started.elapsed().as_nanos() as f64 / count as f64);
    }
    let (c, o) = (median(&mut chrono_read), median(&mut ours_read));
    println!("reading them: chrono {c:.1}, rfc3339 {o:.1} ns per timestamp; rfc3339 / chrono = {:.2}", o / c);
}
