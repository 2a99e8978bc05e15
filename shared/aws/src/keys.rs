//! The single-table key design. Every partition key of tenant data starts with the
//! merchant, so a foreign id can never address another tenant's item.
//!
//! | item | PK | SK | GSI1 (PK / SK) | GSI2 (PK / SK) |
//! |---|---|---|---|---|
//! | session (GSI3: `VA#number`, if it shows a virtual account; `sync_ms` while an attempt's sync is due) | `MER#m#SES#key` (the reference key its id carries) | `SESSION` | `MER#m#SESSIONS#shard` / `created#id` | `MER#m#CUS#customer` / `created#id` |
//! | session event | `MER#m#SES#id` | `EVT#version#index` | `MER#m#EVENTS#shard` / `created#evt` | `MER#m#EVT#evt` / `EVENT` |
//! | webhook endpoint | `MER#m` | `WE#id` | | |
//! | webhook delivery (its id names its time) | `MER#m#WE#we#DLV#shard` | `created#id` | | |
//! | webhook delivery, id naming no time (before) | `MER#m#DLV#id` | `DLV` | `MER#m#WE#we#DLV[#shard]` / `created#id` | |
//! | expiry item (TTL = expires_at; the index keys on DynamoDB Local only) | `MER#m#SES#id` | `EXPIRY` | `MER#m#EXPIRY#id` / `expires#id` | `MER#m#EXPIRY#id` / `EXPIRY` |
//! | payment refund counters | `MER#m#SES#key` (its session's) | `PAY#payment` | | |
//! | refund (`sync_ms` while a sync is due) | `MER#m#SES#key` (its session's) | `RE#refund` | `MER#m#REFUNDS` / `created#id` | |
//! | refund event | `MER#m#SES#key` | `EVT#R#refund#version#index` | as session events | as session events |
//! | authorisation item (TTL = capture_before; index keys on DynamoDB Local only) | `MER#m#SES#key` | `AUTH#payment` | `MER#m#AUTH#payment` / `before#payment` | `MER#m#AUTH#payment` / `AUTH#` |
//! | idempotency record | `MER#m#IDEM#key` | `IDEM` | | |
//! | merchant | `MER#m` | `MERCHANT` | `MERCHANTS` / `created#m` | |
//! | API client | `CLIENT#id` | `CLIENT` | `MER#m#CLIENTS` / `id` | |
//! | setting | `SETTING#key` | `SETTING` | | |
//! | saved payment method | `MER#m#PM#customer` | `PM#id` | | |
//! | payment-method event | `MER#m#PMEVT#id` | `EVT#detached-ms#index` | as session events | as session events |
//! | mandate | `MER#m#MD#id` | `MANDATE` | `MER#m#MANDATES` / `created#id` | `MER#m#MDCUS#customer` / `created#id` |
//! | signing profile (setting + public keys) | `MER#m` | `SIGNING` | | |
//! | spent signature nonce (TTL) | `MER#m#NONCE#nonce` | `NONCE` | | |
//! | event put on the EventBridge bus (TTL; no tenant data) | `BUS#evt` | `BUS` | | |
//! | the sandbox processor's ledger entry of one of our ids (TTL; sandbox only) | `SBX#id` | `SBX` | | |
//! | failed attempts of one source in one window (TTL; no tenant data) | `ATTEMPTS#scope#source` | `W#window` | | |
//!
//! `created` is the creation time in milliseconds, zero-padded to 15 digits, so the
//! string order is the time order. `shard` is `00`–`15` ([`list_shard`] of the item's id);
//! items written before sharding keep the unsharded key, which lists still read.

use paysession_domain::session::{id_reference_key, reference_key};

pub const PK: &str = "PK";
pub const SK: &str = "SK";
/// The table itself where a read names an index (`store.rs`, `query_index`).
pub const TABLE: &str = "";
pub const GSI1: &str = "GSI1";
pub const GSI1PK: &str = "GSI1PK";
pub const GSI1SK: &str = "GSI1SK";
pub const GSI2: &str = "GSI2";
pub const GSI2PK: &str = "GSI2PK";
pub const GSI2SK: &str = "GSI2SK";
/// Keys only, partition key only, sparse: virtual-account numbers (see [`virtual_account_gsi3`]).
pub const GSI3: &str = "GSI3";
pub const GSI3PK: &str = "GSI3PK";
/// The local server's due index: written on DynamoDB Local only (`store.rs`,
/// `with_due_index`), so its sweeps read what is due rather than scan the table. Empty on
/// AWS, where the stream, TTL and EventBridge Scheduler say what is due.
pub const GSI4: &str = "GSI4";
pub const GSI4PK: &str = "GSI4PK";
pub const GSI4SK: &str = "GSI4SK";
/// TTL attribute (epoch seconds). Garbage collection only: reads never trust it.
pub const TTL: &str = "ttl";

/// A session's partition holds the reference key its id carries (`id_reference_key`), not
/// the id: two creates of one reference name one partition whenever they run, so
/// the session's own `attribute_not_exists(PK)` guards the reference. An id of another
/// shape names a partition where nothing is stored; a read checks the whole id it finds.
pub fn session_pk(merchant: &str, id: &str) -> String {
    session_partition(merchant, id_reference_key(id).unwrap_or(id))
}
/// The partition of the session of (merchant, customer, reference), whatever its id.
pub fn reference_session_pk(merchant: &str, customer: &str, reference: &str) -> String {
    session_partition(merchant, &reference_key(merchant, customer, reference))
}
fn session_partition(merchant: &str, key: &str) -> String {
    format!("MER#{merchant}#SES#{key}")
}
pub const SESSION_SK: &str = "SESSION";

/// A merchant's two list partitions every create writes (its sessions, its events) are
/// write-sharded: an item goes to one of `LIST_SHARDS` partitions by a hash of its id, and
/// a list reads them all and merges (`store.rs`, `newest_first_merged`). One partition takes
/// 1,000 write units a second; 16 carry one merchant's 10,000 creates a second with room.
pub const LIST_SHARDS: u32 = 16;

/// The shard of `id`: FNV-1a, so it is stable across releases and processes (std's hasher
/// is seeded per process) and spreads ids of any shape.
pub fn list_shard(id: &str) -> u32 {
    let hash = id.bytes().fold(0x811c_9dc5_u32, |h, b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193));
    hash % LIST_SHARDS
}

fn sharded(merchant: &str, list: &str, id: &str) -> String {
    format!("MER#{merchant}#{list}#{:02}", list_shard(id))
}

/// Every partition of a sharded list: its shards, then the unsharded partition that items
/// written before sharding still sit in.
fn list_partitions(merchant: &str, list: &str) -> Vec<String> {
    (0..LIST_SHARDS).map(|shard| format!("MER#{merchant}#{list}#{shard:02}")).chain([format!("MER#{merchant}#{list}")]).collect()
}

pub fn sessions_gsi1(merchant: &str, session: &str) -> String {
    sharded(merchant, "SESSIONS", session)
}
pub fn sessions_gsi1_partitions(merchant: &str) -> Vec<String> {
    list_partitions(merchant, "SESSIONS")
}
pub fn customer_gsi2(merchant: &str, customer: &str) -> String {
    format!("MER#{merchant}#CUS#{customer}")
}
pub fn time_sort(created_ms: i64, id: &str) -> String {
    format!("{created_ms:015}#{id}")
}

/// Events sort by the session version that wrote them, then their place in that write.
pub fn event_sk(version: u64, index: usize) -> String {
    format!("EVT#{version:010}#{index:03}")
}
pub const EVENT_SK_PREFIX: &str = "EVT#";
pub fn events_gsi1(merchant: &str, event: &str) -> String {
    sharded(merchant, "EVENTS", event)
}
pub fn events_gsi1_partitions(merchant: &str) -> Vec<String> {
    list_partitions(merchant, "EVENTS")
}

/// Finds an event by id (`GET /v1/events/{id}`) whose id does not name its partition
/// ([`event_partition`]): those written before ids named their subject.
pub fn event_gsi2(merchant: &str, id: &str) -> String {
    format!("MER#{merchant}#EVT#{id}")
}

/// The partition an event is stored in, from the subject its id names
/// (`paysession_domain::event::event_subject`): a session's or a refund's (its session's),
/// a mandate's, a payment method's.
pub fn event_partition(merchant: &str, event_id: &str) -> Option<String> {
    let subject = paysession_domain::event::event_subject(event_id)?;
    match subject.split_once('_')?.0 {
        "ps" => id_reference_key(subject).map(|_| session_pk(merchant, subject)),
        "re" => paysession_domain::session::owning_session_id(subject).map(|session| session_pk(merchant, &session)),
        "md" => Some(mandate_pk(merchant, subject)),
        "pm" => Some(payment_method_events_pk(merchant, subject)),
        _ => None,
    }
}
pub const EVENT_GSI2SK: &str = "EVENT";

pub fn endpoint_sk(id: &str) -> String {
    format!("WE#{id}")
}
pub const ENDPOINT_SK_PREFIX: &str = "WE#";

/// Where a delivery whose id names no time is stored (those made before ids named it).
pub fn delivery_pk(merchant: &str, id: &str) -> String {
    format!("MER#{merchant}#DLV#{id}")
}
pub const DELIVERY_SK: &str = "DLV";
/// An endpoint's deliveries, sharded as sessions and events are (an endpoint subscribed to
/// `payment_session.created` gets one delivery per create). A delivery whose id names its
/// time (`Delivery::created_ms_of`) is stored in its shard, sort key `time_sort`, so the
/// list needs no index entry; the others sit in GSI1 under the same partition names.
pub fn deliveries_partition(merchant: &str, endpoint: &str, delivery: &str) -> String {
    sharded(merchant, &format!("WE#{endpoint}#DLV"), delivery)
}
/// The shards of an endpoint's deliveries and, in GSI1, the unsharded partition too.
pub fn deliveries_partitions(merchant: &str, endpoint: &str) -> Vec<String> {
    list_partitions(merchant, &format!("WE#{endpoint}#DLV"))
}

/// The session's expiry item: its TTL deletion drives the transition to `expired`. On
/// DynamoDB Local only, it carries every GSI's key attributes, because the emulator never
/// deletes an expired item that lacks any index's keys (AWS does not care; `store.rs`,
/// `expiry_item`).
pub const EXPIRY_SK: &str = "EXPIRY";
pub fn expiry_index_pk(merchant: &str, session: &str) -> String {
    format!("MER#{merchant}#EXPIRY#{session}")
}

/// A deposit finds its session through the session item's entry in GSI3, a sparse index
/// holding keys only: the number cannot carry the session's key (16 digits), and a lookup
/// item of its own would cost each create another 2 write units. The reference needs no
/// item either: the session's partition is derived from it ([`session_pk`]).
pub fn virtual_account_gsi3(number: &str) -> String {
    format!("VA#{number}")
}

pub fn idempotency_pk(merchant: &str, key: &str) -> String {
    format!("MER#{merchant}#IDEM#{key}")
}
pub const IDEMPOTENCY_SK: &str = "IDEM";

pub fn merchant_pk(merchant: &str) -> String {
    format!("MER#{merchant}")
}

/// The merchant of a tenant partition key (`MER#m` or `MER#m#…`): items under one need not
/// repeat it (an event item's 47 bytes, the difference between one write unit and two).
pub fn merchant_of(pk: &str) -> Option<&str> {
    let rest = pk.strip_prefix("MER#")?;
    let merchant = rest.split('#').next()?;
    (!merchant.is_empty()).then_some(merchant)
}
pub const MERCHANT_SK: &str = "MERCHANT";
pub const MERCHANTS_GSI1: &str = "MERCHANTS";

pub fn client_pk(client_id: &str) -> String {
    format!("CLIENT#{client_id}")
}
pub const CLIENT_SK: &str = "CLIENT";
pub fn clients_gsi1(merchant: &str) -> String {
    format!("MER#{merchant}#CLIENTS")
}

/// A merchant's request-signing profile lives beside its merchant item.
pub const SIGNING_SK: &str = "SIGNING";
pub fn nonce_pk(merchant: &str, nonce: &str) -> String {
    format!("MER#{merchant}#NONCE#{nonce}")
}
pub const NONCE_SK: &str = "NONCE";

pub fn setting_pk(key: &str) -> String {
    format!("SETTING#{key}")
}
pub const SETTING_SK: &str = "SETTING";
/// A setting's integer form, beside (and preferred to) the text `value` ([`setting_pk`]).
pub const SETTING_NUMBER: &str = "num";

/// `source_key` is `AttemptPolicy::source_key`: the scope and the source address.
pub fn attempts_pk(source_key: &str) -> String {
    format!("ATTEMPTS#{source_key}")
}
pub fn attempts_sk(window: i64) -> String {
    format!("W#{window}")
}

pub fn payment_methods_pk(merchant: &str, customer: &str) -> String {
    format!("MER#{merchant}#PM#{customer}")
}
pub fn payment_method_sk(id: &str) -> String {
    format!("PM#{id}")
}
/// Where a saved method's events live (`payment_method.detached`).
pub fn payment_method_events_pk(merchant: &str, id: &str) -> String {
    format!("MER#{merchant}#PMEVT#{id}")
}

pub fn mandate_pk(merchant: &str, id: &str) -> String {
    format!("MER#{merchant}#MD#{id}")
}
pub const MANDATE_SK: &str = "MANDATE";
/// Set only while the mandate waits for a charge (the local server's sweep finds it by it).
pub const NEXT_CHARGE_MS: &str = "next_charge_ms";
pub fn mandates_gsi1(merchant: &str) -> String {
    format!("MER#{merchant}#MANDATES")
}
/// A customer's mandates. Its own segment name, not a suffix of `customer_gsi2`'s key:
/// customer ids are free text, so `CUS#x#MD` could be another customer's session key.
pub fn customer_mandates_gsi2(merchant: &str, customer: &str) -> String {
    format!("MER#{merchant}#MDCUS#{customer}")
}

/// A payment's refund counters, beside its session (the payment itself is in the session).
pub fn payment_money_sk(payment: &str) -> String {
    format!("PAY#{payment}")
}
pub const PAYMENT_MONEY_SK_PREFIX: &str = "PAY#";

/// A refund lives in its session's partition: its id names the session, so a read by id is
/// one `GetItem`, and a session's refunds are one `Query`.
pub fn refund_sk(refund: &str) -> String {
    format!("RE#{refund}")
}
pub const REFUND_SK_PREFIX: &str = "RE#";
pub fn refunds_gsi1(merchant: &str) -> String {
    format!("MER#{merchant}#REFUNDS")
}
/// Set on a refund item while its processor sync is due, and on a session item while one
/// of its attempts' is: the stream schedules it, the local sweep scans for it.
pub const SYNC_MS: &str = "sync_ms";
pub const SANDBOX_LEDGER_SK: &str = "SBX";
/// The sandbox's own record of a payment or refund id: outside every merchant's partitions,
/// as a processor's records are outside ours; the id names the payment it is about.
pub fn sandbox_ledger_pk(id: &str) -> String {
    format!("SBX#{id}")
}
pub const PROCESSOR_EVENT_SK: &str = "PEV";
/// A processor's webhook event applied (deduplication), outside every merchant's partitions.
pub fn processor_event_pk(key: &str) -> String {
    format!("PEV#{key}")
}
/// A refund's events sort after the session's own in its partition, in the refund's order.
pub fn refund_event_sk(refund: &str, version: u64, index: usize) -> String {
    format!("EVT#R#{refund}#{version:05}#{index:03}")
}

/// An authorisation's TTL item ([`crate::store`]'s `authorisation_items`).
pub fn authorisation_sk(payment: &str) -> String {
    format!("AUTH#{payment}")
}
pub const AUTHORISATION_SK_PREFIX: &str = "AUTH#";
pub const CAPTURE_BEFORE_MS: &str = "capture_before_ms";
pub fn authorisation_index_pk(merchant: &str, payment: &str) -> String {
    format!("MER#{merchant}#AUTH#{payment}")
}

/// What the local server sweeps for: items whose sort key starts with the first and that
/// carry the second (a due time, epoch ms).
pub const DUE_KINDS: [(&str, &str); 4] =
    [(SESSION_SK, SYNC_MS), (REFUND_SK_PREFIX, SYNC_MS), (AUTHORISATION_SK_PREFIX, CAPTURE_BEFORE_MS), (MANDATE_SK, NEXT_CHARGE_MS)];

/// The due index partition of one kind of [`DUE_KINDS`]; its sort key is `time_sort(due, PK)`.
pub fn due_gsi4(sk_prefix: &str, due_attr: &str) -> String {
    format!("DUE#{due_attr}#{sk_prefix}")
}
