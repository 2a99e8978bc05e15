//! The local webhook pipeline, the in-process twin of stream consumer → SQS → dispatcher:
//! the events table is the outbox (read after a cursor kept in the store), the deliveries
//! table is the queue (polled by due time on the business clock, so the test clock moves
//! retries), and both run the same use cases as the Lambda functions. Everything lives in
//! the store, so a restart resumes where it stopped: a delivery waiting for its retry is
//! neither lost nor sent twice.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use paysession_app::StoreError;
use paysession_app::clock::SystemClock;
use paysession_app::webhooks::{BatchMerchants, dispatch, fan_out_to};
use paysession_runtime::EmbeddedStore;

use crate::local::Local as Deps;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

/// Where the outbox reader stopped (the last event sequence number it fanned out).
const OUTBOX_CURSOR: &str = "webhook_outbox_seq";
/// Attempts in flight at once (a slow receiver holds one for up to 15 s). Each attempt
/// waits for two group commits (lease, outcome): at 16 the dispatcher fell behind the
/// creates of the webhook benchmark (arrival p50 330-415 ms behind the commit, against
/// 42-55 ms at 64, at the same event rate).
const CONCURRENCY: usize = 64;
/// Polls at least this often, whatever else happens.
const MAX_IDLE: Duration = Duration::from_secs(1);

pub async fn run(deps: Deps, store: Arc<EmbeddedStore>, stop: watch::Receiver<bool>) {
    // Two stages, each woken by every commit: fan-out never waits for slow receivers, and
    // dispatch never waits for fan-out to catch up with a burst of events.
    tokio::spawn(fan_out_stage(deps.clone(), store.clone(), stop.clone()));
    dispatch_stage(deps, store, stop).await
}

async fn fan_out_stage(deps: Deps, store: Arc<EmbeddedStore>, mut stop: watch::Receiver<bool>) {
    let mut changes = store.subscribe();
    loop {
        changes.mark_unchanged();
        if let Err(e) = fan_out_pass(&deps, &store).await {
            tracing::warn!(error = %e, "webhook fan-out failed; retrying");
        }
        tokio::select! {
            _ = stop.changed() => return,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(MAX_IDLE) => {}
        }
    }
}

async fn dispatch_stage(deps: Deps, store: Arc<EmbeddedStore>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(CONCURRENCY));
    let in_flight: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut changes = store.subscribe();
    loop {
        changes.mark_unchanged();
        let clocks = deps.app.core.sweep_clocks().await.unwrap_or_else(|_| vec![(None, deps.app.core.clock.now())]);
        for (merchant, now) in clocks {
            match store.due_deliveries(merchant.as_deref(), now, 64).await {
                Ok(due) => {
                    for message in due {
                        let (merchant_id, id) = (message.merchant_id.clone(), message.delivery_id.clone());
                        if !in_flight.lock().expect("lock").insert(id.clone()) {
                            continue;
                        }
                        let Ok(permit) = slots.clone().acquire_owned().await else { return };
                        let (deps, in_flight) = (deps.clone(), in_flight.clone());
                        tokio::spawn(async move {
                            // Each delivery's retries follow its merchant's clock.
                            let dispatched = match deps.app.core.at_merchant(&merchant_id).await {
                                Ok(cx) => dispatch(&cx, deps.sender.as_ref(), &SystemClock, &message).await.map(|_| ()),
                                Err(e) => Err(e),
                            };
                            if let Err(e) = dispatched {
                                tracing::warn!(error = %e, delivery_id = %id, "webhook dispatch failed; retrying");
                            }
                            in_flight.lock().expect("lock").remove(&id);
                            drop(permit);
                        });
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read due deliveries; retrying"),
            }
        }
        let wait = match store.next_due().await {
            Ok(Some(t)) => (t - deps.app.core.clock.now()).to_std().unwrap_or(Duration::ZERO).min(MAX_IDLE),
            _ => MAX_IDLE,
        };
        tokio::select! {
            _ = stop.changed() => return,
            _ = changes.changed() => {}
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
        }
    }
}

/// Fans out every event committed since the cursor. The cursor moves after a batch's
/// deliveries exist, so a crash in between repeats those events, which fan-out tolerates.
/// A batch's events are fanned out at once, so their delivery inserts share the writer's
/// group commits instead of waiting for one commit each.
async fn fan_out_pass(deps: &Deps, store: &EmbeddedStore) -> Result<(), StoreError> {
    let mut cursor: i64 = store.meta_get(OUTBOX_CURSOR).await?.and_then(|v| v.parse().ok()).unwrap_or(0);
    loop {
        let batch = store.events_after(cursor, 100).await?;
        let Some(last) = batch.last().map(|item| item.seq) else { return Ok(()) };
        // Every merchant is read before any task starts, so a failed read leaves nothing begun.
        let mut merchants = BatchMerchants::default();
        let mut work = Vec::with_capacity(batch.len());
        for item in batch {
            let (cx, theirs) = merchants.of(&deps.app.core, &item.merchant_id).await?.clone();
            work.push((cx, theirs, item));
        }
        let mut fanning = JoinSet::new();
        for (cx, theirs, item) in work {
            let queue = deps.app.queue.clone();
            fanning.spawn(async move { fan_out_to(&cx, queue.as_ref(), &theirs, &item.merchant_id, &item.event).await });
        }
        // Every task runs to its end even after one fails, so nothing is half-done when
        // the pass is retried (fan-out tolerates repeats).
        let mut failed = None;
        while let Some(done) = fanning.join_next().await {
            match done {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => failed = Some(e),
                Err(e) => failed = Some(StoreError::Backend(format!("fan-out task: {e}"))),
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        cursor = last;
        store.meta_set(OUTBOX_CURSOR, &cursor.to_string()).await?;
    }
}
