//! The clock is a port: rules receive `now`, adapters decide where it comes from.

use chrono::{DateTime, Utc};

pub trait Clock: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
}
