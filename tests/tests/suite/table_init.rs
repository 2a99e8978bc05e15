//! `paysession-admin init` (`paysession_aws::table::ensure_table`) against DynamoDB Local:
//! it creates a missing table, completes one made by an earlier release, and refuses one
//! that is not paysession's.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType, ScalarAttributeType,
    StreamSpecification, StreamViewType,
};
use paysession_aws::table::{Ensured, ensure_table};

async fn client() -> aws_sdk_dynamodb::Client {
    let endpoint = std::env::var("AWS_ENDPOINT_URL_DYNAMODB").expect("run via scripts/test: it starts DynamoDB Local");
    assert!(endpoint.starts_with("http://127.0.0.1:"), "tests only use a local DynamoDB, not {endpoint}");
    aws_sdk_dynamodb::Client::new(&paysession_aws::sdk_config().await.unwrap())
}

async fn index_names(client: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let found = client.describe_table().table_name(table).send().await.unwrap().table.unwrap();
    let mut names: Vec<String> = found.global_secondary_indexes().iter().filter_map(|g| g.index_name().map(str::to_string)).collect();
    names.sort();
    names
}

#[tokio::test]
async fn init_creates_the_table_then_finds_it_complete() {
    let client = client().await;
    let table = paysession_app::ids::new_id("test");
    let first = ensure_table(&client, &table).await.unwrap();
    assert!(first.created && first.added.is_empty(), "{first:?}");
    assert_eq!(index_names(&client, &table).await, ["GSI1", "GSI2", "GSI3", "GSI4"]);
    let again = ensure_table(&client, &table).await.unwrap();
    assert_eq!((again.created, again.added), (false, Vec::<String>::new()));
    client.delete_table().table_name(&table).send().await.unwrap();
}

#[tokio::test]
async fn init_adds_the_index_a_table_of_an_earlier_release_lacks() {
    let client = client().await;
    let table = paysession_app::ids::new_id("test");
    // The table as the release before GSI3 (the virtual-account index) and GSI4 (the local
    // sweeps' due index) made it.
    let key = |name: &str, kind| KeySchemaElement::builder().attribute_name(name).key_type(kind).build().unwrap();
    let attribute =
        |name: &str| AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build().unwrap();
    let index = |n: &str| {
        GlobalSecondaryIndex::builder()
            .index_name(format!("GSI{n}"))
            .key_schema(key(&format!("GSI{n}PK"), KeyType::Hash))
            .key_schema(key(&format!("GSI{n}SK"), KeyType::Range))
            .projection(Projection::builder().projection_type(ProjectionType::All).build())
            .build()
            .unwrap()
    };
    let mut old = client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key("PK", KeyType::Hash))
        .key_schema(key("SK", KeyType::Range))
        .stream_specification(
            StreamSpecification::builder().stream_enabled(true).stream_view_type(StreamViewType::NewAndOldImages).build().unwrap(),
        )
        .global_secondary_indexes(index("1"))
        .global_secondary_indexes(index("2"));
    for a in ["PK", "SK", "GSI1PK", "GSI1SK", "GSI2PK", "GSI2SK"] {
        old = old.attribute_definitions(attribute(a));
    }
    old.send().await.unwrap();
    assert_eq!(index_names(&client, &table).await, ["GSI1", "GSI2"]);

    let Ensured { created, added, .. } = ensure_table(&client, &table).await.unwrap();
    assert_eq!((created, added), (false, vec!["GSI4".into(), "GSI3".into(), "ttl".into()]), "the old table had no TTL set either");
    assert_eq!(index_names(&client, &table).await, ["GSI1", "GSI2", "GSI3", "GSI4"]);
    client.delete_table().table_name(&table).send().await.unwrap();
}

#[tokio::test]
async fn init_refuses_a_table_keyed_otherwise() {
    let client = client().await;
    let table = paysession_app::ids::new_id("test");
    client
        .create_table()
        .table_name(&table)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(KeySchemaElement::builder().attribute_name("id").key_type(KeyType::Hash).build().unwrap())
        .attribute_definitions(AttributeDefinition::builder().attribute_name("id").attribute_type(ScalarAttributeType::S).build().unwrap())
        .send()
        .await
        .unwrap();
    let err = ensure_table(&client, &table).await.unwrap_err();
    assert!(err.contains("not a paysession table"), "{err}");
    assert!(index_names(&client, &table).await.is_empty(), "nothing was changed");
    client.delete_table().table_name(&table).send().await.unwrap();
}
