//! Group commit: one thread owns the connection that writes. It takes every write waiting
//! for it, runs each in a savepoint of one transaction, commits once (one fsync for the
//! group), and only then answers each writer. A write is acknowledged only after the commit
//! that holds it is durable, so `kill -9` never loses an acknowledged write; a write that
//! fails rolls back its own savepoint and leaves the others of its group alone.
//!
//! Reads do not come here: they run on a pool of reader connections (WAL lets them read the
//! last commit while a group is written).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

use paysession_app::ports::StoreError;
use rusqlite::{Connection, Transaction, TransactionBehavior};

/// Writes per transaction at most: bounds the time a reader waits for the WAL to settle
/// and the work one failed commit throws away.
const MAX_GROUP: usize = 256;

/// Called once the group's commit is known: delivers the job's result or the commit's error.
type Finish = Box<dyn FnOnce(Option<&str>) + Send>;
/// Runs a job in the group's transaction (`None`: no transaction could be started), saying
/// whether it succeeded (else its savepoint is rolled back).
type Job = Box<dyn FnOnce(Option<&Transaction<'_>>) -> (bool, Finish) + Send>;

#[derive(Clone)]
pub struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    /// Starts the writing thread on `conn`; it stops when the last `Writer` is dropped.
    /// Between two groups it finishes a WAL checkpoint when `finish` asks it to
    /// (`checkpoint::Checkpointer`).
    pub fn start(conn: Connection, finish: Arc<AtomicBool>) -> Writer {
        let (jobs, queue) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, queue, finish))
            .expect("spawn the SQLite writer thread");
        Writer { jobs }
    }

    /// Runs `f` in the next group's transaction; its result once that group is committed.
    pub async fn write<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let out = match tx {
                Some(tx) => f(tx),
                None => Err(StoreError::Backend("the database could not start a write transaction".into())),
            };
            let ok = out.is_ok();
            let finish: Finish = Box::new(move |commit_error| {
                let out = match commit_error {
                    Some(e) if ok => Err(StoreError::Backend(format!("the database could not commit: {e}"))),
                    _ => out,
                };
                let _ = answer.send(out);
            });
            (ok, finish)
        });
        let stopped = || StoreError::Backend("the database write did not complete".into());
        self.jobs.send(job).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?
    }
}

fn run(mut conn: Connection, queue: mpsc::Receiver<Job>, finish: Arc<AtomicBool>) {
    while let Ok(first) = queue.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match queue.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        write_group(&mut conn, group);
        // Right after a commit no frame is newer than what this checkpoint copies, so it
        // lets the next group start the WAL over.
        if finish.swap(false, Ordering::AcqRel)
            && let Err(e) = conn.query_row(crate::checkpoint::PASSIVE_CHECKPOINT, [], |_| Ok(()))
        {
            tracing::warn!(error = %e, "WAL checkpoint on the writer failed; the next one retries");
        }
    }
}

fn write_group(conn: &mut Connection, group: Vec<Job>) {
    let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
        Ok(tx) => tx,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction");
            for job in group {
                job(None).1(None);
            }
            return;
        }
    };
    let mut finishes = Vec::with_capacity(group.len());
    // A savepoint that cannot be closed may leave a failed job's writes in the transaction:
    // then nothing of the group is committed.
    let mut unsound = None;
    for job in group {
        if let Err(e) = tx.execute_batch("SAVEPOINT job") {
            tracing::error!(error = %e, "cannot open a savepoint");
            finishes.push(job(None).1);
            continue;
        }
        // A panicking job answers nothing (its caller sees the writer's error) and must not
        // take the thread, and every later write, with it.
        let (ok, finish) = match catch_unwind(AssertUnwindSafe(|| job(Some(&tx)))) {
            Ok(done) => done,
            Err(_) => (false, Box::new(|_: Option<&str>| {}) as Finish),
        };
        let end = if ok { "RELEASE job" } else { "ROLLBACK TO job; RELEASE job" };
        if let Err(e) = tx.execute_batch(end) {
            tracing::error!(error = %e, "cannot close a savepoint");
            unsound.get_or_insert_with(|| e.to_string());
        }
        finishes.push(finish);
    }
    let error = match unsound {
        Some(e) => Some(e),
        None => tx.commit().err().map(|e| e.to_string()),
    };
    for finish in finishes {
        finish(error.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asked between two groups, the writer checkpoints with no newer frame than it copies,
    /// so the next group starts the WAL over: new frames reuse the file instead of growing it.
    #[tokio::test]
    async fn a_checkpoint_between_groups_lets_the_wal_start_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let conn = Connection::open(&path).unwrap();
        crate::schema::prepare(&conn).unwrap();
        conn.execute_batch("CREATE TABLE t(v BLOB)").unwrap();
        let finish = Arc::new(AtomicBool::new(false));
        let writer = Writer::start(conn, finish.clone());
        let wal = || std::fs::metadata(dir.path().join("t.db-wal")).map_or(0, |m| m.len());
        let fill = async |w: &Writer| {
            for _ in 0..50 {
                w.write(|tx| tx.execute("INSERT INTO t VALUES (zeroblob(8000))", []).map(drop).map_err(crate::backend)).await.unwrap();
            }
        };
        fill(&writer).await;
        let one_fill = wal();
        fill(&writer).await;
        assert!(wal() > one_fill * 3 / 2, "without a checkpoint the WAL grows: {one_fill} → {}", wal());

        finish.store(true, Ordering::Release);
        writer.write(|_| Ok(())).await.unwrap();
        let before = wal();
        fill(&writer).await;
        assert_eq!(wal(), before, "the WAL started over");
        assert!(!finish.load(Ordering::Acquire), "the request was taken");
    }
}
