//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs inside the
//! commit that crosses its threshold, on the one thread every write waits for: perf of the
//! local server under creates found ~20 % of that thread in `walCheckpoint`. A checkpoint
//! needs no write lock (PASSIVE: it copies what no reader still needs and never blocks),
//! so a thread of its own on its own connection does it, every 25 ms while writes come in,
//! and asks the writer to finish it between two groups so the WAL starts over (`run`).
//! The writer's automatic checkpoint stays as the backstop, at a threshold only reached if
//! this thread falls behind (`schema::WRITER_AUTOCHECKPOINT_PAGES`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the thread looks for new commits: the WAL grows by at most what is written
/// in this time between checkpoints, and the writer's pause to finish one copies about that
/// much (every 200 ms: p99 of local creates 14 ms; 50 ms: 11 ms; 25 ms: 8.6 ms). An idle
/// store costs one pragma per tick.
const EVERY: Duration = Duration::from_millis(25);

/// Copies what no reader still needs into the database and never blocks; answers
/// (busy, frames in the WAL, frames copied).
pub(crate) const PASSIVE_CHECKPOINT: &str = "PRAGMA wal_checkpoint(PASSIVE)";

/// WAL frames (4 KiB pages, 2 MB) past which a pass asks the writer to finish the
/// checkpoint and so start the WAL over.
const RESTART_AFTER_FRAMES: i64 = 500;

/// Keeps the checkpointing thread running; it stops once every clone is dropped.
#[derive(Clone)]
pub struct Checkpointer {
    _alive: mpsc::Sender<()>,
}

impl Checkpointer {
    /// `finish` is raised when the WAL should start over: the writer, between two groups,
    /// checkpoints what this thread's last pass left (`writer::Writer::start`).
    pub fn start(conn: Connection, finish: Arc<AtomicBool>) -> Checkpointer {
        let (alive, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, stopped, finish))
            .expect("spawn the SQLite checkpoint thread");
        Checkpointer { _alive: alive }
    }
}

/// The WAL only starts over from its first frame when a checkpoint has copied every frame
/// and no write came after it — never true for this thread's passes while writes keep
/// coming, so without help the WAL grew for as long as they did (1.9 GB in 8 s of creates),
/// and the writer's own automatic checkpoint, which does start it over, stalled a group
/// commit 15–40 ms to copy and sync 200 ms of frames at once (p99 of local creates 22 ms).
/// So this thread copies the bulk, and then the writer, between two groups, copies only
/// what came during that pass and syncs: a pause of a few ms, after which the WAL starts
/// over (`writer::tests::a_checkpoint_between_groups_lets_the_wal_start_over`).
fn run(conn: Connection, stopped: mpsc::Receiver<()>, finish: Arc<AtomicBool>) {
    let mut seen = None;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        // `data_version` changes when another connection commits: an idle store costs one
        // pragma per tick, no checkpoint.
        let version: Option<i64> = conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok();
        if version.is_none() || version == seen {
            continue;
        }
        seen = version;
        match conn.query_row(PASSIVE_CHECKPOINT, [], |r| r.get::<_, i64>(1)) {
            Ok(frames) if frames >= RESTART_AFTER_FRAMES => finish.store(true, Ordering::Release),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own checkpoint remains"),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use paysession_app::ports::SettingsStore;

    use crate::EmbeddedStore;

    /// Below the writer's own threshold, only this thread moves committed pages from the WAL
    /// into the database file: the file grows to hold them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn committed_pages_reach_the_database_file_without_the_writer() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open_dir(dir.path()).unwrap();
        let db = dir.path().join("paysession.db");
        let before = std::fs::metadata(&db).unwrap().len();
        let value = "x".repeat(3000);
        for i in 0..200 {
            store.put_setting(&format!("k{i}"), &value).await.unwrap();
        }
        let deadline = Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(&db).unwrap().len() < before + 200 * 3000 {
            assert!(Instant::now() < deadline, "no checkpoint: the database file stayed at {before} bytes");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(store.get_setting("k199").await.unwrap().as_deref(), Some(value.as_str()));
    }
}
