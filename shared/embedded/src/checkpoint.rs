//! WAL checkpoints off the writer thread. SQLite's automatic checkpoint runs inside the
//! commit that crosses its threshold, on the one thread every write waits for: perf of the
//! local server under creates found ~20 % of that thread in `walCheckpoint`. A checkpoint
//! needs no write lock (PASSIVE: it copies what no reader still needs and never blocks),
//! so a thread of its own on its own connection does it, a few times a second while
//! writes come in. The writer's automatic checkpoint stays as the backstop, at a threshold
//! only reached if this thread falls behind (`schema::WRITER_AUTOCHECKPOINT_PAGES`).

use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;

/// How often the thread looks for new commits: the WAL grows by at most what is written
/// in this time between checkpoints.
const EVERY: Duration = Duration::from_millis(200);

/// Keeps the checkpointing thread running; it stops once every clone is dropped.
#[derive(Clone)]
pub struct Checkpointer {
    _alive: mpsc::Sender<()>,
}

impl Checkpointer {
    pub fn start(conn: Connection) -> Checkpointer {
        let (alive, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || run(conn, stopped))
            .expect("spawn the SQLite checkpoint thread");
        Checkpointer { _alive: alive }
    }
}

fn run(conn: Connection, stopped: mpsc::Receiver<()>) {
    let mut seen = None;
    while let Err(mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(EVERY) {
        // `data_version` changes when another connection commits: an idle store costs one
        // pragma per tick, no checkpoint.
        let version: Option<i64> = conn.query_row("PRAGMA data_version", [], |r| r.get(0)).ok();
        if version.is_none() || version == seen {
            continue;
        }
        seen = version;
        if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
            tracing::warn!(error = %e, "WAL checkpoint failed; the writer's own checkpoint remains");
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
