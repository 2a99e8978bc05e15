//! DynamoDB Local for tests. `scripts/test` starts it and exports its endpoint; tests never
//! touch a non-loopback endpoint.

use paysession_aws::DynamoStore;

/// A store on a new, empty table of the DynamoDB Local that `scripts/test` started.
pub async fn fresh_table() -> DynamoStore {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").unwrap_or_else(|_| {
        panic!("DynamoDB Local is not running: run the suite with scripts/test (it starts DynamoDB Local and sets AWS_ENDPOINT_URL_DYNAMODB)")
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
