//! What the local server allows a connection, so idle and slow clients cannot take it down:
//! a request's headers must arrive within [`HEADER_TIMEOUT`] (hyper starts that timer again
//! while a kept-alive connection waits for its next request, so it is the idle timeout too);
//! past a soft cap of open connections new ones get [`OVERLOAD_HEADER_TIMEOUT`]; past a hard
//! cap they are closed at once. Both caps follow the process's open-file limit, so the
//! server never runs out of descriptors. A failed `accept` backs off instead of spinning.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Headers of a request (the first, or the next on a kept-alive connection) within this.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// …or within this once the server holds more than the soft cap of connections.
pub const OVERLOAD_HEADER_TIMEOUT: Duration = Duration::from_secs(1);
/// The body of a request within this.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed `accept` (out of descriptors, most often).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    pub soft_cap: usize,
    pub hard_cap: usize,
}

impl ConnectionLimits {
    /// A quarter and a half of the open-file limit, at most 1,024 and 4,096 connections.
    pub fn for_open_files(limit: Option<u64>) -> Self {
        let limit = limit.unwrap_or(1024).min(1 << 20) as usize;
        ConnectionLimits { soft_cap: (limit / 4).clamp(8, 1024), hard_cap: (limit / 2).clamp(16, 4096) }
    }

    pub fn for_this_process() -> Self {
        Self::for_open_files(open_files_limit())
    }

    /// The header timeout for a connection accepted while `open` others are open; `None`:
    /// close it at once.
    pub fn header_timeout(&self, open: usize) -> Option<Duration> {
        match open {
            n if n >= self.hard_cap => None,
            n if n >= self.soft_cap => Some(OVERLOAD_HEADER_TIMEOUT),
            _ => Some(HEADER_TIMEOUT),
        }
    }
}

/// The soft `RLIMIT_NOFILE` of this process (Linux `/proc/self/limits`).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..].split_whitespace().next()?.parse().ok()
}

/// Counts open connections; the guard of each gives its slot back when dropped.
#[derive(Clone, Default)]
pub struct OpenConnections(Arc<AtomicUsize>);

pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl OpenConnections {
    pub fn open(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
    pub fn take(&self) -> Slot {
        self.0.fetch_add(1, Ordering::SeqCst);
        Slot(self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_open_file_limit() {
        assert_eq!(ConnectionLimits::for_open_files(Some(20_000)), ConnectionLimits { soft_cap: 1024, hard_cap: 4096 });
        assert_eq!(ConnectionLimits::for_open_files(Some(256)), ConnectionLimits { soft_cap: 64, hard_cap: 128 });
        let l = ConnectionLimits::for_open_files(Some(256));
        assert_eq!(l.header_timeout(0), Some(HEADER_TIMEOUT));
        assert_eq!(l.header_timeout(64), Some(OVERLOAD_HEADER_TIMEOUT));
        assert_eq!(l.header_timeout(128), None);
        assert!(open_files_limit().is_some_and(|n| n > 0));
        let open = OpenConnections::default();
        let (a, b) = (open.take(), open.take());
        assert_eq!(open.open(), 2);
        drop((a, b));
        assert_eq!(open.open(), 0);
    }
}
