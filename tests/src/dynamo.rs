//! DynamoDB Local for tests. `scripts/test` starts it and exports its endpoint; tests never
//! touch a non-loopback endpoint.

use paysession_aws::DynamoStore;

/// A store on a new, empty table of the DynamoDB Local that `scripts/test` started.
pub async fn fresh_table() -> DynamoStore {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!(
            "DynamoDB Local is not running: run the suite with scripts/test (it starts DynamoDB Local and sets AWS_ENDPOINT_URL_DYNAMODB)"
        )
    });
    assert!(
        endpoint.starts_with("http://127.0.0.1:") || endpoint.starts_with("http://localhost:"),
        "refusing to create test tables at {endpoint}: tests only use a local DynamoDB"
    );
    let client = paysession_aws::dynamodb_client().await;
    let table = paysession_app::ids::new_id("test");
    paysession_aws::table::create_table(&client, &table).await.expect("create test table");
    DynamoStore::new(client, table)
}

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;

/// Counts DynamoDB requests by operation (the `X-Amz-Target` header), retries included.
#[derive(Debug, Clone, Default)]
pub struct RequestCounter(Arc<Mutex<BTreeMap<String, usize>>>);

impl RequestCounter {
    pub fn take(&self) -> BTreeMap<String, usize> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
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
        let op = context
            .request()
            .headers()
            .get("x-amz-target")
            .map(|t| t.rsplit('.').next().unwrap_or(t).to_string())
            .unwrap_or_else(|| "unknown".into());
        *self.0.lock().unwrap().entry(op).or_default() += 1;
        Ok(())
    }
}

/// Like [`fresh_table`], with every request of the returned store counted.
pub async fn counted_table() -> (DynamoStore, RequestCounter) {
    let plain = fresh_table().await;
    let counter = RequestCounter::default();
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let dynamo_config = aws_sdk_dynamodb::config::Builder::from(&config).interceptor(counter.clone()).build();
    (DynamoStore::new(aws_sdk_dynamodb::Client::from_conf(dynamo_config), plain.table().to_string()), counter)
}
