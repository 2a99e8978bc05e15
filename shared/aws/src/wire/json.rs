//! DynamoDB's JSON protocol (`application/x-amz-json-1.0`) for the SDK's own types: the
//! store builds `TransactWriteItem`s and reads `AttributeValue` maps exactly as before, and
//! only the bytes on the wire are made here.
//!
//! The shapes are those of the DynamoDB API reference (`AttributeValue`: one of `S`, `N`,
//! `B`, `BOOL`, `NULL`, `M`, `L`, `SS`, `NS`, `BS`; blobs in base64).

use std::collections::HashMap;
use std::fmt;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue as AV, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem, Update};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::de::{self, MapAccess, Visitor};
use serde::ser::{Error as _, SerializeMap, SerializeSeq};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub(crate) type Item = HashMap<String, AV>;

/// An attribute value as DynamoDB JSON.
pub(crate) struct Wav<'a>(pub &'a AV);

/// A map of attribute values (an item, a key, expression values) as DynamoDB JSON.
pub(crate) struct Witem<'a>(pub &'a Item);

impl Serialize for Witem<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        ser.collect_map(self.0.iter().map(|(k, v)| (k, Wav(v))))
    }
}

struct Blobs<'a>(&'a [Blob]);

impl Serialize for Blobs<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut seq = ser.serialize_seq(Some(self.0.len()))?;
        for b in self.0 {
            seq.serialize_element(&B64.encode(b.as_ref()))?;
        }
        seq.end()
    }
}

impl Serialize for Wav<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let mut map = ser.serialize_map(Some(1))?;
        match self.0 {
            AV::S(v) => map.serialize_entry("S", v)?,
            AV::N(v) => map.serialize_entry("N", v)?,
            AV::Bool(v) => map.serialize_entry("BOOL", v)?,
            AV::Null(_) => map.serialize_entry("NULL", &true)?,
            AV::B(v) => map.serialize_entry("B", &B64.encode(v.as_ref()))?,
            AV::M(v) => map.serialize_entry("M", &Witem(v))?,
            AV::L(v) => map.serialize_entry("L", &v.iter().map(Wav).collect::<Vec<_>>())?,
            AV::Ss(v) => map.serialize_entry("SS", v)?,
            AV::Ns(v) => map.serialize_entry("NS", v)?,
            AV::Bs(v) => map.serialize_entry("BS", &Blobs(v))?,
            other => return Err(S::Error::custom(format!("an attribute value of unknown type: {other:?}"))),
        }
        map.end()
    }
}

/// One operation of a transaction, in the request's own field names.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Op<'a> {
    table_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    item: Option<Witem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<Witem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    update_expression: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    condition_expression: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expression_attribute_names: Option<&'a HashMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expression_attribute_values: Option<Witem<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    return_values_on_condition_check_failure: Option<&'a str>,
}

#[derive(Serialize)]
enum TxOp<'a> {
    Put(Op<'a>),
    Update(Op<'a>),
    Delete(Op<'a>),
    ConditionCheck(Op<'a>),
}

/// The fields every operation shares, read from any of the SDK's four operation types
/// (they share these getters, not a trait); `$condition` because `ConditionCheck`'s is
/// required, the others' optional.
macro_rules! shared_fields {
    ($x:expr, $condition:expr) => {
        Op {
            table_name: $x.table_name(),
            item: None,
            key: None,
            update_expression: None,
            condition_expression: $condition,
            expression_attribute_names: $x.expression_attribute_names(),
            expression_attribute_values: $x.expression_attribute_values().map(Witem),
            return_values_on_condition_check_failure: $x
                .return_values_on_condition_check_failure()
                .map(ReturnValuesOnConditionCheckFailure::as_str),
        }
    };
}

struct Wtx<'a>(&'a TransactWriteItem);

impl Serialize for Wtx<'_> {
    fn serialize<S: Serializer>(&self, ser: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let tx = if let Some(p) = t.put() {
            TxOp::Put(Op { item: Some(Witem(p.item())), ..shared_fields!(p, p.condition_expression()) })
        } else if let Some(u) = t.update() {
            TxOp::Update(Op {
                key: Some(Witem(u.key())),
                update_expression: Some(u.update_expression()),
                ..shared_fields!(u, u.condition_expression())
            })
        } else if let Some(d) = t.delete() {
            TxOp::Delete(Op { key: Some(Witem(d.key())), ..shared_fields!(d, d.condition_expression()) })
        } else if let Some(c) = t.condition_check() {
            TxOp::ConditionCheck(Op { key: Some(Witem(c.key())), ..shared_fields!(c, Some(c.condition_expression())) })
        } else {
            return Err(S::Error::custom("a transaction item without an operation"));
        };
        tx.serialize(ser)
    }
}

/// The body of a `TransactWriteItems` request.
pub(crate) fn transact_write_items(items: &[TransactWriteItem], client_request_token: &str) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request<'a> {
        transact_items: Vec<Wtx<'a>>,
        client_request_token: &'a str,
    }
    // A create's transaction is ~6.5 KB: one allocation instead of doubling from 128 bytes
    // (realloc and its copies were 5 % of a warm create's CPU).
    let mut body = Vec::with_capacity(TRANSACTION_BODY_CAPACITY);
    serde_json::to_writer(&mut body, &Request { transact_items: items.iter().map(Wtx).collect(), client_request_token })?;
    Ok(body)
}

const TRANSACTION_BODY_CAPACITY: usize = 16 * 1024;

/// The body of a `PutItem` request: the same fields as a transaction's `Put`.
pub(crate) fn put_item(put: &Put) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&Op { item: Some(Witem(put.item())), ..shared_fields!(put, put.condition_expression()) })
}

/// A single-item write's body: its operation, and which attributes it wants back
/// (`ReturnValues`), if any.
fn returning(op: Op<'_>, return_values: Option<&str>) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request<'a> {
        #[serde(flatten)]
        op: Op<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        return_values: Option<&'a str>,
    }
    serde_json::to_vec(&Request { op, return_values })
}

/// The body of an `UpdateItem` request: a transaction's `Update`, and whether the updated
/// attributes are wanted back (`ReturnValues: UPDATED_NEW`).
pub(crate) fn update_item(update: &Update, return_new: bool) -> Result<Vec<u8>, serde_json::Error> {
    let o = Op {
        key: Some(Witem(update.key())),
        update_expression: Some(update.update_expression()),
        ..shared_fields!(update, update.condition_expression())
    };
    returning(o, return_new.then_some("UPDATED_NEW"))
}

/// The body of a `DeleteItem` request: a transaction's `Delete`, and whether the deleted
/// item's attributes are wanted back (`ReturnValues: ALL_OLD`).
pub(crate) fn delete_item(delete: &Delete, return_old: bool) -> Result<Vec<u8>, serde_json::Error> {
    let o = Op { key: Some(Witem(delete.key())), ..shared_fields!(delete, delete.condition_expression()) };
    returning(o, return_old.then_some("ALL_OLD"))
}

/// The attributes an `UpdateItem` or `DeleteItem` answers with when it asked for some, if
/// there were any.
pub(crate) fn attributes_output(body: &[u8]) -> Result<Option<Item>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Output {
        #[serde(rename = "Attributes")]
        attributes: Option<Ritem>,
    }
    Ok(serde_json::from_slice::<Output>(body)?.attributes.map(|i| i.0).filter(|i| !i.is_empty()))
}

/// The body of a consistent `GetItem` request.
pub(crate) fn get_item(table: &str, key: &Item) -> Result<Vec<u8>, serde_json::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Request<'a> {
        table_name: &'a str,
        key: Witem<'a>,
        consistent_read: bool,
    }
    serde_json::to_vec(&Request { table_name: table, key: Witem(key), consistent_read: true })
}

/// An attribute value read from DynamoDB JSON.
pub(crate) struct Rav(pub AV);

impl<'de> Deserialize<'de> for Rav {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        de.deserialize_map(RavVisitor)
    }
}

fn blob<E: de::Error>(text: &str) -> Result<Blob, E> {
    B64.decode(text).map(Blob::new).map_err(|e| E::custom(format!("a binary attribute that is not base64: {e}")))
}

struct RavVisitor;

impl<'de> Visitor<'de> for RavVisitor {
    type Value = Rav;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a DynamoDB attribute value ({\"S\": …}, {\"N\": …}, …)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Rav, A::Error> {
        let tag: String = map.next_key()?.ok_or_else(|| de::Error::custom("an empty attribute value"))?;
        let value = match tag.as_str() {
            "S" => AV::S(map.next_value()?),
            "N" => AV::N(map.next_value()?),
            "BOOL" => AV::Bool(map.next_value()?),
            "NULL" => AV::Null(map.next_value()?),
            "B" => AV::B(blob(&map.next_value::<String>()?)?),
            "M" => AV::M(map.next_value::<Ritem>()?.0),
            "L" => AV::L(map.next_value::<Vec<Rav>>()?.into_iter().map(|v| v.0).collect()),
            "SS" => AV::Ss(map.next_value()?),
            "NS" => AV::Ns(map.next_value()?),
            "BS" => AV::Bs(map.next_value::<Vec<String>>()?.iter().map(|t| blob(t)).collect::<Result<_, _>>()?),
            other => return Err(de::Error::custom(format!("an attribute value of unknown type {other:?}"))),
        };
        if map.next_key::<de::IgnoredAny>()?.is_some() {
            return Err(de::Error::custom("an attribute value with more than one type"));
        }
        Ok(Rav(value))
    }
}

/// An item read from DynamoDB JSON.
pub(crate) struct Ritem(pub Item);

impl<'de> Deserialize<'de> for Ritem {
    fn deserialize<D: Deserializer<'de>>(de: D) -> Result<Self, D::Error> {
        let raw = HashMap::<String, Rav>::deserialize(de)?;
        Ok(Ritem(raw.into_iter().map(|(k, v)| (k, v.0)).collect()))
    }
}

/// The answer to a `GetItem`: the item, if there is one.
pub(crate) fn get_item_output(body: &[u8]) -> Result<Option<Item>, serde_json::Error> {
    #[derive(Deserialize)]
    struct Output {
        #[serde(rename = "Item")]
        item: Option<Ritem>,
    }
    Ok(serde_json::from_slice::<Output>(body)?.item.map(|i| i.0))
}

/// An error answer: its type (the part of `__type` after `#`), message and, for a cancelled
/// transaction, each item's cancellation code in request order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceError {
    pub code: String,
    pub message: String,
    pub cancellation_codes: Vec<Option<String>>,
}

impl ServiceError {
    pub(crate) fn parse(body: &[u8]) -> Option<ServiceError> {
        #[derive(Deserialize)]
        struct Reason {
            #[serde(rename = "Code")]
            code: Option<String>,
        }
        #[derive(Deserialize)]
        struct Raw {
            #[serde(rename = "__type")]
            kind: Option<String>,
            #[serde(alias = "Message")]
            message: Option<String>,
            #[serde(rename = "CancellationReasons", default)]
            reasons: Vec<Reason>,
        }
        let raw: Raw = serde_json::from_slice(body).ok()?;
        let kind = raw.kind?;
        Some(ServiceError {
            code: kind.rsplit('#').next().unwrap_or(&kind).to_string(),
            message: raw.message.unwrap_or_default(),
            cancellation_codes: raw.reasons.into_iter().map(|r| r.code).collect(),
        })
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, if self.message.is_empty() { "no message" } else { &self.message })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::{ConditionCheck, Update};
    use serde_json::{Value, json};

    fn every_kind() -> Item {
        let nested: Item = [("inner".to_string(), AV::N("-1.5".into()))].into();
        [
            ("s", AV::S("a \"quoted\" ü".into())),
            ("n", AV::N("12".into())),
            ("t", AV::Bool(true)),
            ("z", AV::Null(true)),
            ("b", AV::B(Blob::new(vec![0, 1, 254, 255]))),
            ("m", AV::M(nested)),
            ("l", AV::L(vec![AV::S("x".into()), AV::N("2".into())])),
            ("ss", AV::Ss(vec!["a".into(), "b".into()])),
            ("ns", AV::Ns(vec!["1".into(), "2".into()])),
            ("bs", AV::Bs(vec![Blob::new(b"hi".to_vec())])),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    #[test]
    fn every_attribute_type_is_written_as_the_api_reference_shows_it() {
        let written: Value = serde_json::to_value(Witem(&every_kind())).unwrap();
        assert_eq!(
            written,
            json!({
                "s": {"S": "a \"quoted\" ü"}, "n": {"N": "12"}, "t": {"BOOL": true}, "z": {"NULL": true},
                "b": {"B": "AAH+/w=="}, "m": {"M": {"inner": {"N": "-1.5"}}},
                "l": {"L": [{"S": "x"}, {"N": "2"}]}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2"]},
                "bs": {"BS": ["aGk="]}
            })
        );
    }

    #[test]
    fn every_attribute_type_reads_back_as_written() {
        let item = every_kind();
        let text = serde_json::to_vec(&json!({"Item": serde_json::to_value(Witem(&item)).unwrap()})).unwrap();
        assert_eq!(get_item_output(&text).unwrap(), Some(item));
        assert_eq!(get_item_output(b"{}").unwrap(), None);
    }

    #[test]
    fn malformed_attribute_values_are_refused() {
        for bad in
            [r#"{"Item":{"a":{}}}"#, r#"{"Item":{"a":{"X":"1"}}}"#, r#"{"Item":{"a":{"S":"1","N":"1"}}}"#, r#"{"Item":{"a":{"B":"***"}}}"#]
        {
            assert!(get_item_output(bad.as_bytes()).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_transaction_names_each_operation_and_its_fields() {
        let key: Item = [("PK".to_string(), AV::S("k".into())), ("SK".to_string(), AV::S("s".into()))].into();
        let items = vec![
            TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name("t")
                        .set_item(Some(key.clone()))
                        .condition_expression("attribute_not_exists(PK)")
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder()
                .update(
                    Update::builder()
                        .table_name("t")
                        .set_key(Some(key.clone()))
                        .update_expression("SET #a = :v")
                        .condition_expression("#a <> :v")
                        .expression_attribute_names("#a", "a")
                        .expression_attribute_values(":v", AV::N("1".into()))
                        .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::None)
                        .build()
                        .unwrap(),
                )
                .build(),
            TransactWriteItem::builder().delete(Delete::builder().table_name("t").set_key(Some(key.clone())).build().unwrap()).build(),
            TransactWriteItem::builder()
                .condition_check(
                    ConditionCheck::builder()
                        .table_name("t")
                        .set_key(Some(key))
                        .condition_expression("attribute_exists(PK)")
                        .build()
                        .unwrap(),
                )
                .build(),
        ];
        let body: Value = serde_json::from_slice(&transact_write_items(&items, "tx_1").unwrap()).unwrap();
        let k = json!({"PK": {"S": "k"}, "SK": {"S": "s"}});
        assert_eq!(
            body,
            json!({
                "TransactItems": [
                    {"Put": {"TableName": "t", "Item": k, "ConditionExpression": "attribute_not_exists(PK)"}},
                    {"Update": {"TableName": "t", "Key": k, "UpdateExpression": "SET #a = :v", "ConditionExpression": "#a <> :v",
                        "ExpressionAttributeNames": {"#a": "a"}, "ExpressionAttributeValues": {":v": {"N": "1"}},
                        "ReturnValuesOnConditionCheckFailure": "NONE"}},
                    {"Delete": {"TableName": "t", "Key": k}},
                    {"ConditionCheck": {"TableName": "t", "Key": k, "ConditionExpression": "attribute_exists(PK)"}}
                ],
                "ClientRequestToken": "tx_1"
            })
        );
        assert!(transact_write_items(&[TransactWriteItem::builder().build()], "tx_2").is_err());
    }

    #[test]
    fn single_item_writes_use_the_transaction_fields_at_the_top_level() {
        let key: Item = [("PK".to_string(), AV::S("k".into())), ("SK".to_string(), AV::S("s".into()))].into();
        let put = Put::builder()
            .table_name("t")
            .set_item(Some(key.clone()))
            .condition_expression("#o = :o")
            .expression_attribute_names("#o", "owner")
            .expression_attribute_values(":o", AV::S("me".into()))
            .build()
            .unwrap();
        let k = json!({"PK": {"S": "k"}, "SK": {"S": "s"}});
        assert_eq!(
            serde_json::from_slice::<Value>(&put_item(&put).unwrap()).unwrap(),
            json!({"TableName": "t", "Item": k, "ConditionExpression": "#o = :o",
                "ExpressionAttributeNames": {"#o": "owner"}, "ExpressionAttributeValues": {":o": {"S": "me"}}})
        );
        let update = Update::builder()
            .table_name("t")
            .set_key(Some(key.clone()))
            .update_expression("ADD #n :one")
            .condition_expression("attribute_not_exists(#n) OR #n < :max")
            .expression_attribute_names("#n", "n")
            .expression_attribute_values(":one", AV::N("1".into()))
            .expression_attribute_values(":max", AV::N("10".into()))
            .build()
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&update_item(&update, false).unwrap()).unwrap(),
            json!({"TableName": "t", "Key": k, "UpdateExpression": "ADD #n :one",
                "ConditionExpression": "attribute_not_exists(#n) OR #n < :max", "ExpressionAttributeNames": {"#n": "n"},
                "ExpressionAttributeValues": {":one": {"N": "1"}, ":max": {"N": "10"}}})
        );
        let delete = Delete::builder().table_name("t").set_key(Some(key)).build().unwrap();
        assert_eq!(
            serde_json::from_slice::<Value>(&delete_item(&delete, true).unwrap()).unwrap(),
            json!({"TableName": "t", "Key": k, "ReturnValues": "ALL_OLD"})
        );
        assert_eq!(serde_json::from_slice::<Value>(&delete_item(&delete, false).unwrap()).unwrap(), json!({"TableName": "t", "Key": k}));
        assert_eq!(attributes_output(br#"{"Attributes":{"PK":{"S":"k"}}}"#).unwrap().map(|i| i.len()), Some(1));
        assert_eq!(attributes_output(b"{}").unwrap(), None);
    }

    #[test]
    fn error_answers_give_their_type_message_and_cancellation_codes() {
        let cancelled = br#"{"__type":"com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
            "Message":"Transaction cancelled, please refer cancellation reasons for specific reasons [None, ConditionalCheckFailed]",
            "CancellationReasons":[{"Code":"None"},{"Code":"ConditionalCheckFailed","Message":"The conditional request failed"}]}"#;
        let e = ServiceError::parse(cancelled).unwrap();
        assert_eq!(e.code, "TransactionCanceledException");
        assert_eq!(e.cancellation_codes, vec![Some("None".into()), Some("ConditionalCheckFailed".into())]);
        let throttled = br#"{"__type":"com.amazon.coral.availability#ThrottlingException","message":"Rate exceeded"}"#;
        assert_eq!(ServiceError::parse(throttled).unwrap().to_string(), "ThrottlingException: Rate exceeded");
        assert_eq!(ServiceError::parse(b"<html>bad gateway</html>"), None);
    }
}
