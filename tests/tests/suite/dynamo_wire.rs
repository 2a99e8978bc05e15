//! The store's SDK-free DynamoDB calls (`paysession_aws::wire`) against a real HTTP
//! receiver standing in for DynamoDB: what they send, how they are signed (checked by
//! botocore), and which failures they retry. Against DynamoDB Local they run in every
//! store test (`dynamo::fresh_table` builds the store as the functions do).

use chrono::{TimeZone, Utc};
use paysession_app::ports::{MerchantStore, SessionStore, StoreError};
use paysession_aws::{DynamoStore, keys};
use paysession_tests::contract::{client, merchant};
use paysession_tests::receiver::{Receiver, verify_sigv4_independently};
use serde_json::{Value, json};

const CREDENTIALS: [&str; 3] = ["AKIDWIRETEST", "wire/secret+key", "session-token-of-the-test"];
const REGION: &str = "eu-central-1";

async fn store_at(receiver: &Receiver) -> DynamoStore {
    use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region, SharedCredentialsProvider};
    let [key, secret, token] = CREDENTIALS;
    let config = paysession_aws::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(key, secret, Some(token.into()), None, "test")))
        .endpoint_url(base(receiver))
        .build();
    DynamoStore::from_config(&config, "wire-table").await.unwrap()
}

fn base(receiver: &Receiver) -> String {
    format!("http://{}", receiver.addr)
}

#[tokio::test]
async fn requests_are_dynamodb_json_signed_as_botocore_signs_them() {
    let receiver = Receiver::start().await;
    receiver.script_answers(&[(200, "{}"), (200, "{}")]);
    let store = store_at(&receiver).await;

    assert_eq!(store.get_session("mer_1", "ps_1").await.unwrap(), None, "an answer without Item is no session");
    let at = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
    store.create_merchant(&merchant("mer_ü", at), &client("cid_1", "mer_ü")).await.unwrap();

    let got = receiver.received();
    assert_eq!(got.len(), 2);
    let targets: Vec<_> = got.iter().map(|r| r.header("x-amz-target").unwrap_or_default().to_string()).collect();
    assert_eq!(targets, ["DynamoDB_20120810.GetItem", "DynamoDB_20120810.TransactWriteItems"]);
    for r in &got {
        assert_eq!(r.header("content-type"), Some("application/x-amz-json-1.0"));
        assert_eq!(r.header("x-amz-security-token"), Some(CREDENTIALS[2]));
        let auth = r.header("authorization").unwrap();
        assert!(auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"), "{auth}");
    }
    let get: Value = got[0].json();
    let key = json!({"PK": {"S": keys::session_pk("mer_1", "ps_1")}, "SK": {"S": keys::SESSION_SK}});
    assert_eq!(get, json!({"TableName": "wire-table", "Key": key, "ConsistentRead": true}));
    let tx: Value = got[1].json();
    let puts: Vec<&Value> = tx["TransactItems"].as_array().unwrap().iter().map(|t| &t["Put"]).collect();
    assert_eq!(puts.len(), 2);
    assert!(puts.iter().all(|p| p["TableName"] == "wire-table" && p["ConditionExpression"] == "attribute_not_exists(PK)"));
    assert_eq!(puts[0]["Item"]["PK"], json!({"S": keys::merchant_pk("mer_ü")}));
    assert!(tx["ClientRequestToken"].as_str().is_some_and(|t| t.starts_with("tx_") && t.len() <= 36));

    let verdicts = verify_sigv4_independently(&base(&receiver), REGION, "dynamodb", CREDENTIALS, &got.iter().collect::<Vec<_>>());
    assert_eq!(verdicts, vec![Value::Bool(true); 2]);
}

#[tokio::test]
async fn a_tampered_request_fails_botocores_check() {
    let receiver = Receiver::start().await;
    receiver.script_answers(&[(200, "{}")]);
    let store = store_at(&receiver).await;
    store.get_session("mer_1", "ps_1").await.unwrap();
    let mut got = receiver.received();
    got[0].body = got[0].body.replace("ps_1", "ps_2");
    let verdicts = verify_sigv4_independently(&base(&receiver), REGION, "dynamodb", CREDENTIALS, &[&got[0]]);
    assert!(verdicts[0].as_str().is_some_and(|v| v.contains("botocore's")), "{verdicts:?}");
}

const SERVER_ERROR: &str = r#"{"__type":"com.amazonaws.dynamodb.v20120810#InternalServerError","message":"Internal server error"}"#;
const THROTTLED: &str =
    r#"{"__type":"com.amazonaws.dynamodb.v20120810#ThrottlingException","message":"Rate of requests exceeds the allowed throughput."}"#;

#[tokio::test]
async fn server_errors_and_throttling_are_retried_with_the_transaction_token_kept() {
    let receiver = Receiver::start().await;
    receiver.script_answers(&[(500, SERVER_ERROR), (400, THROTTLED), (200, "{}")]);
    let store = store_at(&receiver).await;
    let at = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
    store.create_merchant(&merchant("mer_1", at), &client("cid_1", "mer_1")).await.unwrap();
    let got = receiver.received();
    assert_eq!(got.len(), 3, "two retries, then the answer");
    let tokens: Vec<Value> = got.iter().map(|r| r.json()["ClientRequestToken"].clone()).collect();
    assert!(tokens.iter().all(|t| *t == tokens[0]), "one token across the attempts: {tokens:?}");
    let bodies: Vec<&str> = got.iter().map(|r| r.body.as_str()).collect();
    assert!(bodies.iter().all(|b| *b == bodies[0]), "each attempt sends the same transaction");
}

#[tokio::test]
async fn a_second_transaction_carries_a_new_token_and_failures_are_reported() {
    let receiver = Receiver::start().await;
    let cancelled = r#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException","Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [ConditionalCheckFailed, None]","CancellationReasons":[{"Code":"ConditionalCheckFailed","Message":"The conditional request failed"},{"Code":"None"}]}"#;
    let invalid = r#"{"__type":"com.amazon.coral.validate#ValidationException","message":"One or more parameter values were invalid"}"#;
    receiver.script_answers(&[(400, cancelled), (400, invalid), (500, SERVER_ERROR), (500, SERVER_ERROR), (500, SERVER_ERROR)]);
    let store = store_at(&receiver).await;
    let at = Utc.with_ymd_and_hms(2026, 12, 3, 10, 0, 0).unwrap();
    let (m, c) = (merchant("mer_1", at), client("cid_1", "mer_1"));
    let create = || store.create_merchant(&m, &c);
    assert!(matches!(create().await, Err(StoreError::AlreadyExists)), "a failed condition is the store's answer, not retried");
    let e = create().await.unwrap_err();
    assert!(e.to_string().contains("ValidationException: One or more parameter values were invalid"), "{e}");
    let e = store.get_session("mer_1", "ps_1").await.unwrap_err();
    assert!(e.to_string().contains("InternalServerError"), "after three attempts the error is reported: {e}");
    let got = receiver.received();
    assert_eq!(got.len(), 5, "neither a failed condition nor a validation error is retried; a server error three times");
    assert_ne!(got[0].json()["ClientRequestToken"], got[1].json()["ClientRequestToken"]);
}

#[tokio::test]
async fn answers_without_an_error_body_are_named_by_their_status() {
    let receiver = Receiver::start().await;
    receiver.script_answers(&[(403, "Forbidden by proxy"), (502, ""), (502, ""), (200, "{}")]);
    let store = store_at(&receiver).await;
    let e = store.get_session("mer_1", "ps_1").await.unwrap_err();
    assert!(e.to_string().contains("HTTP 403: Forbidden by proxy"), "a 4xx is reported, not retried: {e}");
    assert_eq!(store.get_session("mer_1", "ps_1").await.unwrap(), None, "a 502 is retried until the answer");
    assert_eq!(receiver.received().len(), 4);
}

/// A claim whose answer was lost: the put landed, the retry fails its condition on the
/// record the first try wrote, and the re-read finds the request's own claim — which is
/// the request's, not another's in flight.
#[tokio::test]
async fn a_claim_whose_answer_was_lost_is_still_the_requests() {
    use paysession_app::ports::{IdempotencyBegin, IdempotencyStore};
    let at = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
    let until = at + chrono::Duration::seconds(60);
    // The record a request of `owner` wrote, locked until `until` (1796378460000 ms).
    const MINE: &str = r#"{"Item": {"PK": {"S": "MER#mer_1#IDEM#k-1"}, "SK": {"S": "IDEM"}, "fingerprint": {"S": "fp"}, "state": {"S": "in_flight"}, "owner": {"S": "req_mine"}, "locked_until_ms": {"N": "1796378460000"}, "expires_at_ms": {"N": "1796378460000"}}}"#;
    const OTHERS: &str = r#"{"Item": {"PK": {"S": "MER#mer_1#IDEM#k-1"}, "SK": {"S": "IDEM"}, "fingerprint": {"S": "fp"}, "state": {"S": "in_flight"}, "owner": {"S": "req_other"}, "locked_until_ms": {"N": "1796378460000"}, "expires_at_ms": {"N": "1796378460000"}}}"#;
    assert_eq!(until.timestamp_millis(), 1_796_378_460_000);
    assert_eq!(keys::idempotency_pk("mer_1", "k-1"), "MER#mer_1#IDEM#k-1");
    assert_eq!(keys::IDEMPOTENCY_SK, "IDEM");
    let failed =
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;
    for (record, expected) in [(MINE, IdempotencyBegin::Started), (OTHERS, IdempotencyBegin::InFlight)] {
        let receiver = Receiver::start().await;
        receiver.script_answers(&[(200, "{}"), (500, SERVER_ERROR), (400, failed), (200, record)]);
        let store = store_at(&receiver).await;
        let begun = store.begin("mer_1", "k-1", "fp", "req_mine", at, until).await.unwrap();
        assert_eq!(begun, expected, "the stored claim: {record}");
        let ops: Vec<String> = receiver.received().iter().map(|r| r.header("x-amz-target").unwrap_or_default().to_string()).collect();
        assert_eq!(
            ops,
            ["DynamoDB_20120810.GetItem", "DynamoDB_20120810.PutItem", "DynamoDB_20120810.PutItem", "DynamoDB_20120810.GetItem"]
        );
    }
}

/// A nonce claim whose answer was lost (the put succeeded, the answer failed, the retry
/// failed its condition) is the request's own: spent by it, not replayed. A nonce another
/// claimant holds stays a replay.
#[tokio::test]
async fn a_nonce_claim_whose_answer_was_lost_is_still_the_requests() {
    use paysession_app::ports::SigningStore;
    let at = Utc.with_ymd_and_hms(2026, 12, 4, 10, 0, 0).unwrap();
    let until = at + chrono::Duration::seconds(600);
    assert_eq!(keys::nonce_pk("mer_1", "rfc9421:n-1"), "MER#mer_1#NONCE#rfc9421:n-1");
    const MINE: &str = r#"{"Item": {"PK": {"S": "MER#mer_1#NONCE#rfc9421:n-1"}, "SK": {"S": "NONCE"}, "until_ms": {"N": "1796378400000"}, "claimant": {"S": "nc_mine"}}}"#;
    const OTHERS: &str = r#"{"Item": {"PK": {"S": "MER#mer_1#NONCE#rfc9421:n-1"}, "SK": {"S": "NONCE"}, "until_ms": {"N": "1796378400000"}, "claimant": {"S": "nc_other"}}}"#;
    let failed =
        r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;
    for (stored, expected) in [(MINE, true), (OTHERS, false)] {
        let receiver = Receiver::start().await;
        receiver.script_answers(&[(500, SERVER_ERROR), (400, failed), (200, stored)]);
        let store = store_at(&receiver).await;
        let claimed = store.claim_nonce("mer_1", "rfc9421:n-1", "nc_mine", at, until).await.unwrap();
        assert_eq!(claimed, expected, "the stored nonce: {stored}");
        let received = receiver.received();
        let ops: Vec<&str> = received.iter().map(|r| r.header("x-amz-target").unwrap_or_default()).collect();
        assert_eq!(ops, ["DynamoDB_20120810.PutItem", "DynamoDB_20120810.PutItem", "DynamoDB_20120810.GetItem"]);
        assert_eq!(received[0].json()["Item"]["claimant"]["S"], "nc_mine", "the claim carries its claimant");
    }
}
