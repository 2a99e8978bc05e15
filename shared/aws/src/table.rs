//! The table definition, shared by `paysession-admin init` and checked against
//! template.yaml by a test, so the two never drift.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex, GlobalSecondaryIndexUpdate, IndexStatus,
    KeySchemaElement, KeyType, PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableDescription, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use crate::keys::*;

fn key(name: &str, kind: KeyType) -> KeySchemaElement {
    KeySchemaElement::builder().attribute_name(name).key_type(kind).build().expect("complete key element")
}

fn gsi(name: &str, pk: &str, sk: &str) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .key_schema(key(sk, KeyType::Range))
        .projection(Projection::builder().projection_type(ProjectionType::All).build())
        .build()
        .expect("complete index")
}

/// String key attributes of the table and its indexes.
pub const KEY_ATTRIBUTES: [&str; 9] = [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI4PK, GSI4SK, GSI3PK];
/// (index, partition key, sort key), projecting every attribute.
pub const INDEXES: [(&str, &str, &str); 3] = [(GSI1, GSI1PK, GSI1SK), (GSI2, GSI2PK, GSI2SK), (GSI4, GSI4PK, GSI4SK)];
/// (index, partition key) of the one index without a sort key, projecting keys only.
pub const KEYS_ONLY_INDEX: (&str, &str) = (GSI3, GSI3PK);

fn keys_only_gsi((name, pk): (&str, &str)) -> GlobalSecondaryIndex {
    GlobalSecondaryIndex::builder()
        .index_name(name)
        .key_schema(key(pk, KeyType::Hash))
        .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
        .build()
        .expect("complete index")
}

fn attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().expect("attribute")
}

fn stream_spec() -> StreamSpecification {
    StreamSpecification::builder().stream_enabled(true).stream_view_type(StreamViewType::NewAndOldImages).build().expect("stream spec")
}

/// Every index the table must have, as `create_table` defines them.
fn indexes() -> Vec<GlobalSecondaryIndex> {
    let mut all: Vec<_> = INDEXES.into_iter().map(|(name, pk, sk)| gsi(name, pk, sk)).collect();
    all.push(keys_only_gsi(KEYS_ONLY_INDEX));
    all
}

/// What `ensure_table` did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ensured {
    pub created: bool,
    /// Indexes, the stream or TTL added to a table that lacked them.
    pub added: Vec<String>,
    pub warnings: Vec<String>,
}

/// The table as `create_table` makes it, whether or not it exists: a missing table is
/// created; an existing one gets the indexes, stream and TTL it lacks (a table made by an
/// earlier release, before GSI3), one index at a time as DynamoDB requires, each waited for
/// until ACTIVE. A table whose keys, indexes or stream differ from the definition is
/// refused, not changed: those cannot be altered in place without losing what uses them.
pub async fn ensure_table(client: &Client, table: &str) -> Result<Ensured, String> {
    let Some(found) = describe(client, table).await? else {
        let warnings = create_table(client, table).await?;
        return Ok(Ensured { created: true, added: Vec::new(), warnings });
    };
    check_keys(table, &found)?;
    let mut added = Vec::new();
    for index in indexes() {
        let name = index.index_name();
        match found.global_secondary_indexes().iter().find(|g| g.index_name() == Some(name)) {
            // One an earlier init added may still be backfilling.
            Some(existing) if existing.key_schema() == index.key_schema() => wait_index(client, table, name).await?,
            Some(_) => return Err(format!("table {table}: index {name} has other keys than paysession's; not changed")),
            None => {
                add_index(client, table, index.clone()).await?;
                added.push(name.to_string());
            }
        }
    }
    match found.stream_specification() {
        Some(s) if s.stream_enabled() && s.stream_view_type() == Some(&StreamViewType::NewAndOldImages) => {}
        Some(s) if s.stream_enabled() => {
            return Err(format!("table {table}: its stream shows {:?}, not NEW_AND_OLD_IMAGES; not changed", s.stream_view_type()));
        }
        _ => {
            client
                .update_table()
                .table_name(table)
                .stream_specification(stream_spec())
                .send()
                .await
                .map_err(|e| format!("cannot enable the stream of {table}: {}", crate::describe(&e)))?;
            wait_active(client, table).await?;
            added.push("stream".into());
        }
    }
    let ttl = client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| format!("cannot read the TTL setting of {table}: {}", crate::describe(&e)))?
        .time_to_live_description;
    match ttl.as_ref().map(|d| (d.time_to_live_status(), d.attribute_name())) {
        Some((Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), Some(TTL))) => {}
        Some((Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), other)) => {
            return Err(format!("table {table}: TTL is on attribute {other:?}, not {TTL}; not changed"));
        }
        _ => {
            enable_ttl(client, table).await?;
            added.push("ttl".into());
        }
    }
    Ok(Ensured { created: false, added, warnings: enable_pitr(client, table).await? })
}

async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>, String> {
    match client.describe_table().table_name(table).send().await {
        Ok(out) => Ok(out.table),
        Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => Ok(None),
        Err(e) => Err(format!("cannot describe table {table}: {}", crate::describe(&e))),
    }
}

fn check_keys(table: &str, found: &TableDescription) -> Result<(), String> {
    if found.key_schema() != [key(PK, KeyType::Hash), key(SK, KeyType::Range)] {
        return Err(format!("table {table} is not keyed by {PK} (hash) and {SK} (range): not a paysession table; not changed"));
    }
    Ok(())
}

async fn add_index(client: &Client, table: &str, index: GlobalSecondaryIndex) -> Result<(), String> {
    let name = index.index_name().to_string();
    let mut create = CreateGlobalSecondaryIndexAction::builder().index_name(&name).set_key_schema(Some(index.key_schema().to_vec()));
    create = create.set_projection(index.projection().cloned());
    let mut req = client
        .update_table()
        .table_name(table)
        .global_secondary_index_updates(GlobalSecondaryIndexUpdate::builder().create(create.build().map_err(|e| e.to_string())?).build());
    for k in index.key_schema() {
        req = req.attribute_definitions(attribute(k.attribute_name()));
    }
    req.send().await.map_err(|e| format!("cannot add index {name} to {table}: {}", crate::describe(&e)))?;
    wait_index(client, table, &name).await
}

/// Backfilling an index over a large table takes minutes to hours on AWS; DynamoDB adds
/// one index at a time.
async fn wait_index(client: &Client, table: &str, name: &str) -> Result<(), String> {
    let active = |found: &TableDescription| {
        found.global_secondary_indexes().iter().find(|g| g.index_name() == Some(name)).and_then(|g| g.index_status())
            == Some(&IndexStatus::Active)
    };
    let late = || format!("index {name} of {table} was not ACTIVE within 6 hours; run init again to wait for it");
    wait_until(client, table, 6 * 60 * 60, active, late).await
}

/// Describes `table` once a second until `ready` holds, for at most `seconds`.
async fn wait_until(
    client: &Client,
    table: &str,
    seconds: u32,
    ready: impl Fn(&TableDescription) -> bool,
    late: impl FnOnce() -> String,
) -> Result<(), String> {
    for _ in 0..seconds {
        if describe(client, table).await?.as_ref().is_some_and(&ready) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Err(late())
}

/// Creates the table (on demand, stream NEW_AND_OLD_IMAGES), turns TTL and point-in-time
/// recovery on. Returns warnings for settings the endpoint does not support (DynamoDB Local
/// has no backups).
pub async fn create_table(client: &Client, table: &str) -> Result<Vec<String>, String> {
    let mut req = client
        .create_table()
        .table_name(table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key(PK, KeyType::Hash))
        .key_schema(key(SK, KeyType::Range))
        .stream_specification(stream_spec())
        .set_global_secondary_indexes(Some(indexes()));
    for a in KEY_ATTRIBUTES {
        req = req.attribute_definitions(attribute(a));
    }
    req.send().await.map_err(|e| format!("cannot create table {table}: {}", crate::describe(&e)))?;
    wait_active(client, table).await?;
    enable_ttl(client, table).await?;
    enable_pitr(client, table).await
}

async fn enable_ttl(client: &Client, table: &str) -> Result<(), String> {
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name(TTL).enabled(true).build().expect("ttl spec"))
        .send()
        .await
        .map_err(|e| format!("cannot enable TTL on {table}: {}", crate::describe(&e)))?;
    Ok(())
}

/// Point-in-time recovery on; a warning where the endpoint has no backups (DynamoDB Local).
async fn enable_pitr(client: &Client, table: &str) -> Result<Vec<String>, String> {
    let pitr = client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(true).build().expect("pitr spec"),
        )
        .send()
        .await;
    match pitr {
        Ok(_) => Ok(Vec::new()),
        Err(e) if e.as_service_error().and_then(|se| se.meta().code()) == Some("UnknownOperationException") => {
            Ok(vec![format!("point-in-time recovery not enabled: this endpoint does not support it ({})", crate::describe(&e))])
        }
        Err(e) => Err(format!("cannot enable point-in-time recovery on {table}: {}", crate::describe(&e))),
    }
}

/// A new table accepts TTL and backup settings only once it is ACTIVE (seconds on AWS,
/// immediate on DynamoDB Local).
async fn wait_active(client: &Client, table: &str) -> Result<(), String> {
    let active = |found: &TableDescription| found.table_status() == Some(&TableStatus::Active);
    wait_until(client, table, 120, active, || format!("table {table} did not become ACTIVE within 2 minutes")).await
}
