//! The event record every state change writes with itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// An event appended to its subject's history (a session's, a mandate's) in the same write
/// as the change it reports: the outbox webhooks are fed from. `session_id` names the
/// subject (a session or mandate id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub created_at: DateTime<Utc>,
    pub session_id: String,
    pub data: EventData,
}

/// An event's `data`, `{"object": …, "previous_status"?: …}`, held as the JSON text it is
/// stored, signed and served as. Written once from the subject's API view: building it as a
/// `Value` tree, cloning it into the record and serialising it again for the row and for
/// each webhook body was a fifth of a local create's JSON work.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventData(Box<RawValue>);

#[derive(Serialize)]
struct DataFields<'a, T: Serialize + ?Sized> {
    object: &'a T,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous_status: Option<&'a str>,
}

impl EventData {
    /// `{"object": object}`, with `previous_status` when the event reports a transition.
    pub fn of<T: Serialize + ?Sized>(object: &T, previous_status: Option<&str>) -> EventData {
        // Not `RawValue::from_string`, which parses the text it was just given again.
        EventData(serde_json::value::to_raw_value(&DataFields { object, previous_status }).expect("an API view serialises"))
    }

    /// The JSON text.
    pub fn get(&self) -> &str {
        self.0.get()
    }

    /// Parsed, for a caller that reads a field (tests, mostly).
    pub fn to_value(&self) -> Value {
        serde_json::from_str(self.get()).expect("event data is valid JSON")
    }
}

impl PartialEq for EventData {
    fn eq(&self, other: &Self) -> bool {
        self.get() == other.get()
    }
}

/// Events written together get `created_at` 1 ms apart, in the order they were emitted,
/// from the first one's time: stores index events by the millisecond, so "order by
/// `created_at`" then reproduces the order of one transaction's events.
pub fn in_write_order(mut events: Vec<EventRecord>) -> Vec<EventRecord> {
    if let Some(first) = events.first().map(|e| e.created_at) {
        for (i, e) in events.iter_mut().enumerate() {
            e.created_at = first + chrono::Duration::milliseconds(i as i64);
        }
    }
    events
}

impl EventRecord {
    /// The public envelope `{id, object, type, created_at, data}`.
    pub fn to_api(&self) -> ApiEvent<'_> {
        ApiEvent { id: &self.id, object: "event", event_type: &self.event_type, created_at: self.created_at, data: &self.data }
    }
}

/// An event as the API and webhooks show it, serialised straight from the record.
#[derive(Debug, Serialize)]
pub struct ApiEvent<'a> {
    id: &'a str,
    object: &'static str,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[serde(serialize_with = "crate::rfc3339::serialize")]
    created_at: DateTime<Utc>,
    data: &'a EventData,
}

impl ApiEvent<'_> {
    /// The envelope as JSON text (a webhook body, an EventBridge detail).
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("an event serialises")
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn events_of_one_write_are_strictly_ordered() {
        let t = Utc.with_ymd_and_hms(2026, 12, 2, 4, 0, 0).unwrap();
        let ev = |id: &str| EventRecord {
            id: id.into(),
            event_type: "x".into(),
            created_at: t,
            session_id: "s".into(),
            data: EventData::of(&Value::Null, None),
        };
        let out = in_write_order(vec![ev("a"), ev("b"), ev("c")]);
        let times: Vec<_> = out.iter().map(|e| e.created_at.timestamp_millis() - t.timestamp_millis()).collect();
        assert_eq!(times, [0, 1, 2]);
        assert_eq!(out.iter().map(|e| e.id.as_str()).collect::<String>(), "abc");
        assert!(in_write_order(Vec::new()).is_empty());
    }
}

/// Hex digits of randomness after an event id's subject.
pub const EVENT_RANDOM_LEN: usize = 16;

/// The id of an event of `subject_id` (a session, refund, mandate or payment method):
/// `evt_`, the subject's id, `_`, [`EVENT_RANDOM_LEN`] hex digits of `random`. It names the
/// partition the event is stored in, so a read by id needs no index of its own.
pub fn subject_event_id(subject_id: &str, random: &str) -> String {
    debug_assert_eq!(random.len(), EVENT_RANDOM_LEN);
    format!("evt_{subject_id}_{random}")
}

/// The subject an event id of [`subject_event_id`]'s shape names; `None` for the random ids
/// of events written before (`evt_` + 32 hex digits), or anything else.
pub fn event_subject(id: &str) -> Option<&str> {
    let (subject, random) = id.strip_prefix("evt_")?.rsplit_once('_')?;
    let random_ok = random.len() == EVENT_RANDOM_LEN && random.bytes().all(|b| b.is_ascii_hexdigit());
    let subject_ok = ["ps_", "re_", "md_", "pm_"].iter().any(|p| subject.len() > p.len() && subject.starts_with(p));
    (random_ok && subject_ok).then_some(subject)
}

#[cfg(test)]
mod id_tests {
    use super::*;

    #[test]
    fn an_event_id_names_its_subject() {
        let id = subject_event_id("ps_01m913v5ywbzee2gg0pkbcxkq46an8", "0123456789abcdef");
        assert_eq!(id, "evt_ps_01m913v5ywbzee2gg0pkbcxkq46an8_0123456789abcdef");
        assert_eq!(event_subject(&id), Some("ps_01m913v5ywbzee2gg0pkbcxkq46an8"));
        assert_eq!(event_subject("evt_md_1_0123456789abcdef"), Some("md_1"));
        // The random ids of before, and malformed ones.
        assert_eq!(event_subject("evt_019af3c2d1e0a1b2c3d4e5f6a7b8c9d0e1f2"), None);
        assert_eq!(event_subject("evt_ps__0123456789abcdef"), None);
        assert_eq!(event_subject("evt_xx_1_0123456789abcdef"), None);
        assert_eq!(event_subject("evt_ps_1_0123456789abcdeg"), None);
        assert_eq!(event_subject("ps_1_0123456789abcdef"), None);
    }
}
