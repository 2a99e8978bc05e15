//! A metering proxy in front of DynamoDB Local: every request is forwarded with
//! `ReturnConsumedCapacity: INDEXES`, and what DynamoDB Local reports is summed per
//! operation, with each written item's size and write units by item type (its sort key's
//! first segment: `SESSION`, `EVT`, `DLV`, `IDEM`, …; outside merchant partitions the
//! partition key's). DynamoDB Local does not check request signatures, so the rewritten
//! body is accepted as sent. The lifecycle cost bench reads it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use serde_json::Value;

/// One operation's totals.
#[derive(Debug, Default, Clone)]
pub struct OpTotals {
    pub requests: u64,
    /// Write or read units as DynamoDB Local reported them (table and indexes).
    pub write_units: f64,
    /// The write units AWS's published rule gives the same writes ([`aws_rule_units`]);
    /// DynamoDB Local reports a transaction's differently (a one-item 500 B transaction: 4).
    pub aws_write_units: f64,
    pub read_units: f64,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// One item type's writes.
#[derive(Debug, Default, Clone)]
pub struct ItemTotals {
    pub writes: u64,
    /// Item bytes by DynamoDB's size rule (names and values), for puts (updates and deletes
    /// send no whole item).
    pub bytes: u64,
    /// Write units attributed to this type: a single-item write's reported units; a
    /// transaction's reported units split over its items by their sizes.
    pub write_units: f64,
    /// By AWS's rule, for items put whole; an update's or delete's reported share otherwise.
    pub aws_write_units: f64,
}

#[derive(Debug, Default, Clone)]
pub struct Metered {
    pub ops: BTreeMap<String, OpTotals>,
    pub items: BTreeMap<String, ItemTotals>,
    /// Write units and requests by (table or index, partition key) of the whole items put: what a hot
    /// partition would take. Items are sized by the rule above; a transaction's table write
    /// counts twice, index writes once (updates, which name no index keys, are left out).
    pub partitions: BTreeMap<(String, String), (f64, u64)>,
}

pub struct CapacityProxy {
    pub url: String,
    metered: Arc<Mutex<Metered>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for CapacityProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

const METERED: [&str; 10] = [
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "TransactWriteItems",
    "TransactGetItems",
    "BatchWriteItem",
    "BatchGetItem",
];
const WRITES: [&str; 5] = ["PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"];

impl CapacityProxy {
    pub async fn start(target: &str) -> CapacityProxy {
        let metered = Arc::new(Mutex::new(Metered::default()));
        let client = reqwest::Client::new();
        let (target, m2) = (target.trim_end_matches('/').to_string(), metered.clone());
        let (url, task) = crate::loopback::serve(move |req| {
            let (client, target, metered) = (client.clone(), target.clone(), m2.clone());
            async move { forward(&client, &target, &metered, req).await }
        })
        .await;
        CapacityProxy { url, metered, task }
    }

    /// What was metered since the last [`CapacityProxy::take`].
    pub fn take(&self) -> Metered {
        std::mem::take(&mut *self.metered.lock().unwrap())
    }
}

async fn forward(
    client: &reqwest::Client,
    target: &str,
    metered: &Mutex<Metered>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::io::Error> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    // Streams operations (GetRecords, …) are none of these, and carry no capacity.
    let op = crate::loopback::amz_operation(&parts.headers);
    let metering = METERED.contains(&op.as_str());
    let mut sent: Option<Value> = None;
    let body = if metering {
        match serde_json::from_slice::<Value>(&body) {
            Ok(mut v) => {
                v["ReturnConsumedCapacity"] = "INDEXES".into();
                let out = Bytes::from(v.to_string());
                sent = Some(v);
                out
            }
            Err(_) => body,
        }
    } else {
        body
    };
    let request_bytes = body.len() as u64;
    let answer = crate::loopback::relay(client, target, &parts, body).await?;
    if let (Some(sent), true) = (sent, answer.status == 200) {
        let reply: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        record(metered, &op, &sent, &reply, request_bytes, answer.body.len() as u64);
    }
    Ok(answer.into_response())
}

fn units(consumed: &Value) -> f64 {
    let one = |c: &Value| c["CapacityUnits"].as_f64().unwrap_or(0.0);
    match consumed {
        Value::Array(all) => all.iter().map(one).sum(),
        other => one(other),
    }
}

/// The item type a key names: its sort key's first segment; for the items outside any
/// merchant partition (`SBX#…`, `PEV#…`) the partition key's; `DLV` for a delivery kept in
/// its endpoint's list (sort key `created#id`).
fn item_type(key: &Value) -> String {
    let s = |name: &str| key[name]["S"].as_str().unwrap_or("").to_string();
    let (pk, sk) = (s("PK"), s("SK"));
    let first = |v: &str| v.split('#').next().unwrap_or("").to_string();
    if pk.contains("#WE#") && pk.contains("#DLV") {
        "DLV".into()
    } else if sk.is_empty() || first(&pk) == sk {
        first(&pk)
    } else {
        first(&sk)
    }
}

/// DynamoDB's item size: attribute names plus values (numbers approximated as their text).
fn attr_size(v: &Value) -> u64 {
    let Some((kind, inner)) = v.as_object().and_then(|o| o.iter().next()) else { return 0 };
    match kind.as_str() {
        "S" | "N" => inner.as_str().map_or(0, |s| s.len() as u64),
        "B" => inner.as_str().map_or(0, |s| s.len() as u64 * 3 / 4),
        "BOOL" | "NULL" => 1,
        "M" => 3 + inner.as_object().map_or(0, |m| m.iter().map(|(k, v)| k.len() as u64 + attr_size(v)).sum()),
        "L" => 3 + inner.as_array().map_or(0, |l| l.iter().map(|v| 1 + attr_size(v)).sum()),
        "SS" | "NS" | "BS" => inner.as_array().map_or(0, |l| l.iter().map(|v| v.as_str().map_or(0, |s| s.len() as u64)).sum()),
        _ => 0,
    }
}

fn item_size(item: &Value) -> u64 {
    item.as_object().map_or(0, |o| o.iter().map(|(k, v)| k.len() as u64 + attr_size(v)).sum())
}

fn record<'a>(metered: &Mutex<Metered>, op: &str, sent: &'a Value, reply: &Value, request_bytes: u64, response_bytes: u64) {
    let consumed = units(&reply["ConsumedCapacity"]);
    let mut m = metered.lock().unwrap();
    let totals = m.ops.entry(op.to_string()).or_default();
    totals.requests += 1;
    totals.request_bytes += request_bytes;
    totals.response_bytes += response_bytes;
    if WRITES.contains(&op) {
        totals.write_units += consumed;
    } else {
        totals.read_units += consumed;
    }
    // Items written: their key or whole item, and the put (item and condition) when it is
    // sent whole.
    let one = |action: &'a str, v: &'a Value| if action == "Put" { (&v["Item"], Some(v)) } else { (&v["Key"], None) };
    let written: Vec<(&Value, Option<&Value>)> = match op {
        "PutItem" => vec![one("Put", sent)],
        "UpdateItem" | "DeleteItem" => vec![one("Update", sent)],
        "TransactWriteItems" => sent["TransactItems"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|t| {
                        ["Put", "Update", "Delete", "ConditionCheck"].into_iter().find(|a| t[*a].is_object()).map(|a| one(a, &t[a]))
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    let table_factor = if op == "TransactWriteItems" { 2.0 } else { 1.0 };
    // Units by partition in this request; a partition counts one write per request.
    let mut touched: BTreeMap<(String, String), f64> = BTreeMap::new();
    for item in written.iter().filter_map(|(_, put)| put.map(|p| &p["Item"])) {
        let units = kb_units(item_size(item));
        if let Some(pk) = item["PK"]["S"].as_str() {
            *touched.entry(("table".into(), pk.to_string())).or_default() += units * table_factor;
        }
        for index in ["GSI1", "GSI2", "GSI3"] {
            if let Some(pk) = item[format!("{index}PK")]["S"].as_str() {
                *touched.entry((index.into(), pk.to_string())).or_default() += units;
            }
        }
    }
    for (key, units) in touched {
        let p = m.partitions.entry(key).or_default();
        (p.0, p.1) = (p.0 + units, p.1 + 1);
    }
    if written.is_empty() {
        return;
    }
    // A transaction reports one total: split it by size (an item without a size counts 1 KB).
    let bytes = |put: Option<&Value>| put.map(|p| item_size(&p["Item"]));
    let weight = |put: Option<&Value>| bytes(put).map_or(1.0, kb_units);
    let total_weight: f64 = written.iter().map(|(_, put)| weight(*put)).sum();
    let mut aws_total = 0.0;
    for (key, put) in &written {
        let reported = consumed * weight(*put) / total_weight;
        let aws = put.map_or(reported, |p| aws_rule_units(p, table_factor));
        aws_total += aws;
        let t = m.items.entry(item_type(key)).or_default();
        t.writes += 1;
        t.bytes += bytes(*put).unwrap_or(0);
        t.write_units += reported;
        t.aws_write_units += aws;
    }
    m.ops.entry(op.to_string()).or_default().aws_write_units += aws_total;
}

/// What AWS bills for `put` (a `PutItem` request or a transaction's `Put`): a unit per
/// started KB of its item in the table (twice in a transaction), and in each index whose keys
/// the item carries a unit per started KB of what the index projects. GSI1 and GSI2 project
/// all attributes, so every put of an item in them writes them; GSI3 projects keys only, so
/// only an insert (`attribute_not_exists` condition) writes it, a rewrite with the same key
/// does not (as DynamoDB Local reports too). Keys written on DynamoDB Local alone are left
/// out, of the size too: the due index's (GSI4, the local server's sweeps) and the index
/// keys of expiry and authorisation items (`keys.rs`).
pub fn aws_rule_units(put: &Value, table_factor: f64) -> f64 {
    let item = &put["Item"];
    let inserts = put["ConditionExpression"].as_str().is_some_and(|c| c.contains("attribute_not_exists"));
    let mut on_aws = item.clone();
    if let Some(attrs) = on_aws.as_object_mut() {
        attrs.remove("GSI4PK");
        attrs.remove("GSI4SK");
    }
    let units = kb_units(item_size(&on_aws));
    let mut total = units * table_factor;
    let emulator_only = item["GSI1PK"]["S"].as_str().is_some_and(|pk| pk.contains("#EXPIRY#") || pk.contains("#AUTH#"));
    if !emulator_only {
        for (index, projected) in [("GSI1", units), ("GSI2", units), ("GSI3", if inserts { 1.0 } else { 0.0 })] {
            if item[format!("{index}PK")]["S"].is_string() {
                total += projected;
            }
        }
    }
    total
}

/// Units of an item of `bytes` at 1 KB per unit, at least one.
fn kb_units(bytes: u64) -> f64 {
    (bytes as f64 / 1024.0).ceil().max(1.0)
}

/// The local server on a fresh DynamoDB Local table (from the environment) behind a metering
/// proxy, allowed webhook receivers on loopback: what the cost benches measure. The table
/// handle keeps it alive.
pub async fn metered_server() -> (CapacityProxy, crate::Server, paysession_aws::DynamoStore) {
    let table = crate::dynamo::fresh_table().await;
    let proxy = CapacityProxy::start(&std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("DynamoDB Local")).await;
    let server = crate::Server::start_on_table_with(table.table(), Some(proxy.url.clone()), true).await;
    (proxy, server, table)
}

/// A bench's count argument (`-- N`), else `default`.
pub fn count_arg(default: usize) -> usize {
    std::env::args().skip(1).find(|a| !a.starts_with('-')).and_then(|a| a.parse().ok()).unwrap_or(default)
}

/// On-demand list prices, us-east-1: $ per million write and read request units.
pub const WRU_PRICE: f64 = 0.625;
pub const RRU_PRICE: f64 = 0.125;

/// What a report subtracts: the local server's sweepers' reads while idle, `scale` times.
pub struct Baseline<'a> {
    pub idle: &'a Metered,
    pub scale: f64,
}

/// A report's totals per paid session.
#[derive(Debug, Default)]
pub struct ReportTotals {
    pub requests: f64,
    pub write_units: f64,
    pub aws_write_units: f64,
    pub read_units: f64,
    pub scans: f64,
    pub dollars_per_million: f64,
}

/// Prints what `run` metered per paid session: requests, units and bytes by operation and
/// by item type, and $ per million paid sessions. With a `baseline` (the local path), its
/// reads are subtracted and `Scan`s (the local sweepers') are shown apart; without one
/// (the deployed path), every request counts.
pub fn print_report(sessions: usize, deliveries: usize, run: &Metered, baseline: Option<Baseline<'_>>) -> ReportTotals {
    let n = sessions as f64;
    let (empty, scale) = (Metered::default(), baseline.as_ref().map_or(0.0, |b| b.scale));
    let idle = baseline.as_ref().map_or(&empty, |b| b.idle);
    let local = baseline.is_some();
    println!("lifecycle cost: {sessions} paid sessions, {deliveries} webhook deliveries ({:.1} per session)", deliveries as f64 / n);
    if local {
        println!("\nby operation, per paid session (Scans apart; the sweepers' idle reads subtracted, scaled to the run's length)");
    } else {
        println!("\nby operation, per paid session");
    }
    println!("WRU as DynamoDB Local reports them; AWS WRU by AWS's published rule for the same items (tests/src/capacity.rs)");
    println!("{:<20} {:>9} {:>9} {:>9} {:>9} {:>10} {:>10}", "operation", "requests", "WRU", "AWS WRU", "RRU", "req bytes", "resp bytes");
    let mut t_all = ReportTotals::default();
    for (op, t) in run.ops.iter().filter(|(op, _)| !local || op.as_str() != "Scan") {
        let i = idle.ops.get(op).cloned().unwrap_or_default();
        let requests = (t.requests as f64 - i.requests as f64 * scale).max(0.0) / n;
        let w = (t.write_units - i.write_units * scale).max(0.0) / n;
        let aw = (t.aws_write_units - i.aws_write_units * scale).max(0.0) / n;
        let r = (t.read_units - i.read_units * scale).max(0.0) / n;
        t_all.requests += requests;
        t_all.write_units += w;
        t_all.aws_write_units += aw;
        t_all.read_units += r;
        println!(
            "{op:<20} {requests:>9.2} {w:>9.2} {aw:>9.2} {r:>9.2} {:>10.0} {:>10.0}",
            t.request_bytes as f64 / n,
            t.response_bytes as f64 / n
        );
    }
    let ReportTotals { requests, write_units: wru, aws_write_units: aws_wru, read_units: rru, .. } = t_all;
    println!("{:<20} {requests:>9.2} {wru:>9.2} {aws_wru:>9.2} {rru:>9.2}", "total");
    println!("\nwrites by item type, per paid session (a transaction's reported units split over its items by size)");
    println!("{:<12} {:>8} {:>10} {:>9} {:>9}", "item", "writes", "bytes", "WRU", "AWS WRU");
    for (kind, t) in &run.items {
        println!(
            "{kind:<12} {:>8.2} {:>10.0} {:>9.2} {:>9.2}",
            t.writes as f64 / n,
            t.bytes as f64 / n,
            t.write_units / n,
            t.aws_write_units / n
        );
    }
    let scans = run.ops.get("Scan").cloned().unwrap_or_default();
    t_all.scans = scans.requests as f64 / n;
    if local {
        println!(
            "\nlocal sweepers' Scans (the local server's, not the deployed path's): {:.2} per paid session, {:.2} RRU per paid session",
            t_all.scans,
            scans.read_units / n
        );
    } else {
        println!("\nScans: {:.2} per paid session", t_all.scans);
    }
    let dollars = |w: f64| w * WRU_PRICE + rru * RRU_PRICE;
    t_all.dollars_per_million = dollars(aws_wru);
    println!(
        "DynamoDB $ per million paid sessions (on demand, us-east-1: ${WRU_PRICE}/M WRU, ${RRU_PRICE}/M RRU{}): \
         as reported ${:.2} (writes ${:.2}, reads ${:.2}); by AWS's rule ${:.2}",
        if local { "; Scans apart" } else { "" },
        dollars(wru),
        wru * WRU_PRICE,
        rru * RRU_PRICE,
        dollars(aws_wru)
    );
    t_all
}
