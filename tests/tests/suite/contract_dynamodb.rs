//! The storage contract on the DynamoDB adapter, against Amazon's DynamoDB Local.

use paysession_tests::contract::Stores;

async fn fresh() -> Stores {
    Stores::from(paysession_tests::dynamo::fresh_table().await)
}

paysession_tests::contract_suite!(fresh());

/// A session written before sharding (its GSI1 key the unsharded `MER#m#SESSIONS`) is still
/// listed, in order with the sharded ones.
#[tokio::test]
async fn sessions_written_before_sharding_are_still_listed() {
    use paysession_app::ports::{SessionQuery, SessionStore as _};
    use paysession_aws::keys::{GSI1PK, PK, SESSION_SK, SK, session_pk};
    let store = paysession_tests::dynamo::fresh_table().await;
    let stores = Stores::from(store.clone());
    let t = chrono::Utc::now();
    let old = paysession_tests::contract::session("mer_l", "cus_1", "old", t);
    let new = paysession_tests::contract::session("mer_l", "cus_1", "new", t + chrono::Duration::seconds(1));
    paysession_tests::contract::insert(&stores, &old).await.unwrap();
    paysession_tests::contract::insert(&stores, &new).await.unwrap();
    let av = aws_sdk_dynamodb::types::AttributeValue::S;
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key(PK, av(session_pk("mer_l", &old.id)))
        .key(SK, av(SESSION_SK.into()))
        .update_expression("SET #g = :legacy")
        .expression_attribute_names("#g", GSI1PK)
        .expression_attribute_values(":legacy", av("MER#mer_l#SESSIONS".into()))
        .send()
        .await
        .unwrap();
    let q = SessionQuery { limit: 10, now: t, ..Default::default() };
    let listed: Vec<String> = store.list_sessions("mer_l", &q).await.unwrap().items.into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![new.id, old.id]);
}
