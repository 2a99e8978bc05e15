//! Refunds and the money a payment has left to give back.
//!
//! A payment's refundable amount is `amount_received − reserved`, where `reserved` is the sum
//! of its refunds that are not `failed` or `canceled`. Stores keep `refundable` itself (not
//! `reserved`) beside the payment so that the reservation is one conditional write:
//! `refundable ≥ amount AND refund_count < 20`, then `refundable −= amount` (ARCHITECTURE.md,
//! "Refunds"). Every refund transition here says how it moves those counters.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::event::EventRecord;

/// At most this many refunds per payment (409 `refund_limit_reached` for the next).
pub const MAX_REFUNDS_PER_PAYMENT: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundStatus {
    Pending,
    RequiresAction,
    Succeeded,
    Failed,
    Canceled,
}

impl RefundStatus {
    pub const ALL: [RefundStatus; 5] =
        [RefundStatus::Pending, RefundStatus::RequiresAction, RefundStatus::Succeeded, RefundStatus::Failed, RefundStatus::Canceled];

    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Pending => "pending",
            RefundStatus::RequiresAction => "requires_action",
            RefundStatus::Succeeded => "succeeded",
            RefundStatus::Failed => "failed",
            RefundStatus::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<RefundStatus> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether the refund still holds its amount out of the refundable one.
    pub fn reserves(self) -> bool {
        !matches!(self, RefundStatus::Failed | RefundStatus::Canceled)
    }

    /// The state table of API.md: `pending → succeeded | failed | requires_action`,
    /// `requires_action → succeeded | canceled | failed`, and the late failure
    /// `succeeded → failed`. Nothing leaves `failed` or `canceled`.
    pub fn can_move_to(self, to: RefundStatus) -> bool {
        use RefundStatus::*;
        matches!(
            (self, to),
            (Pending, Succeeded | Failed | RequiresAction) | (RequiresAction, Succeeded | Canceled | Failed) | (Succeeded, Failed)
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
}

impl RefundReason {
    pub const ALL: [RefundReason; 3] = [RefundReason::Duplicate, RefundReason::Fraudulent, RefundReason::RequestedByCustomer];
    pub fn as_str(self) -> &'static str {
        match self {
            RefundReason::Duplicate => "duplicate",
            RefundReason::Fraudulent => "fraudulent",
            RefundReason::RequestedByCustomer => "requested_by_customer",
        }
    }
    pub fn parse(s: &str) -> Option<RefundReason> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// How a write moves the payment's counters: both are added (negative to take away).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MoneyDelta {
    pub refundable: i64,
    pub refunded: i64,
}

impl MoneyDelta {
    pub fn is_zero(self) -> bool {
        self == MoneyDelta::default()
    }
}

/// The refund counters kept beside a payment once it has a refund. A payment without one
/// has `refundable = amount_received` and nothing refunded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentMoney {
    pub refundable: i64,
    pub refunded: i64,
    pub refund_count: u32,
}

impl PaymentMoney {
    /// The counters of a payment that has received `amount_received` and has no refund yet.
    pub fn untouched(amount_received: i64) -> PaymentMoney {
        PaymentMoney { refundable: amount_received, refunded: 0, refund_count: 0 }
    }
}

/// Why a refund was refused at create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ExceedsRefundable { refundable: i64 },
    LimitReached,
}

impl PaymentMoney {
    /// The rule the store's conditional write enforces, for a store that can run it in code
    /// (the embedded one) and for explaining a refused write.
    pub fn reserve(self, amount: i64) -> Result<PaymentMoney, Refusal> {
        if self.refund_count >= MAX_REFUNDS_PER_PAYMENT {
            return Err(Refusal::LimitReached);
        }
        if amount > self.refundable {
            return Err(Refusal::ExceedsRefundable { refundable: self.refundable.max(0) });
        }
        Ok(PaymentMoney { refundable: self.refundable - amount, refund_count: self.refund_count + 1, ..self })
    }

    pub fn apply(self, d: MoneyDelta) -> PaymentMoney {
        PaymentMoney { refundable: self.refundable + d.refundable, refunded: self.refunded + d.refunded, ..self }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refund {
    pub id: String,
    pub merchant_id: String,
    pub payment_id: String,
    pub session_id: String,
    pub amount: i64,
    pub currency: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefundReason>,
    pub status: RefundStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processor_reference: Option<String>,
    #[serde(default)]
    pub metadata: std::collections::BTreeMap<String, String>,
    /// When reconciliation next asks the processor; `None` once nothing is owed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_sync_at: Option<DateTime<Utc>>,
    /// Syncs so far: the back-off step of the next one.
    #[serde(default)]
    pub sync_attempts: u32,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "crate::rfc3339::serialize", deserialize_with = "crate::rfc3339::deserialize")]
    pub updated_at: DateTime<Utc>,
    pub version: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a {from} refund cannot become {to}")]
pub struct InvalidRefundTransition {
    pub from: &'static str,
    pub to: &'static str,
}

/// Reconciliation asks again after these waits (API.md: "1 min … 24 h"), the last repeated.
pub const SYNC_BACKOFF_SECONDS: [i64; 8] = [60, 120, 300, 900, 1800, 3600, 4 * 3600, 24 * 3600];

pub fn sync_delay(attempt: u32) -> Duration {
    let i = usize::try_from(attempt).unwrap_or(usize::MAX).min(SYNC_BACKOFF_SECONDS.len() - 1);
    Duration::seconds(SYNC_BACKOFF_SECONDS[i])
}

impl Refund {
    /// The API object.
    pub fn to_api(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "id": self.id, "object": "refund", "payment_id": self.payment_id, "session_id": self.session_id,
            "amount": self.amount, "currency": self.currency, "reason": self.reason.map(RefundReason::as_str),
            "status": self.status.as_str(), "metadata": self.metadata,
            "created_at": self.created_at, "updated_at": self.updated_at,
        });
        if let Some(f) = &self.failure_reason {
            v["failure_reason"] = f.as_str().into();
        }
        if let Some(r) = &self.processor_reference {
            v["processor_reference"] = r.as_str().into();
        }
        v
    }

    /// The counters' change when this refund moves to `to` (its amount was reserved at create).
    pub fn delta_to(&self, to: RefundStatus) -> MoneyDelta {
        let mut d = MoneyDelta::default();
        if self.status.reserves() && !to.reserves() {
            d.refundable += self.amount;
        }
        if self.status != RefundStatus::Succeeded && to == RefundStatus::Succeeded {
            d.refunded += self.amount;
        }
        if self.status == RefundStatus::Succeeded && to != RefundStatus::Succeeded {
            d.refunded -= self.amount;
        }
        d
    }

    /// The refund moved to `to` at `now`, with the counters' change. Moving to the status it
    /// has is not a transition (a replayed processor answer): `Ok(None)`.
    pub fn moved(
        &self,
        to: RefundStatus,
        failure_reason: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Option<(Refund, MoneyDelta)>, InvalidRefundTransition> {
        if to == self.status {
            return Ok(None);
        }
        if !self.status.can_move_to(to) {
            return Err(InvalidRefundTransition { from: self.status.as_str(), to: to.as_str() });
        }
        let mut next = self.clone();
        next.status = to;
        if to == RefundStatus::Failed {
            next.failure_reason = failure_reason;
        }
        next.updated_at = now;
        next.version += 1;
        Ok(Some((next, self.delta_to(to))))
    }

    /// The events of a change from `before` (none: created) to `self`.
    pub fn events(&self, before: Option<&Refund>, now: DateTime<Utc>, mut ids: impl FnMut() -> String) -> Vec<EventRecord> {
        let object = self.to_api();
        let mut types: Vec<(&str, Option<&str>)> = Vec::new();
        match before {
            None => types.push(("refund.created", None)),
            Some(b) if b.status != self.status => types.push(("refund.updated", Some(b.status.as_str()))),
            Some(_) => {}
        }
        if before.is_none_or(|b| b.status != self.status) {
            let previous = before.map(|b| b.status.as_str());
            match self.status {
                RefundStatus::Succeeded => types.push(("refund.succeeded", previous)),
                RefundStatus::Failed => types.push(("refund.failed", previous)),
                _ => {}
            }
        }
        let events = types
            .into_iter()
            .map(|(t, previous)| EventRecord {
                id: ids(),
                event_type: t.to_string(),
                created_at: now,
                session_id: self.session_id.clone(),
                data: crate::event::EventData::of(&object, previous),
            })
            .collect();
        crate::event::in_write_order(events)
    }
}

/// A valid `POST /v1/refunds` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefundRequest {
    pub payment_id: String,
    /// `None`: everything still refundable.
    pub amount: Option<i64>,
    pub reason: Option<RefundReason>,
    pub metadata: std::collections::BTreeMap<String, String>,
}

/// Parses a refund body, reporting every failing field.
pub fn parse_refund(body: &serde_json::Value) -> Result<RefundRequest, Vec<crate::FieldError>> {
    use crate::errors::{Errors, FieldCode};
    let mut e = Errors::new();
    let Some(mut r) = crate::json::ObjectReader::new(body, "", &mut e) else { return Err(e.into_vec()) };
    let payment_id = r.required_str("payment_id", &mut e).map(str::to_string);
    let amount = r.get("amount").and_then(|v| crate::create::positive_int(v, "amount", 1, crate::money::MAX_AMOUNT, &mut e));
    let reason = r.str("reason", &mut e).and_then(|s| {
        RefundReason::parse(s).or_else(|| {
            e.add("reason", FieldCode::InvalidValue, "must be one of: duplicate, fraudulent, requested_by_customer");
            None
        })
    });
    let metadata = r.get("metadata").map(|v| crate::create::parse_metadata(v, &mut e)).unwrap_or_default();
    r.finish(&mut e);
    if !e.is_empty() {
        return Err(e.into_vec());
    }
    Ok(RefundRequest { payment_id: payment_id.expect("checked"), amount, reason, metadata })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn refund(amount: i64, status: RefundStatus) -> Refund {
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        Refund {
            id: "re_1".into(),
            merchant_id: "mer_1".into(),
            payment_id: "pay_1".into(),
            session_id: "ps_1".into(),
            amount,
            currency: "EUR".into(),
            reason: None,
            status,
            failure_reason: None,
            processor_reference: None,
            metadata: Default::default(),
            next_sync_at: None,
            sync_attempts: 0,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    #[test]
    fn reservation_takes_the_exact_remainder_and_not_one_more() {
        let money = PaymentMoney::untouched(100);
        let after = money.reserve(60).unwrap();
        assert_eq!(after.reserve(41), Err(Refusal::ExceedsRefundable { refundable: 40 }));
        let all = after.reserve(40).unwrap();
        assert_eq!((all.refundable, all.refund_count), (0, 2));
        let mut m = PaymentMoney::untouched(1000);
        for _ in 0..MAX_REFUNDS_PER_PAYMENT {
            m = m.reserve(1).unwrap();
        }
        assert_eq!(m.reserve(1), Err(Refusal::LimitReached), "the 21st is refused whatever is left");
    }

    #[test]
    fn every_transition_moves_the_counters_so_refundable_stays_received_minus_reserved() {
        use RefundStatus::*;
        let received = 100;
        for from in RefundStatus::ALL {
            for to in RefundStatus::ALL {
                let r = refund(30, from);
                let moved = r.moved(to, Some("x".into()), r.created_at);
                if from == to {
                    assert_eq!(moved, Ok(None));
                    continue;
                }
                let Ok(Some((next, d))) = moved else {
                    assert!(!from.can_move_to(to));
                    continue;
                };
                let reserved = |s: RefundStatus| if s.reserves() { 30 } else { 0 };
                let refunded = |s: RefundStatus| if s == Succeeded { 30 } else { 0 };
                let before = PaymentMoney { refundable: received - reserved(from), refunded: refunded(from), refund_count: 1 };
                let after = before.apply(d);
                assert_eq!(after.refundable, received - reserved(next.status), "{from:?} -> {to:?}");
                assert_eq!(after.refunded, refunded(next.status), "{from:?} -> {to:?}");
            }
        }
        // The late failure gives the amount back.
        let (_, d) = refund(30, Succeeded).moved(Failed, None, Utc::now()).unwrap().unwrap();
        assert_eq!(d, MoneyDelta { refundable: 30, refunded: -30 });
        assert!(refund(30, Failed).moved(Succeeded, None, Utc::now()).is_err());
        assert!(refund(30, Pending).moved(Canceled, None, Utc::now()).is_err(), "cancel only from requires_action");
    }

    #[test]
    fn events_name_each_transition() {
        let created = refund(10, RefundStatus::Pending);
        let types = |evs: Vec<EventRecord>| evs.into_iter().map(|e| e.event_type).collect::<Vec<_>>();
        assert_eq!(types(created.events(None, created.created_at, || "evt".into())), ["refund.created"]);
        let (ok, _) = created.moved(RefundStatus::Succeeded, None, created.created_at).unwrap().unwrap();
        assert_eq!(types(ok.events(Some(&created), ok.updated_at, || "evt".into())), ["refund.updated", "refund.succeeded"]);
        let (late, _) = ok.moved(RefundStatus::Failed, Some("expired_or_canceled_card".into()), ok.updated_at).unwrap().unwrap();
        let evs = late.events(Some(&ok), late.updated_at, || "evt".into());
        assert_eq!(evs[0].data.to_value()["previous_status"], "succeeded");
        assert_eq!(evs[1].data.to_value()["object"]["failure_reason"], "expired_or_canceled_card");
    }

    #[test]
    fn sync_backs_off_from_a_minute_to_a_day() {
        assert_eq!(sync_delay(0), Duration::minutes(1));
        assert_eq!(sync_delay(7), Duration::hours(24));
        assert_eq!(sync_delay(500), Duration::hours(24));
    }
}
