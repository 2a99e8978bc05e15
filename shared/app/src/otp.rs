//! One-time codes of the hosted page: a 6-digit code sent to the customer's email (else
//! phone) when the page was not launched from an allowed domain. Only its hash is stored,
//! plus the code itself in sandbox mode for `GET /sandbox/otp`.
//!
//! The limits are per session, not per code, and each check is one version-conditional
//! write decided on the state it replaces, so concurrent guesses cannot exceed them: at most
//! [`MAX_WRONG_CODES`] wrong codes in total (then the page refuses payment), at most
//! [`MAX_SENDS`] codes sent (the first and three resends), [`RESEND_COOLDOWN`] apart.

use std::sync::Mutex;

use chrono::{DateTime, Duration, Utc};
use paysession_domain::session::{OtpState, PaymentSession};

use crate::context::{Core, Payments};
use crate::ids::{constant_eq, new_token, sha256_hex};
use crate::ports::{SessionStore, StoreError};
use crate::sessions::{UpdateError, update_with};

/// How long a code is valid.
pub const OTP_VALIDITY: Duration = Duration::minutes(10);
/// Wrong codes a session accepts in total, over all its codes.
pub const MAX_WRONG_CODES: u32 = 5;
/// Codes a session may be sent: the first and three resends.
pub const MAX_SENDS: u32 = 4;
/// The least time between two codes.
pub const RESEND_COOLDOWN: Duration = Duration::seconds(30);

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

/// Why no code is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRefusal {
    /// No email or phone on file (outside the sandbox, nowhere to send it).
    NoContact,
    /// [`MAX_WRONG_CODES`] wrong codes were entered: this session cannot be verified.
    Locked,
    /// [`MAX_SENDS`] codes were sent already.
    Exhausted,
    /// The last code went out less than [`RESEND_COOLDOWN`] ago: retry after this long.
    Cooldown(Duration),
}

/// Whether a new code may be sent now.
pub fn may_send(session: &PaymentSession, sandbox: bool, now: DateTime<Utc>) -> Result<(), SendRefusal> {
    if destination(session).is_none() && !sandbox {
        return Err(SendRefusal::NoContact);
    }
    let Some(o) = &session.otp else { return Ok(()) };
    if o.wrong_codes >= MAX_WRONG_CODES {
        return Err(SendRefusal::Locked);
    }
    if o.sends >= MAX_SENDS {
        return Err(SendRefusal::Exhausted);
    }
    match o.last_sent_at.map(|at| at + RESEND_COOLDOWN - now) {
        Some(wait) if wait > Duration::zero() => Err(SendRefusal::Cooldown(wait)),
        _ => Ok(()),
    }
}

/// A new 6-digit code for `session` (its hash stored; in sandbox also the code itself),
/// carrying the session's counts over from its previous code.
pub fn new_code(session: &PaymentSession, sandbox: bool, now: DateTime<Utc>) -> Result<(OtpState, String), SendRefusal> {
    may_send(session, sandbox, now)?;
    let raw = u64::from_str_radix(&sha256_hex(new_token().as_bytes())[..12], 16).unwrap_or_default();
    let code = format!("{:06}", raw % 1_000_000);
    let (wrong_codes, sends) = session.otp.as_ref().map(|o| (o.wrong_codes, o.sends)).unwrap_or_default();
    let state = OtpState {
        code_hash: code_hash(session, &code),
        sandbox_code: sandbox.then(|| code.clone()),
        expires_at: now + OTP_VALIDITY,
        tries_left: MAX_WRONG_CODES - wrong_codes,
        sent_to: destination(session).unwrap_or_default(),
        wrong_codes,
        sends: sends + 1,
        last_sent_at: Some(now),
        used: false,
    };
    Ok((state, code))
}

/// A code is current while it is valid, unused and the session may still try.
pub fn has_current_code(session: &PaymentSession, now: DateTime<Utc>) -> bool {
    session.otp.as_ref().is_some_and(|o| o.expires_at > now && !o.used && o.wrong_codes < MAX_WRONG_CODES)
}

/// Whether the session used up its wrong codes: the page refuses payment.
pub fn locked(session: &PaymentSession) -> bool {
    session.otp.as_ref().is_some_and(|o| o.wrong_codes >= MAX_WRONG_CODES)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Wrong,
    /// The session used up its wrong codes.
    Locked,
    /// Expired, used, or never sent.
    Expired,
}

/// Checks a submitted code, returning the verdict and the state to store (`None`: nothing
/// changes).
pub fn check(session: &PaymentSession, submitted: &str, now: DateTime<Utc>) -> (Verdict, Option<OtpState>) {
    let Some(state) = session.otp.clone() else { return (Verdict::Expired, None) };
    if state.wrong_codes >= MAX_WRONG_CODES {
        return (Verdict::Locked, None);
    }
    if state.expires_at <= now || state.used {
        return (Verdict::Expired, None);
    }
    if constant_eq(code_hash(session, submitted.trim()).as_bytes(), state.code_hash.as_bytes()) {
        return (Verdict::Ok, Some(OtpState { used: true, ..state }));
    }
    let wrong_codes = state.wrong_codes + 1;
    let verdict = if wrong_codes >= MAX_WRONG_CODES { Verdict::Locked } else { Verdict::Wrong };
    (verdict, Some(OtpState { wrong_codes, tries_left: MAX_WRONG_CODES - wrong_codes, ..state }))
}

/// Writes the session's code state as `decide` says, deciding again on the stored state
/// after a lost race (internal bookkeeping: no events). `Ok(None)`: nothing to write.
async fn write_otp<S: SessionStore + ?Sized, T: Send>(
    cx: &Core<S>,
    session: &PaymentSession,
    decide: impl Fn(&PaymentSession, DateTime<Utc>) -> (T, Option<OtpState>),
) -> Result<(T, PaymentSession), StoreError> {
    let outcome = Mutex::new(None);
    let written = update_with(cx, session.clone(), false, |s, now| {
        let (result, state) = decide(s, now);
        *outcome.lock().unwrap_or_else(|p| p.into_inner()) = Some((result, s.clone()));
        Ok::<_, std::convert::Infallible>(state.map(|state| {
            let mut next = s.clone();
            next.otp = Some(state);
            next.version += 1;
            next
        }))
    })
    .await;
    let (result, seen) = outcome.into_inner().unwrap_or_else(|p| p.into_inner()).expect("decide ran");
    match written {
        Ok(next) => Ok((result, next.unwrap_or(seen))),
        Err(UpdateError::Store(e)) => Err(e),
        Err(UpdateError::Refused(never)) => match never {},
    }
}

/// Issues, stores and sends a new code, within the session's limits.
pub async fn send_code<S: SessionStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    session: &PaymentSession,
) -> Result<Result<PaymentSession, SendRefusal>, StoreError> {
    let sandbox = cx.config.sandbox;
    // The code of the attempt that was written (a lost race decides, and draws, again).
    let (sent, written) = write_otp(cx, session, |s, now| match new_code(s, sandbox, now) {
        Ok((state, code)) => (Ok(code), Some(state)),
        Err(refusal) => (Err(refusal), None),
    })
    .await?;
    let code = match sent {
        Ok(code) => code,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let state = written.otp.as_ref().expect("just written");
    if !state.sent_to.is_empty() {
        pay.notifier.send_code(&written.id, &mask(&state.sent_to), &code).await;
    }
    Ok(Ok(written))
}

/// Checks a submitted code: one conditional write per check.
pub async fn verify<S: SessionStore + ?Sized>(cx: &Core<S>, session: &PaymentSession, submitted: &str) -> (Verdict, PaymentSession) {
    match write_otp(cx, session, |s, now| check(s, submitted, now)).await {
        Ok(done) => done,
        Err(e) => {
            tracing::warn!(session_id = %session.id, error = %e, "one-time code check not stored");
            (Verdict::Expired, session.clone())
        }
    }
}
