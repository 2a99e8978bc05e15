//! DynamoDB Local for tests. `scripts/test` starts it and exports its endpoint; tests never
//! touch a non-loopback endpoint.

use paysession_aws::DynamoStore;

/// A store on a new, empty table of the DynamoDB Local that `scripts/test` started.
pub async fn fresh_table() -> DynamoStore {
    table_named("test").await
}

/// [`fresh_table`] for a test that runs for minutes (the faults suites): swept only after
/// [`LONG_STALE_AFTER_MS`].
pub async fn fresh_table_for_a_long_test() -> DynamoStore {
    table_named("long").await
}

/// Deletes a long test's table when it is done with it: DynamoDB Local's TTL pass slows
/// with every table it holds, and the TTL tests wait on that pass.
pub async fn drop_table(store: &DynamoStore) {
    let _ = store.client().delete_table().table_name(store.table()).send().await;
}

async fn table_named(prefix: &str) -> DynamoStore {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "DynamoDB Local is not running: run the suite with scripts/test (it starts DynamoDB Local and sets AWS_ENDPOINT_URL_DYNAMODB)"
        )
    });
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "refusing to create test tables at {endpoint}: tests only use a local DynamoDB"
    );
    let config = paysession_aws::sdk_config().await.unwrap();
    let client = aws_sdk_dynamodb::Client::new(&config);
    drop_stale_tables(&client).await;
    let table = paysession_app::ids::new_id(prefix);
    paysession_aws::table::create_table(&client, &table).await.expect("create test table");
    DynamoStore::from_config(&config, table).await.unwrap()
}

/// No test keeps its table this long; an older one belongs to a finished test or run. Kept
/// short: DynamoDB Local's TTL pass takes longer the more tables it holds, and the TTL tests
/// wait on it.
const STALE_AFTER_MS: u64 = 3 * 60 * 1000;
/// The same for the faults suites' tables, which are in use for 2–5 minutes (a 3-minute
/// sweep took them from under two tests on a loaded machine).
const LONG_STALE_AFTER_MS: u64 = 15 * 60 * 1000;

/// Deletes test tables older than [`STALE_AFTER_MS`] or [`LONG_STALE_AFTER_MS`] (their
/// names start with the creation time, see `new_id`). DynamoDB Local's TTL pass takes longer the more tables it holds:
/// the TTL test took 10 s on an empty instance and 38 s after one run of the suite, and
/// failed its 90 s bound on a second run against the same instance.
async fn drop_stale_tables(client: &aws_sdk_dynamodb::Client) {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let Ok(names) = client.list_tables().into_paginator().items().send().collect::<Result<Vec<_>, _>>().await else { return };
    for name in names {
        let (rest, stale_after) = match (name.strip_prefix("test_"), name.strip_prefix("long_")) {
            (Some(rest), _) => (rest, STALE_AFTER_MS),
            (None, Some(rest)) => (rest, LONG_STALE_AFTER_MS),
            (None, None) => continue,
        };
        let created_ms = rest.get(..12).and_then(|hex| u64::from_str_radix(hex, 16).ok());
        if created_ms.is_some_and(|t| now_ms.saturating_sub(t) > stale_after) {
            // Another test may be deleting it at the same time; either way it goes.
            let _ = client.delete_table().table_name(&name).send().await;
        }
    }
}

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// Counts DynamoDB requests by operation (the `X-Amz-Target` header), retries included,
/// and the items each transaction writes with their write units.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, usize>>>, Arc<Mutex<Written>>, Arc<Mutex<std::collections::BTreeSet<String>>>);

/// Items in `TransactWriteItems` and `PutItem` requests, and their write units by
/// DynamoDB's rule: 1 per started KB of each item (the sum of attribute name and value
/// sizes), 2 in a transaction, before any index writes. An Update counts its key and new
/// values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    pub items: usize,
    pub write_units: usize,
    pub bytes: usize,
    /// Each item's billed size in bytes, in transaction order.
    pub sizes: Vec<usize>,
}

impl RequestCounter {
    pub fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
    pub fn take_written(&self) -> Written {
        std::mem::take(&mut *self.1.lock().unwrap())
    }
    /// The IAM permissions the requests since the last call needed, as `Action@resource`
    /// (`dynamodb:Query@index`, `dynamodb:PutItem@table`, …): a transaction needs the
    /// action of each of its items.
    pub fn take_permissions(&self) -> std::collections::BTreeSet<String> {
        std::mem::take(&mut *self.2.lock().unwrap())
    }
}

fn permissions(op: &str, body: Option<&[u8]>) -> Vec<String> {
    let req: serde_json::Value = body.and_then(|b| serde_json::from_slice(b).ok()).unwrap_or_default();
    match op {
        "TransactWriteItems" => req["TransactItems"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|entry| entry.as_object().and_then(|o| o.keys().next()).cloned())
            .map(|kind| {
                format!("dynamodb:{}@table", if kind == "ConditionCheck" { "ConditionCheckItem".into() } else { format!("{kind}Item") })
            })
            .collect(),
        "Query" | "Scan" if req.get("IndexName").is_some() => vec![format!("dynamodb:{op}@index")],
        other => vec![format!("dynamodb:{other}@table")],
    }
}

/// The size DynamoDB bills for an attribute value in its JSON wire form.
fn value_size(v: &serde_json::Value) -> usize {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else { return 0 };
    match (kind.as_str(), inner) {
        ("S", serde_json::Value::String(s)) => s.len(),
        // Numbers: about one byte per two significant digits, plus one.
        ("N", serde_json::Value::String(n)) => n.trim_start_matches('-').len().div_ceil(2) + 1,
        ("B", serde_json::Value::String(b)) => b.len() * 3 / 4,
        ("BOOL" | "NULL", _) => 1,
        ("L", serde_json::Value::Array(items)) => 3 + items.iter().map(|i| 1 + value_size(i)).sum::<usize>(),
        ("M", serde_json::Value::Object(m)) => 3 + m.iter().map(|(k, i)| 1 + k.len() + value_size(i)).sum::<usize>(),
        _ => inner.to_string().len(),
    }
}

fn attributes_size(attrs: Option<&serde_json::Map<String, serde_json::Value>>) -> usize {
    attrs.map_or(0, |m| m.iter().map(|(k, v)| k.len() + value_size(v)).sum())
}

fn written(op: &str, body: &[u8]) -> Written {
    let Ok(req) = serde_json::from_slice::<serde_json::Value>(body) else { return Written::default() };
    let mut w = Written::default();
    if op == "PutItem" {
        let size = attributes_size(req["Item"].as_object());
        return Written { items: 1, write_units: size.div_ceil(1024).max(1), bytes: size, sizes: vec![size] };
    }
    for entry in req["TransactItems"].as_array().into_iter().flatten() {
        let size = if let Some(put) = entry.get("Put") {
            attributes_size(put["Item"].as_object())
        } else if let Some(update) = entry.get("Update") {
            attributes_size(update["Key"].as_object()) + attributes_size(update["ExpressionAttributeValues"].as_object())
        } else {
            continue;
        };
        w.items += 1;
        w.bytes += size;
        w.sizes.push(size);
        w.write_units += 2 * size.div_ceil(1024).max(1);
    }
    w
}

impl Intercept for RequestCounter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }
    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let op = context.request().headers().get("x-amz-target").map(|t| t.rsplit('.').next().unwrap_or(t)).unwrap_or("unknown");
        self.count(op, context.request().body().bytes());
        Ok(())
    }
}

impl RequestCounter {
    /// Counts one request of `op`, and what a `TransactWriteItems` or `PutItem` `body` writes.
    fn count(&self, op: &str, body: Option<&[u8]>) {
        if matches!(op, "TransactWriteItems" | "PutItem")
            && let Some(body) = body
        {
            let w = written(op, body);
            let mut total = self.1.lock().unwrap();
            total.items += w.items;
            total.write_units += w.write_units;
            total.bytes += w.bytes;
            total.sizes.extend(w.sizes);
        }
        self.2.lock().unwrap().extend(permissions(op, body));
        *self.0.lock().unwrap().entry(op.to_string()).or_default() += 1;
    }
}

/// Like [`fresh_table`], with every request of the returned store counted.
pub async fn counted_table() -> (DynamoStore, RequestCounter) {
    let plain = fresh_table().await;
    let counter = RequestCounter::default();
    let config = paysession_aws::sdk_config().await.unwrap();
    let dynamo_config = aws_sdk_dynamodb::config::Builder::from(&config).interceptor(counter.clone()).build();
    let observer = counter.clone();
    let store = plain
        .with_client(aws_sdk_dynamodb::Client::from_conf(dynamo_config))
        .observed(std::sync::Arc::new(move |op: &str, body: &[u8]| observer.count(op, Some(body))));
    (store, counter)
}
