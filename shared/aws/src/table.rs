//! The table definition, shared by `paysession-admin init` and checked against
//! template.yaml by a test, so the two never drift.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, PointInTimeRecoverySpecification, Projection,
    ProjectionType, ScalarAttributeType, StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
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
pub const KEY_ATTRIBUTES: [&str; 7] = [PK, SK, GSI1PK, GSI1SK, GSI2PK, GSI2SK, GSI3PK];
/// (index, partition key, sort key), projecting every attribute.
pub const INDEXES: [(&str, &str, &str); 2] = [(GSI1, GSI1PK, GSI1SK), (GSI2, GSI2PK, GSI2SK)];
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
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .expect("stream spec"),
        );
    for a in KEY_ATTRIBUTES {
        req = req.attribute_definitions(
            AttributeDefinition::builder().attribute_name(a).attribute_type(ScalarAttributeType::S).build().expect("attribute"),
        );
    }
    for (name, pk, sk) in INDEXES {
        req = req.global_secondary_indexes(gsi(name, pk, sk));
    }
    req = req.global_secondary_indexes(keys_only_gsi(KEYS_ONLY_INDEX));
    req.send().await.map_err(|e| format!("cannot create table {table}: {}", crate::describe(&e)))?;
    wait_active(client, table).await?;
    client
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(TimeToLiveSpecification::builder().attribute_name(TTL).enabled(true).build().expect("ttl spec"))
        .send()
        .await
        .map_err(|e| format!("cannot enable TTL on {table}: {}", crate::describe(&e)))?;
    let pitr = client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(
            PointInTimeRecoverySpecification::builder().point_in_time_recovery_enabled(true).build().expect("pitr spec"),
        )
        .send()
        .await;
    let mut warnings = Vec::new();
    match pitr {
        Ok(_) => {}
        Err(e) if e.as_service_error().and_then(|se| se.meta().code()) == Some("UnknownOperationException") => {
            warnings.push(format!("point-in-time recovery not enabled: this endpoint does not support it ({})", crate::describe(&e)));
        }
        Err(e) => return Err(format!("cannot enable point-in-time recovery on {table}: {}", crate::describe(&e))),
    }
    Ok(warnings)
}

/// A new table accepts TTL and backup settings only once it is ACTIVE (seconds on AWS,
/// immediate on DynamoDB Local).
async fn wait_active(client: &Client, table: &str) -> Result<(), String> {
    for _ in 0..120 {
        let out = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| format!("cannot describe table {table}: {}", crate::describe(&e)))?;
        if out.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
    Err(format!("table {table} did not become ACTIVE within 2 minutes"))
}
