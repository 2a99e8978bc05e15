//! The event record every state change writes with itself.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event appended to its subject's history (a session's, a mandate's) in the same write
/// as the change it reports: the outbox webhooks are fed from. `session_id` names the
/// subject (a session or mandate id).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub event_type: String,
    pub created_at: DateTime<Utc>,
    pub session_id: String,
    pub data: Value,
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
    pub fn to_api(&self) -> Value {
        serde_json::json!({
            "id": self.id,
            "object": "event",
            "type": self.event_type,
            "created_at": self.created_at,
            "data": self.data,
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn events_of_one_write_are_strictly_ordered() {
        let t = Utc.with_ymd_and_hms(2026, 12, 2, 4, 0, 0).unwrap();
        let ev = |id: &str| EventRecord { id: id.into(), event_type: "x".into(), created_at: t, session_id: "s".into(), data: Value::Null };
        let out = in_write_order(vec![ev("a"), ev("b"), ev("c")]);
        let times: Vec<_> = out.iter().map(|e| e.created_at.timestamp_millis() - t.timestamp_millis()).collect();
        assert_eq!(times, [0, 1, 2]);
        assert_eq!(out.iter().map(|e| e.id.as_str()).collect::<String>(), "abc");
        assert!(in_write_order(Vec::new()).is_empty());
    }
}
