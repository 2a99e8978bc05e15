//! Captures what the process logs (every level up to `max`) while a test runs, so a test can
//! read the log lines: one subscriber per test process (nextest runs each test in its own).

use std::sync::{Arc, Mutex};

#[derive(Clone)]
struct Sink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The buffer every log line of this process is written to from now on.
pub fn capture(max: tracing::Level) -> Arc<Mutex<Vec<u8>>> {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let sink = Sink(buf.clone());
    let subscriber = tracing_subscriber::fmt().with_max_level(max).with_writer(move || sink.clone()).finish();
    tracing::subscriber::set_global_default(subscriber).expect("one subscriber per test process");
    buf
}

/// What was logged so far.
pub fn text(buf: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buf.lock().unwrap()).into_owned()
}
