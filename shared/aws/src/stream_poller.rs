//! Reads a table's stream the way the Lambda event source mapping does, and hands each
//! batch over in the Lambda event shape. The local server (on DynamoDB) and the tests use it
//! to run the stream-consumer handler against DynamoDB Local's real stream.

use std::collections::HashMap;

use aws_sdk_dynamodbstreams::types::{AttributeValue, Record, ShardIteratorType};
use base64::Engine;
use serde_json::{Map, Value, json};

pub struct StreamPoller {
    client: aws_sdk_dynamodbstreams::Client,
    stream_arn: String,
    /// Next iterator per shard; `None` once a closed shard is drained.
    iterators: HashMap<String, Option<String>>,
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A streams client on the same endpoint as DynamoDB (`AWS_ENDPOINT_URL_DYNAMODB`, for
/// DynamoDB Local) unless `AWS_ENDPOINT_URL_DYNAMODB_STREAMS` says otherwise.
pub async fn streams_client() -> Result<aws_sdk_dynamodbstreams::Client, String> {
    streams_client_at(None).await
}

/// A streams client at the table's `endpoint` when one is given (DynamoDB Local serves both
/// APIs on one address), else as [`streams_client`].
pub async fn streams_client_at(endpoint: Option<&str>) -> Result<aws_sdk_dynamodbstreams::Client, String> {
    let config = crate::sdk_config().await?;
    let mut builder = aws_sdk_dynamodbstreams::config::Builder::from(&config);
    let from_env = || match (std::env::var("AWS_ENDPOINT_URL_DYNAMODB_STREAMS"), std::env::var("AWS_ENDPOINT_URL_DYNAMODB")) {
        (Err(_), Ok(url)) => Some(url),
        _ => None,
    };
    if let Some(url) = endpoint.map(str::to_string).or_else(from_env) {
        builder = builder.endpoint_url(url);
    }
    Ok(aws_sdk_dynamodbstreams::Client::from_conf(builder.build()))
}

impl StreamPoller {
    /// Starts at the oldest record still in the stream (`TRIM_HORIZON`), as a new event
    /// source mapping with that starting position does.
    pub async fn for_table(
        dynamodb: &aws_sdk_dynamodb::Client,
        client: aws_sdk_dynamodbstreams::Client,
        table: &str,
    ) -> Result<Self, String> {
        let described = dynamodb.describe_table().table_name(table).send().await.map_err(|e| crate::describe(&e))?;
        let stream_arn = described.table.and_then(|t| t.latest_stream_arn).ok_or_else(|| format!("table {table} has no stream"))?;
        Ok(StreamPoller { client, stream_arn, iterators: HashMap::new() })
    }

    async fn refresh_shards(&mut self) -> Result<(), String> {
        let described = self.client.describe_stream().stream_arn(&self.stream_arn).send().await.map_err(err)?;
        for shard in described.stream_description.map(|d| d.shards.unwrap_or_default()).unwrap_or_default() {
            let Some(id) = shard.shard_id else { continue };
            if self.iterators.contains_key(&id) {
                continue;
            }
            let it = self
                .client
                .get_shard_iterator()
                .stream_arn(&self.stream_arn)
                .shard_id(&id)
                .shard_iterator_type(ShardIteratorType::TrimHorizon)
                .send()
                .await
                .map_err(err)?;
            self.iterators.insert(id, it.shard_iterator);
        }
        Ok(())
    }

    /// The next records of every shard, as a Lambda DynamoDB event (`{"Records": [...]}`),
    /// or `None` when nothing new arrived.
    pub async fn poll(&mut self) -> Result<Option<Value>, String> {
        self.refresh_shards().await?;
        let mut records = Vec::new();
        let shards: Vec<String> = self.iterators.keys().cloned().collect();
        for shard in shards {
            let Some(Some(iterator)) = self.iterators.get(&shard).cloned() else { continue };
            let out = self.client.get_records().shard_iterator(iterator).limit(100).send().await.map_err(err)?;
            records.extend(out.records.unwrap_or_default().iter().map(lambda_record));
            self.iterators.insert(shard, out.next_shard_iterator);
        }
        Ok((!records.is_empty()).then(|| json!({ "Records": records })))
    }
}

fn attribute(v: &AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => json!({ "S": s }),
        AttributeValue::N(n) => json!({ "N": n }),
        // Base64, as Lambda delivers binary attributes (item bodies, `crate::body`).
        AttributeValue::B(b) => json!({ "B": base64::engine::general_purpose::STANDARD.encode(b.as_ref()) }),
        AttributeValue::Bool(b) => json!({ "BOOL": b }),
        AttributeValue::Null(_) => json!({ "NULL": true }),
        // The table stores nothing else; anything new shows up as unreadable, not wrong.
        _ => json!({ "UNSUPPORTED": true }),
    }
}

fn image(m: Option<&HashMap<String, AttributeValue>>) -> Value {
    Value::Object(m.map(|m| m.iter().map(|(k, v)| (k.clone(), attribute(v))).collect::<Map<_, _>>()).unwrap_or_default())
}

/// The Lambda event-source shape of one stream record.
pub fn lambda_record(r: &Record) -> Value {
    let change = r.dynamodb.as_ref();
    let mut v = json!({
        "eventID": r.event_id,
        "eventName": r.event_name.as_ref().map(|n| n.as_str()),
        "eventSource": "aws:dynamodb",
        "dynamodb": {
            "Keys": image(change.and_then(|c| c.keys.as_ref())),
            "NewImage": image(change.and_then(|c| c.new_image.as_ref())),
            "OldImage": image(change.and_then(|c| c.old_image.as_ref())),
            "SequenceNumber": change.and_then(|c| c.sequence_number.clone()),
            "StreamViewType": "NEW_AND_OLD_IMAGES",
        },
    });
    if let Some(identity) = &r.user_identity {
        v["userIdentity"] = json!({ "type": identity.r#type, "principalId": identity.principal_id });
    }
    v
}
