//! Mandates: the customer's permission for later charges without them present (API.md,
//! "Mandates, saved payment methods, recurring charges"). States, transitions, the checks a
//! charge must pass, and how an occurrence's outcome moves the mandate. Pure: the time is
//! always a parameter.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::errors::{FieldCode, FieldError};
use crate::event::{EventData, EventRecord};
use crate::model::{MandateSpec, MandateType, Schedule};
use crate::money::{Amount, Currency};
use crate::schedule;

/// Failed occurrences in a row after which a mandate is suspended.
pub const MAX_FAILED_IN_A_ROW: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MandateStatus {
    Active,
    Suspended,
    Revoked,
    Completed,
}

impl MandateStatus {
    pub const ALL: [MandateStatus; 4] = [MandateStatus::Active, MandateStatus::Suspended, MandateStatus::Revoked, MandateStatus::Completed];

    pub fn as_str(self) -> &'static str {
        match self {
            MandateStatus::Active => "active",
            MandateStatus::Suspended => "suspended",
            MandateStatus::Revoked => "revoked",
            MandateStatus::Completed => "completed",
        }
    }

    pub fn parse(s: &str) -> Option<MandateStatus> {
        MandateStatus::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, MandateStatus::Revoked | MandateStatus::Completed)
    }
}

/// How the customer accepted the mandate on the hosted page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CustomerAcceptance {
    pub accepted_at: DateTime<Utc>,
    pub ip_address: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mandate {
    pub id: String,
    pub merchant_id: String,
    pub status: MandateStatus,
    #[serde(rename = "type")]
    pub mandate_type: MandateType,
    pub customer_id: String,
    pub payment_method_id: String,
    pub currency: Currency,
    /// Scheduled mandates: charged on each occurrence.
    pub amount: Option<Amount>,
    /// `None`: no cap beyond the scheduled amount (on-demand: no cap).
    pub max_amount: Option<i64>,
    pub schedule: Option<Schedule>,
    /// The index of the next scheduled occurrence (its charge session derives from it).
    pub next_occurrence: u32,
    pub next_charge_at: Option<DateTime<Utc>>,
    pub charges_count: u32,
    pub failed_charges_in_a_row: u32,
    pub origin_session_id: String,
    pub customer_acceptance: CustomerAcceptance,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revocation_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Optimistic-lock counter, as on sessions.
    pub version: u64,
}

/// A merchant's (or the system's) action on a mandate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MandateAction {
    Suspend,
    Resume,
    Revoke { reason: String },
}

impl MandateAction {
    pub fn name(&self) -> &'static str {
        match self {
            MandateAction::Suspend => "suspend",
            MandateAction::Resume => "resume",
            MandateAction::Revoke { .. } => "revoke",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot {action} a mandate in status {}", from.as_str())]
pub struct InvalidMandateTransition {
    pub from: MandateStatus,
    pub action: &'static str,
}

/// The charge a scheduled mandate waits for: occurrence `occurrence` (or its retry) at `at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingCharge {
    pub occurrence: u32,
    pub at: DateTime<Utc>,
}

/// What one committed change of a mandate asks of a scheduler that fires each pending
/// charge once (EventBridge Scheduler): the trigger to create, the one to delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScheduleChange {
    pub create: Option<PendingCharge>,
    pub delete: Option<PendingCharge>,
}

/// The trigger to create for the new state, and the one to delete from the old: a pending
/// charge that was already due when the change was written has fired (the change records
/// its outcome) and its one-time trigger removes itself, so only a trigger still in the
/// future is deleted. Derived from committed state alone, so replaying a change asks for
/// the same thing again.
pub fn schedule_change(old: Option<&Mandate>, new: &Mandate) -> ScheduleChange {
    let (before, after) = (old.and_then(Mandate::pending_charge), new.pending_charge());
    if before == after {
        return ScheduleChange::default();
    }
    ScheduleChange { create: after, delete: before.filter(|p| p.at > new.updated_at) }
}

/// How one scheduled occurrence ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OccurrenceOutcome {
    Charged,
    /// Failed for good (a hard decline, or the last retry of a soft one).
    Failed,
}

impl Mandate {
    /// The mandate a succeeding `first_in_series` payment creates (in the same write as the
    /// success). `None` when the spec asks for none.
    #[allow(clippy::too_many_arguments)]
    pub fn from_first_payment(
        id: String,
        merchant_id: String,
        spec: &MandateSpec,
        customer_id: String,
        payment_method_id: String,
        currency: Currency,
        amount: Amount,
        origin_session_id: String,
        acceptance: CustomerAcceptance,
        now: DateTime<Utc>,
    ) -> Mandate {
        let scheduled = spec.mandate_type == MandateType::Scheduled;
        let mut m = Mandate {
            id,
            merchant_id,
            status: MandateStatus::Active,
            mandate_type: spec.mandate_type,
            customer_id,
            payment_method_id,
            currency,
            amount: scheduled.then_some(amount),
            max_amount: spec.max_amount,
            schedule: spec.schedule.clone(),
            next_occurrence: 0,
            next_charge_at: None,
            charges_count: 0,
            failed_charges_in_a_row: 0,
            origin_session_id,
            customer_acceptance: acceptance,
            revoked_at: None,
            revocation_reason: None,
            created_at: now,
            updated_at: now,
            version: 1,
        };
        m.next_charge_at = m.schedule.as_ref().and_then(|s| schedule::occurrence(s, 0));
        if m.schedule.is_some() && m.next_charge_at.is_none() {
            m.status = MandateStatus::Completed;
        }
        m
    }

    fn next_version(&self, now: DateTime<Utc>) -> Mandate {
        let mut next = self.clone();
        next.updated_at = now;
        next.version += 1;
        next
    }

    /// Applies a merchant action. Revoked and completed are terminal.
    pub fn apply(&self, action: &MandateAction, now: DateTime<Utc>) -> Result<Mandate, InvalidMandateTransition> {
        use MandateStatus::*;
        let to = match (action, self.status) {
            (MandateAction::Suspend, Active) => Suspended,
            (MandateAction::Resume, Suspended) => Active,
            (MandateAction::Revoke { .. }, Active | Suspended) => Revoked,
            (action, from) => return Err(InvalidMandateTransition { from, action: action.name() }),
        };
        let mut next = self.next_version(now);
        next.status = to;
        match action {
            MandateAction::Revoke { reason } => {
                next.revoked_at = Some(now);
                next.revocation_reason = Some(reason.clone());
                next.next_charge_at = None;
            }
            MandateAction::Suspend => next.next_charge_at = None,
            // Resuming skips what passed while suspended: the next occurrence after now.
            MandateAction::Resume => next.skip_to_after(now),
        }
        Ok(next)
    }

    /// Moves `next_occurrence`/`next_charge_at` to the first occurrence after `now`
    /// (completing the mandate when none remains).
    fn skip_to_after(&mut self, now: DateTime<Utc>) {
        let Some(s) = &self.schedule else { return };
        match schedule::next_after(s, self.next_occurrence, now) {
            Some((n, at)) => {
                self.next_occurrence = n;
                self.next_charge_at = Some(at);
            }
            None => {
                self.next_charge_at = None;
                self.status = MandateStatus::Completed;
            }
        }
    }

    /// Checks a `next_in_series` charge against the mandate; the failing field on refusal.
    pub fn check_charge(&self, customer_id: &str, currency: Currency, amount: Amount) -> Result<(), FieldError> {
        let fail = |field: &str, code: FieldCode, message: String| Err(FieldError { field: field.into(), code, message });
        if self.status != MandateStatus::Active {
            return fail("mandate_id", FieldCode::Inactive, format!("the mandate is {}", self.status.as_str()));
        }
        if self.customer_id != customer_id {
            return fail("mandate_id", FieldCode::CustomerMismatch, "the mandate belongs to another customer_id".into());
        }
        if self.currency != currency {
            return fail("mandate_id", FieldCode::CurrencyMismatch, format!("the mandate charges in {}", self.currency));
        }
        let limit = match (self.max_amount, self.amount) {
            (Some(max), _) => Some(max),
            (None, Some(scheduled)) => Some(scheduled.minor()),
            (None, None) => None,
        };
        if let Some(limit) = limit.filter(|l| amount.minor() > *l) {
            return fail("amount", FieldCode::OverMandateLimit, format!("must be at most {limit} under this mandate"));
        }
        Ok(())
    }

    /// Records how scheduled occurrence `n` ended: counts, the failure streak (suspending at
    /// [`MAX_FAILED_IN_A_ROW`]), and the next occurrence (or completion). `None` when `n` is
    /// not the pending occurrence (a replayed trigger): nothing to write.
    pub fn record_occurrence(&self, n: u32, outcome: OccurrenceOutcome, now: DateTime<Utc>) -> Option<Mandate> {
        if n != self.next_occurrence || self.status.is_terminal() {
            return None;
        }
        let mut next = self.next_version(now);
        match outcome {
            OccurrenceOutcome::Charged => {
                next.charges_count += 1;
                next.failed_charges_in_a_row = 0;
            }
            OccurrenceOutcome::Failed => next.failed_charges_in_a_row += 1,
        }
        next.next_occurrence = n + 1;
        let schedule = next.schedule.clone();
        match schedule.as_ref().and_then(|s| schedule::occurrence(s, n + 1)) {
            Some(at) => next.next_charge_at = Some(at),
            None => {
                next.next_charge_at = None;
                next.status = MandateStatus::Completed;
            }
        }
        if next.status == MandateStatus::Active && next.failed_charges_in_a_row >= MAX_FAILED_IN_A_ROW {
            next.status = MandateStatus::Suspended;
            next.next_charge_at = None;
        }
        Some(next)
    }

    /// Occurrence `n` failed softly and is tried again at `at`: the mandate's next charge
    /// moves there, nothing else changes. `None` when `n` is not the pending occurrence.
    pub fn retry_occurrence(&self, n: u32, at: DateTime<Utc>, now: DateTime<Utc>) -> Option<Mandate> {
        if n != self.next_occurrence || self.status != MandateStatus::Active {
            return None;
        }
        let mut next = self.next_version(now);
        next.next_charge_at = Some(at);
        Some(next)
    }

    /// The charge this mandate waits for: active, scheduled, with a next charge time.
    pub fn pending_charge(&self) -> Option<PendingCharge> {
        let waiting = self.status == MandateStatus::Active && self.mandate_type == MandateType::Scheduled;
        self.next_charge_at.filter(|_| waiting).map(|at| PendingCharge { occurrence: self.next_occurrence, at })
    }

    /// The name of the one-time trigger of `charge`: deterministic from the mandate, the
    /// occurrence and its time (a retry is a new trigger), within EventBridge Scheduler's
    /// 64 characters of `[0-9A-Za-z_.-]`.
    pub fn trigger_name(&self, charge: &PendingCharge) -> String {
        format!("{}-{}-{}", self.id, charge.occurrence, charge.at.timestamp())
    }

    /// The id and reference of the session that charges occurrence `n`: derived, so any
    /// number of deliveries of the same trigger create one session.
    pub fn occurrence_reference(&self, n: u32) -> String {
        format!("{}-{n}", self.id)
    }

    pub fn to_api(&self) -> Value {
        json!({
            "id": self.id,
            "object": "mandate",
            "status": self.status,
            "type": self.mandate_type,
            "customer_id": self.customer_id,
            "payment_method_id": self.payment_method_id,
            "currency": self.currency,
            "amount": self.amount,
            "max_amount": self.max_amount,
            "schedule": self.schedule,
            "next_charge_at": self.next_charge_at,
            "charges_count": self.charges_count,
            "failed_charges_in_a_row": self.failed_charges_in_a_row,
            "origin_session_id": self.origin_session_id,
            "customer_acceptance": {
                "type": "online",
                "accepted_at": self.customer_acceptance.accepted_at,
                "ip_address": self.customer_acceptance.ip_address,
                "user_agent": self.customer_acceptance.user_agent,
            },
            "revoked_at": self.revoked_at,
            "revocation_reason": self.revocation_reason,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        })
    }
}

/// The events of a mandate change: `mandate.updated` whenever what a merchant tracks
/// changed — the status (then with `previous_status`), or a charge moved
/// `charges_count`, `next_charge_at` or `failed_charges_in_a_row` — then
/// `mandate.revoked`, `mandate.suspended` or `mandate.completed` for a status it reached.
/// Nothing when none of those changed.
pub fn mandate_events(before: &Mandate, after: &Mandate, now: DateTime<Utc>, mut ids: impl FnMut() -> String) -> Vec<EventRecord> {
    let status_changed = before.status != after.status;
    let charged = (before.charges_count, before.next_charge_at, before.failed_charges_in_a_row)
        != (after.charges_count, after.next_charge_at, after.failed_charges_in_a_row);
    if !status_changed && !charged {
        return Vec::new();
    }
    let snapshot = after.to_api();
    let event = |event_type: &str, data: EventData, id: String| EventRecord {
        id,
        event_type: event_type.into(),
        created_at: now,
        session_id: after.id.clone(),
        data,
    };
    let previous = status_changed.then(|| before.status.as_str());
    let mut out = vec![event("mandate.updated", EventData::of(&snapshot, previous), ids())];
    if !status_changed {
        return out;
    }
    let specific = match after.status {
        MandateStatus::Revoked => Some("mandate.revoked"),
        MandateStatus::Suspended => Some("mandate.suspended"),
        MandateStatus::Completed => Some("mandate.completed"),
        MandateStatus::Active => None,
    };
    if let Some(t) = specific {
        out.push(event(t, EventData::of(&snapshot, Some(before.status.as_str())), ids()));
    }
    crate::event::in_write_order(out)
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone};

    use super::*;
    use crate::model::Interval;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2027, 1, 10, 12, 0, 0).unwrap()
    }

    fn mandate(max_charges: Option<u32>) -> Mandate {
        let spec = MandateSpec {
            mandate_type: MandateType::Scheduled,
            max_amount: None,
            schedule: Some(Schedule {
                interval: Interval::Month,
                interval_count: 1,
                start_date: NaiveDate::from_ymd_opt(2027, 1, 31).unwrap(),
                time: None,
                end_date: None,
                max_charges,
            }),
        };
        let acceptance = CustomerAcceptance { accepted_at: t0(), ip_address: Some("203.0.113.9".into()), user_agent: None };
        Mandate::from_first_payment(
            "md_1".into(),
            "mer_1".into(),
            &spec,
            "cus_1".into(),
            "pm_1".into(),
            Currency::parse("EUR").unwrap(),
            Amount::new(990).unwrap(),
            "ps_1".into(),
            acceptance,
            t0(),
        )
    }

    #[test]
    fn states_and_transitions() {
        let m = mandate(None);
        assert_eq!(m.status, MandateStatus::Active);
        assert_eq!(m.next_charge_at.unwrap().to_rfc3339(), "2027-01-31T09:00:00+00:00");
        let s = m.apply(&MandateAction::Suspend, t0()).unwrap();
        assert_eq!((s.status, s.next_charge_at), (MandateStatus::Suspended, None));
        assert!(s.apply(&MandateAction::Suspend, t0()).is_err());
        // Resumed in March: January's and February's occurrences passed while suspended.
        let march = Utc.with_ymd_and_hms(2027, 3, 1, 0, 0, 0).unwrap();
        let r = s.apply(&MandateAction::Resume, march).unwrap();
        assert_eq!((r.status, r.next_occurrence), (MandateStatus::Active, 2));
        assert_eq!(r.next_charge_at.unwrap().date_naive(), NaiveDate::from_ymd_opt(2027, 3, 31).unwrap());
        let v = r.apply(&MandateAction::Revoke { reason: "requested_by_customer".into() }, march).unwrap();
        assert_eq!((v.status, v.revoked_at, v.next_charge_at), (MandateStatus::Revoked, Some(march), None));
        for action in [MandateAction::Suspend, MandateAction::Resume, MandateAction::Revoke { reason: "x".into() }] {
            assert!(v.apply(&action, march).is_err(), "revoked is terminal");
        }
        assert_eq!(v.version, m.version + 3);
    }

    #[test]
    fn schedule_changes_follow_the_pending_charge() {
        let m = mandate(Some(12));
        let first = m.pending_charge().unwrap();
        assert_eq!(schedule_change(None, &m), ScheduleChange { create: Some(first), delete: None });
        assert_eq!(schedule_change(Some(&m), &m), ScheduleChange::default(), "a replayed change asks for nothing");
        assert_eq!(m.trigger_name(&first), format!("md_1-0-{}", first.at.timestamp()));
        // Charged when due: the next occurrence is created; the fired trigger removes itself.
        let charged = m.record_occurrence(0, OccurrenceOutcome::Charged, first.at).unwrap();
        let change = schedule_change(Some(&m), &charged);
        assert_eq!((change.create.map(|c| c.occurrence), change.delete), (Some(1), None));
        // A soft decline retries: a new trigger for the same occurrence.
        let retry_at = first.at + chrono::Duration::days(1);
        let retried = m.retry_occurrence(0, retry_at, first.at).unwrap();
        assert_eq!(schedule_change(Some(&m), &retried).create, Some(PendingCharge { occurrence: 0, at: retry_at }));
        // Suspended before it was due: the waiting trigger is deleted, none created.
        let suspended = m.apply(&MandateAction::Suspend, t0()).unwrap();
        assert_eq!(schedule_change(Some(&m), &suspended), ScheduleChange { create: None, delete: Some(first) });
        let resumed = suspended.apply(&MandateAction::Resume, t0()).unwrap();
        assert_eq!(schedule_change(Some(&suspended), &resumed).create, Some(first));
        let revoked = m.apply(&MandateAction::Revoke { reason: "x".into() }, t0()).unwrap();
        assert_eq!(schedule_change(Some(&m), &revoked).delete, Some(first));
        let name = m.trigger_name(&PendingCharge { occurrence: u32::MAX, at: first.at });
        let long = Mandate { id: format!("md_{}", "f".repeat(32)), ..m.clone() };
        assert!(long.trigger_name(&PendingCharge { occurrence: u32::MAX, at: first.at }).len() <= 64, "{name}");
    }

    #[test]
    fn charge_checks_name_the_failing_field() {
        let m = mandate(None);
        let eur = Currency::parse("EUR").unwrap();
        let amount = |n| Amount::new(n).unwrap();
        assert!(m.check_charge("cus_1", eur, amount(990)).is_ok());
        let code = |r: Result<(), FieldError>| r.map_err(|e| (e.field, e.code)).unwrap_err();
        assert_eq!(code(m.check_charge("cus_2", eur, amount(990))), ("mandate_id".into(), FieldCode::CustomerMismatch));
        assert_eq!(
            code(m.check_charge("cus_1", Currency::parse("USD").unwrap(), amount(990))),
            ("mandate_id".into(), FieldCode::CurrencyMismatch)
        );
        assert_eq!(code(m.check_charge("cus_1", eur, amount(991))), ("amount".into(), FieldCode::OverMandateLimit));
        let capped = Mandate { max_amount: Some(2_000), ..m.clone() };
        assert!(capped.check_charge("cus_1", eur, amount(2_000)).is_ok());
        let suspended = m.apply(&MandateAction::Suspend, t0()).unwrap();
        assert_eq!(code(suspended.check_charge("cus_1", eur, amount(990))), ("mandate_id".into(), FieldCode::Inactive));
    }

    #[test]
    fn occurrences_count_suspend_and_complete() {
        let mut m = mandate(Some(12));
        for n in 0..12 {
            assert!(m.record_occurrence(n + 1, OccurrenceOutcome::Charged, t0()).is_none(), "only the pending occurrence");
            m = m.record_occurrence(n, OccurrenceOutcome::Charged, t0()).unwrap();
        }
        assert_eq!((m.status, m.charges_count, m.next_charge_at), (MandateStatus::Completed, 12, None));
        assert!(m.record_occurrence(12, OccurrenceOutcome::Charged, t0()).is_none());

        let mut f = mandate(None);
        f = f.record_occurrence(0, OccurrenceOutcome::Failed, t0()).unwrap();
        f = f.record_occurrence(1, OccurrenceOutcome::Charged, t0()).unwrap();
        assert_eq!(f.failed_charges_in_a_row, 0, "a success resets the streak");
        for n in 2..5 {
            f = f.record_occurrence(n, OccurrenceOutcome::Failed, t0()).unwrap();
        }
        assert_eq!((f.status, f.failed_charges_in_a_row, f.next_charge_at), (MandateStatus::Suspended, 3, None));
        assert_eq!(f.occurrence_reference(4), "md_1-4");
    }

    #[test]
    fn events_name_the_change() {
        let m = mandate(None);
        let mut n = 0;
        let ids = || {
            n += 1;
            format!("evt_{n}")
        };
        let suspended = m.apply(&MandateAction::Suspend, t0()).unwrap();
        let events = mandate_events(&m, &suspended, t0(), ids);
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["mandate.updated", "mandate.suspended"]);
        assert_eq!(events[0].data.to_value()["previous_status"], "active");
        assert_eq!(events[0].data.to_value()["object"]["status"], "suspended");
        assert_eq!(events[0].session_id, "md_1");
        let resumed = suspended.apply(&MandateAction::Resume, t0()).unwrap();
        let types: Vec<String> = mandate_events(&suspended, &resumed, t0(), || "e".into()).into_iter().map(|e| e.event_type).collect();
        assert_eq!(types, ["mandate.updated"]);
        assert!(mandate_events(&m, &m, t0(), || "e".into()).is_empty());
        // A charge changes no status but what a merchant tracks: one mandate.updated, no
        // previous_status.
        let charged = m.record_occurrence(0, OccurrenceOutcome::Charged, t0()).unwrap();
        let events = mandate_events(&m, &charged, t0(), || "e".into());
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["mandate.updated"]);
        assert_eq!(events[0].data.to_value()["object"]["charges_count"], 1);
        assert!(events[0].data.to_value().get("previous_status").is_none());
    }

    #[test]
    fn stored_form_round_trips_and_the_api_shape_hides_internals() {
        let m = mandate(Some(3));
        let back: Mandate = serde_json::from_value(serde_json::to_value(&m).unwrap()).unwrap();
        assert_eq!(back, m);
        let api = m.to_api();
        assert_eq!(api["object"], "mandate");
        assert_eq!(api["amount"], 990);
        assert_eq!(api["currency"], "EUR");
        assert_eq!(api["customer_acceptance"]["type"], "online");
        assert!(api.get("merchant_id").is_none() && api.get("version").is_none() && api.get("next_occurrence").is_none());
    }
}
