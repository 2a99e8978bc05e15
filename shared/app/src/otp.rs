//! One-time codes of the hosted page: a 6-digit code sent to the customer's email (else
//! phone) when the page was not launched from an allowed domain. Only its hash is stored,
//! plus the code itself in sandbox mode for `GET /sandbox/otp`.

use chrono::{DateTime, Duration, Utc};
use paysession_domain::session::{OtpState, PaymentSession};

use crate::context::{Core, Payments};
use crate::ids::{constant_eq, new_token, sha256_hex};
use crate::ports::{SessionStore, StoreError};
use crate::sessions::{UpdateError, update_with};

/// How long a code is valid.
pub const OTP_VALIDITY: Duration = Duration::minutes(10);
/// Wrong codes accepted before the code is locked.
pub const OTP_TRIES: u32 = 5;

/// Where the code goes: email first, else phone; `None` when the session has neither.
pub fn destination(session: &PaymentSession) -> Option<String> {
    let c = session.spec.customer.as_ref()?;
    c.email.clone().or_else(|| c.phone.clone())
}

/// Masks a destination for display: `a***@example.com`, `+49******78`.
pub fn mask(dest: &str) -> String {
    match dest.split_once('@') {
        Some((user, domain)) => format!("{}***@{domain}", user.chars().next().unwrap_or('*')),
        None => {
            let n = dest.chars().count();
            dest.chars().enumerate().map(|(i, c)| if i < 3 || i + 2 >= n { c } else { '*' }).collect()
        }
    }
}

fn code_hash(session: &PaymentSession, code: &str) -> String {
    sha256_hex(format!("{}:{code}", session.id).as_bytes())
}

/// A new 6-digit code for `session` (its hash stored; in sandbox also the code itself).
pub fn new_code(session: &PaymentSession, sandbox: bool, now: DateTime<Utc>) -> Option<(OtpState, String)> {
    let dest = destination(session).or_else(|| sandbox.then(|| "sandbox".to_string()))?;
    let raw = u64::from_str_radix(&sha256_hex(new_token().as_bytes())[..12], 16).ok()?;
    let code = format!("{:06}", raw % 1_000_000);
    let state = OtpState {
        code_hash: code_hash(session, &code),
        sandbox_code: sandbox.then(|| code.clone()),
        expires_at: now + OTP_VALIDITY,
        tries_left: OTP_TRIES,
        sent_to: dest,
    };
    Some((state, code))
}

/// A code is current while it is valid and has tries left.
pub fn has_current_code(session: &PaymentSession, now: DateTime<Utc>) -> bool {
    session.otp.as_ref().is_some_and(|o| o.expires_at > now && o.tries_left > 0)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Wrong,
    Locked,
    Expired,
}

/// Checks a submitted code, returning the verdict and the state to store.
pub fn check(session: &PaymentSession, submitted: &str, now: DateTime<Utc>) -> (Verdict, Option<OtpState>) {
    let Some(state) = session.otp.clone() else { return (Verdict::Expired, None) };
    if state.expires_at <= now {
        return (Verdict::Expired, Some(state));
    }
    if state.tries_left == 0 {
        return (Verdict::Locked, Some(state));
    }
    if constant_eq(code_hash(session, submitted.trim()).as_bytes(), state.code_hash.as_bytes()) {
        (Verdict::Ok, None)
    } else {
        let left = state.tries_left - 1;
        (if left == 0 { Verdict::Locked } else { Verdict::Wrong }, Some(OtpState { tries_left: left, ..state }))
    }
}

/// Stores `state` as the session's code (internal bookkeeping: no events).
async fn store_state<S: SessionStore + ?Sized>(
    cx: &Core<S>,
    session: PaymentSession,
    state: Option<OtpState>,
) -> Result<PaymentSession, StoreError> {
    let written = update_with(cx, session, false, |s, _| {
        let mut next = s.clone();
        next.otp = state.clone();
        next.version += 1;
        Ok::<_, std::convert::Infallible>(Some(next))
    })
    .await;
    match written {
        Ok(next) => Ok(next.expect("a code change always writes")),
        Err(UpdateError::Store(e)) => Err(e),
        Err(UpdateError::Refused(never)) => match never {},
    }
}

/// Issues, stores and sends a new code. `None` when there is nowhere to send it or it
/// could not be stored.
pub async fn send_code<S: SessionStore + ?Sized>(cx: &Core<S>, pay: &Payments, session: &PaymentSession) -> Option<PaymentSession> {
    let (state, code) = new_code(session, cx.config.sandbox, cx.clock.now())?;
    let dest = mask(&state.sent_to);
    let written = store_state(cx, session.clone(), Some(state)).await.ok()?;
    pay.notifier.send_code(&written.id, &dest, &code).await;
    Some(written)
}

/// Checks a submitted code and stores what the check changed (a try used up).
pub async fn verify<S: SessionStore + ?Sized>(cx: &Core<S>, session: &PaymentSession, submitted: &str) -> (Verdict, PaymentSession) {
    let (verdict, state) = check(session, submitted, cx.clock.now());
    if verdict == Verdict::Ok {
        return (verdict, session.clone());
    }
    let written = store_state(cx, session.clone(), state).await.unwrap_or_else(|_| session.clone());
    (verdict, written)
}
