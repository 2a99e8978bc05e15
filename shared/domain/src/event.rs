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
