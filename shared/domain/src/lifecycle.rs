//! The payment-session lifecycle: one transition function holding API.md's table.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    RequiresConfirmation,
    Open,
    RequiresAction,
    Processing,
    Active,
    Succeeded,
    Failed,
    Expired,
    Cancelled,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 9] = [
        SessionStatus::RequiresConfirmation,
        SessionStatus::Open,
        SessionStatus::RequiresAction,
        SessionStatus::Processing,
        SessionStatus::Active,
        SessionStatus::Succeeded,
        SessionStatus::Failed,
        SessionStatus::Expired,
        SessionStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SessionStatus::RequiresConfirmation => "requires_confirmation",
            SessionStatus::Open => "open",
            SessionStatus::RequiresAction => "requires_action",
            SessionStatus::Processing => "processing",
            SessionStatus::Active => "active",
            SessionStatus::Succeeded => "succeeded",
            SessionStatus::Failed => "failed",
            SessionStatus::Expired => "expired",
            SessionStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<SessionStatus> {
        SessionStatus::ALL.into_iter().find(|st| st.as_str() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, SessionStatus::Succeeded | SessionStatus::Failed | SessionStatus::Expired | SessionStatus::Cancelled)
    }

    /// Statuses in which no payment attempt is under way: expiry applies at `expires_at`
    /// whatever the expiration mode.
    pub fn is_idle(self) -> bool {
        matches!(self, SessionStatus::RequiresConfirmation | SessionStatus::Open | SessionStatus::Active)
    }

    /// An attempt is under way (3DS, wallet approval, async settlement).
    pub fn is_attempt_in_flight(self) -> bool {
        matches!(self, SessionStatus::RequiresAction | SessionStatus::Processing)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentType {
    Single,
    Multiple,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpirationMode {
    Loose,
    Strict,
}

/// What happens to a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEvent {
    Confirm,
    Cancel,
    /// `expires_at` passed, or the merchant asked to expire now.
    Expire,
    AttemptRequiresAction,
    AttemptProcessing,
    AttemptSucceeded,
    AttemptFailed {
        attempts_remaining: u32,
    },
    /// A payment into a `multiple` session (VA deposit, QR payment).
    PaymentReceived,
}

impl SessionEvent {
    pub fn name(self) -> &'static str {
        match self {
            SessionEvent::Confirm => "confirm",
            SessionEvent::Cancel => "cancel",
            SessionEvent::Expire => "expire",
            SessionEvent::AttemptRequiresAction => "attempt_requires_action",
            SessionEvent::AttemptProcessing => "attempt_processing",
            SessionEvent::AttemptSucceeded => "attempt_succeeded",
            SessionEvent::AttemptFailed { .. } => "attempt_failed",
            SessionEvent::PaymentReceived => "payment_received",
        }
    }
}

/// Facts about the session that the table's rows depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransitionContext {
    pub payment_type: PaymentType,
    pub expiration_mode: ExpirationMode,
    /// `expires_at <= now`, or an expiry was already requested while an attempt ran.
    pub past_expiry: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot {} a session in status {}", event.name(), from.as_str())]
pub struct InvalidTransition {
    pub from: SessionStatus,
    pub event: SessionEvent,
}

/// The lifecycle table of API.md. Returns the next status; an `Ok` equal to `from` means
/// the event is accepted without a status change (a payment into an `active` session, or a
/// loose-mode expiry waiting for the running attempt).
pub fn transition(from: SessionStatus, event: SessionEvent, ctx: TransitionContext) -> Result<SessionStatus, InvalidTransition> {
    use SessionEvent as E;
    use SessionStatus as S;
    let idle_target = match ctx.payment_type {
        PaymentType::Single => S::Open,
        PaymentType::Multiple => S::Active,
    };
    let may_finish = !ctx.past_expiry || ctx.expiration_mode == ExpirationMode::Loose;
    let next = match (from, event) {
        (S::RequiresConfirmation, E::Confirm) => Some(idle_target),
        (S::RequiresConfirmation | S::Open | S::Active, E::Cancel) => Some(S::Cancelled),
        // Due (or requested): expired per the one expiry rule; otherwise accepted without a
        // change, the running attempt settling the session.
        (s, E::Expire) if !s.is_terminal() => Some(if expired_when_past_expiry(s, ctx.expiration_mode) { S::Expired } else { from }),
        // Payments are never started on a session past its expiry; one already running may
        // finish after it only in loose mode.
        (S::Open, E::AttemptRequiresAction) if !ctx.past_expiry => Some(S::RequiresAction),
        (S::Open, E::AttemptProcessing) if !ctx.past_expiry => Some(S::Processing),
        (S::Open, E::AttemptSucceeded) if !ctx.past_expiry => Some(S::Succeeded),
        (S::RequiresAction, E::AttemptProcessing) => may_finish.then_some(S::Processing),
        (S::RequiresAction | S::Processing, E::AttemptSucceeded) => may_finish.then_some(S::Succeeded),
        // A synchronous decline leaves an open session open while attempts remain.
        (S::Open, E::AttemptFailed { attempts_remaining }) if !ctx.past_expiry => {
            Some(if attempts_remaining > 0 { S::Open } else { S::Failed })
        }
        (S::RequiresAction | S::Processing, E::AttemptFailed { attempts_remaining }) => Some(if ctx.past_expiry {
            S::Expired
        } else if attempts_remaining > 0 {
            S::Open
        } else {
            S::Failed
        }),
        (S::Active, E::PaymentReceived) if !ctx.past_expiry => Some(S::Active),
        _ => None,
    };
    next.ok_or(InvalidTransition { from, event })
}

/// The expiry rule, the one place it is written: once past `expires_at`, an idle session
/// is expired whatever the mode, and one with an attempt in flight only in strict mode
/// (loose mode lets the attempt settle). Readers, the sweeper's SQL and the expiry write
/// all derive from this.
pub fn expired_when_past_expiry(status: SessionStatus, mode: ExpirationMode) -> bool {
    status.is_idle() || (status.is_attempt_in_flight() && mode == ExpirationMode::Strict)
}

/// The status a reader sees at `now`: expired per [`expired_when_past_expiry`] even
/// before anything wrote it (TTL deletion is only garbage collection).
pub fn effective_status(status: SessionStatus, mode: ExpirationMode, past_expiry: bool) -> SessionStatus {
    if past_expiry && expired_when_past_expiry(status, mode) { SessionStatus::Expired } else { status }
}

/// Merchant actions that the API offers on a session in `status` (`allowed_actions`).
pub fn allowed_actions(status: SessionStatus, ctx: TransitionContext) -> Vec<&'static str> {
    [(SessionEvent::Confirm, "confirm"), (SessionEvent::Cancel, "cancel"), (SessionEvent::Expire, "expire")]
        .into_iter()
        .filter(|(e, _)| transition(status, *e, ctx).is_ok_and(|to| to != status))
        .map(|(_, name)| name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use SessionEvent as E;
    use SessionStatus as S;
    use proptest::prelude::*;

    const SINGLE: TransitionContext =
        TransitionContext { payment_type: PaymentType::Single, expiration_mode: ExpirationMode::Loose, past_expiry: false };

    fn ctx(payment_type: PaymentType, expiration_mode: ExpirationMode, past_expiry: bool) -> TransitionContext {
        TransitionContext { payment_type, expiration_mode, past_expiry }
    }

    #[test]
    fn table_rows() {
        let multiple = ctx(PaymentType::Multiple, ExpirationMode::Loose, false);
        assert_eq!(transition(S::RequiresConfirmation, E::Confirm, SINGLE), Ok(S::Open));
        assert_eq!(transition(S::RequiresConfirmation, E::Confirm, multiple), Ok(S::Active));
        assert_eq!(transition(S::Open, E::AttemptRequiresAction, SINGLE), Ok(S::RequiresAction));
        assert_eq!(transition(S::Open, E::AttemptProcessing, SINGLE), Ok(S::Processing));
        assert_eq!(transition(S::RequiresAction, E::AttemptProcessing, SINGLE), Ok(S::Processing));
        for from in [S::Open, S::RequiresAction, S::Processing] {
            assert_eq!(transition(from, E::AttemptSucceeded, SINGLE), Ok(S::Succeeded));
        }
        for from in [S::RequiresAction, S::Processing] {
            assert_eq!(transition(from, E::AttemptFailed { attempts_remaining: 2 }, SINGLE), Ok(S::Open));
            assert_eq!(transition(from, E::AttemptFailed { attempts_remaining: 0 }, SINGLE), Ok(S::Failed));
        }
        assert_eq!(transition(S::Active, E::PaymentReceived, multiple), Ok(S::Active));
        for from in [S::RequiresConfirmation, S::Open, S::Active] {
            assert_eq!(transition(from, E::Cancel, SINGLE), Ok(S::Cancelled));
            assert_eq!(transition(from, E::Expire, SINGLE), Ok(S::Expired));
        }
    }

    #[test]
    fn expiry_during_attempt() {
        let strict = ctx(PaymentType::Single, ExpirationMode::Strict, true);
        let loose = ctx(PaymentType::Single, ExpirationMode::Loose, true);
        assert_eq!(transition(S::Processing, E::Expire, strict), Ok(S::Expired));
        assert_eq!(transition(S::Processing, E::Expire, loose), Ok(S::Processing));
        // Loose: the running attempt settles the session.
        assert_eq!(transition(S::Processing, E::AttemptSucceeded, loose), Ok(S::Succeeded));
        assert_eq!(transition(S::Processing, E::AttemptFailed { attempts_remaining: 3 }, loose), Ok(S::Expired));
        // Strict: nothing completes after expires_at.
        assert!(transition(S::Processing, E::AttemptSucceeded, strict).is_err());
        assert!(transition(S::Open, E::AttemptSucceeded, loose).is_err());
        assert!(transition(S::Open, E::AttemptRequiresAction, loose).is_err());
    }

    #[test]
    fn rejected_rows() {
        assert!(transition(S::Open, E::Confirm, SINGLE).is_err());
        assert!(transition(S::RequiresAction, E::Cancel, SINGLE).is_err());
        assert!(transition(S::Open, E::PaymentReceived, SINGLE).is_err());
        assert_eq!(transition(S::Open, E::AttemptFailed { attempts_remaining: 1 }, SINGLE), Ok(S::Open));
        assert_eq!(transition(S::Open, E::AttemptFailed { attempts_remaining: 0 }, SINGLE), Ok(S::Failed));
        assert!(transition(S::RequiresConfirmation, E::AttemptSucceeded, SINGLE).is_err());
    }

    #[test]
    fn effective_status_rules() {
        assert_eq!(effective_status(S::Open, ExpirationMode::Loose, true), S::Expired);
        assert_eq!(effective_status(S::Processing, ExpirationMode::Loose, true), S::Processing);
        assert_eq!(effective_status(S::Processing, ExpirationMode::Strict, true), S::Expired);
        assert_eq!(effective_status(S::Succeeded, ExpirationMode::Strict, true), S::Succeeded);
        assert_eq!(effective_status(S::Open, ExpirationMode::Strict, false), S::Open);
    }

    #[test]
    fn actions() {
        assert_eq!(allowed_actions(S::RequiresConfirmation, SINGLE), vec!["confirm", "cancel", "expire"]);
        assert_eq!(allowed_actions(S::Open, SINGLE), vec!["cancel", "expire"]);
        assert!(allowed_actions(S::Succeeded, SINGLE).is_empty());
    }

    fn any_status() -> impl Strategy<Value = S> {
        proptest::sample::select(S::ALL.to_vec())
    }
    fn any_event() -> impl Strategy<Value = E> {
        prop_oneof![
            Just(E::Confirm),
            Just(E::Cancel),
            Just(E::Expire),
            Just(E::AttemptRequiresAction),
            Just(E::AttemptProcessing),
            Just(E::AttemptSucceeded),
            Just(E::PaymentReceived),
            (0u32..6).prop_map(|n| E::AttemptFailed { attempts_remaining: n }),
        ]
    }
    fn any_ctx() -> impl Strategy<Value = TransitionContext> {
        (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(|(m, s, p)| TransitionContext {
            payment_type: if m { PaymentType::Multiple } else { PaymentType::Single },
            expiration_mode: if s { ExpirationMode::Strict } else { ExpirationMode::Loose },
            past_expiry: p,
        })
    }

    proptest! {
        #[test]
        fn terminal_statuses_never_move(from in any_status(), ev in any_event(), c in any_ctx()) {
            if from.is_terminal() {
                prop_assert!(transition(from, ev, c).is_err());
            }
        }

        #[test]
        fn multiple_sessions_never_reach_single_states(ev in any_event(), c in any_ctx()) {
            let c = TransitionContext { payment_type: PaymentType::Multiple, ..c };
            if let Ok(to) = transition(S::Active, ev, c) {
                prop_assert!(matches!(to, S::Active | S::Cancelled | S::Expired));
            }
        }

        #[test]
        fn strict_never_succeeds_after_expiry(from in any_status(), c in any_ctx()) {
            let c = TransitionContext { expiration_mode: ExpirationMode::Strict, past_expiry: true, ..c };
            prop_assert!(transition(from, E::AttemptSucceeded, c).is_err());
            prop_assert!(transition(from, E::PaymentReceived, c).is_err());
        }

        #[test]
        fn random_walks_stay_within_table(events in proptest::collection::vec(any_event(), 0..30), c in any_ctx()) {
            let mut s = S::RequiresConfirmation;
            for ev in events {
                if let Ok(next) = transition(s, ev, c) {
                    if s.is_terminal() { prop_assert!(false, "moved out of terminal {s:?}"); }
                    s = next;
                }
            }
            prop_assert!(S::ALL.contains(&s));
        }
    }
}
