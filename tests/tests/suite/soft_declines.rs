//! Soft declines of scheduled charges, end to end on the embedded store and the sandbox test
//! clock. The sandbox has no saved card that soft-declines off-session, so the processor is
//! the one stand-in here (a card network cannot run in a test): the sandbox for everything,
//! with the off-session outcomes scripted.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use paysession_app::Payments;
use paysession_app::ports::{MandateStore as _, SessionQuery, SessionStore as _};
use paysession_app::processor::{
    ActionOutcome, Answer, Outcome, PaymentCall, PaymentProcessor, RedirectMethod, RefundAnswer, RefundCall, SandboxProcessor, SavedCharge,
};
use paysession_app::recurring::{Triggered, trigger};
use paysession_domain::SessionStatus;
use paysession_domain::card::CardInput;
use paysession_domain::mandate::MandateStatus;
use paysession_tests::subscription::first_payment;

/// The sandbox, except that off-session charges take their outcomes from a script (then
/// succeed).
struct Scripted {
    off_session: Mutex<VecDeque<&'static str>>,
    sandbox: SandboxProcessor,
}

#[async_trait]
impl PaymentProcessor for Scripted {
    fn name(&self) -> &'static str {
        self.sandbox.name()
    }
    async fn authorize_card(&self, call: &PaymentCall<'_>, card: &CardInput, save: bool) -> Answer {
        self.sandbox.authorize_card(call, card, save).await
    }
    async fn complete_authentication(&self, call: &PaymentCall<'_>, approved: bool, save: bool) -> Answer {
        self.sandbox.complete_authentication(call, approved, save).await
    }
    async fn start_redirect(&self, call: &PaymentCall<'_>, method: RedirectMethod) -> Answer {
        self.sandbox.start_redirect(call, method).await
    }
    async fn provider_decision(&self, call: &PaymentCall<'_>, method: RedirectMethod, approved: bool) -> Answer {
        self.sandbox.provider_decision(call, method, approved).await
    }
    async fn settle(&self, call: &PaymentCall<'_>) -> Answer {
        self.sandbox.settle(call).await
    }
    async fn charge_saved(&self, _: &PaymentCall<'_>, _: &SavedCharge<'_>) -> Answer {
        let outcome = match self.off_session.lock().unwrap().pop_front() {
            Some(code) => Outcome::Failed { code },
            None => Outcome::Succeeded { token: None },
        };
        Answer::of(outcome, None)
    }
    async fn capture(&self, call: &PaymentCall<'_>, amount: i64) -> ActionOutcome {
        self.sandbox.capture(call, amount).await
    }
    async fn void(&self, call: &PaymentCall<'_>) -> ActionOutcome {
        self.sandbox.void(call).await
    }
    async fn refund(&self, call: &RefundCall<'_>) -> RefundAnswer {
        self.sandbox.refund(call).await
    }
    async fn sync_payment(&self, call: &PaymentCall<'_>) -> Option<Answer> {
        self.sandbox.sync_payment(call).await
    }
    async fn sync_refund(&self, call: &RefundCall<'_>) -> RefundAnswer {
        self.sandbox.sync_refund(call).await
    }
}

#[tokio::test]
async fn soft_declines_retry_after_one_three_and_five_days_then_fail_the_occurrence() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(paysession_embedded::EmbeddedStore::open_dir(dir.path()).unwrap());
    let key = paysession_app::secret::Secret::new(paysession_app::ids::random_key());
    let cx = paysession_runtime::build_core(store, key, "https://pay.example".into(), true).await.unwrap();
    let script = ["insufficient_funds", "insufficient_funds", "processing_error", "insufficient_funds", "processing_error"];
    let processor = Arc::new(Scripted { off_session: Mutex::new(script.into_iter().collect()), sandbox: SandboxProcessor::default() });
    let pay = Payments { sandbox: processor.clone(), ..Payments::sandbox() };
    let (merchant, mandate) = first_payment(&cx, &pay, "cus_soft", "4242424242424242", 12).await;
    let (m, md) = (merchant.id.as_str(), mandate.id.as_str());
    let clock = cx.test_clock.clone().unwrap();
    let go_to = |at: DateTime<Utc>| clock.advance(at - cx.clock.now() + Duration::seconds(1)).unwrap();

    // Occurrence 0: the first try and its three retries, each a day count after the last.
    let due = mandate.next_charge_at.unwrap();
    go_to(due);
    let mut tried_at = vec![cx.clock.now()];
    for (i, days) in [1, 3, 5].into_iter().enumerate() {
        let Triggered::RetryAt { occurrence: 0, at } = trigger(&cx, &pay, m, md, Some(0)).await.unwrap() else { panic!("retry {i}") };
        let off = at - (tried_at[i] + Duration::days(days));
        assert!(off >= Duration::zero() && off < Duration::seconds(1), "retry {} comes {days} day(s) after the last try, not {off}", i + 1);
        assert_eq!(cx.store.get_mandate(m, md).await.unwrap().unwrap().next_charge_at, Some(at), "the mandate waits for the retry");
        assert!(matches!(trigger(&cx, &pay, m, md, Some(0)).await.unwrap(), Triggered::NotYetDue { .. }), "not before the retry time");
        go_to(at);
        tried_at.push(cx.clock.now());
    }
    let Triggered::Failed { occurrence: 0, session_id } = trigger(&cx, &pay, m, md, Some(0)).await.unwrap() else { panic!("last retry") };
    let failed = cx.store.get_session(m, &session_id).await.unwrap().unwrap();
    assert_eq!(failed.status, SessionStatus::Failed, "no retry left: the occurrence's session fails");
    let codes: Vec<_> = failed.payments.iter().map(|a| a.failure_code.clone().unwrap()).collect();
    assert_eq!(codes, ["insufficient_funds", "insufficient_funds", "processing_error", "insufficient_funds"], "one attempt per try");
    let after = cx.store.get_mandate(m, md).await.unwrap().unwrap();
    assert_eq!((after.status, after.failed_charges_in_a_row, after.charges_count, after.next_occurrence), (MandateStatus::Active, 1, 0, 1));

    // Occurrence 1: one soft decline, then the retry succeeds and the failure streak resets.
    go_to(after.next_charge_at.unwrap());
    let Triggered::RetryAt { at, .. } = trigger(&cx, &pay, m, md, Some(1)).await.unwrap() else { panic!("a soft decline retries") };
    go_to(at);
    let Triggered::Charged { occurrence: 1, session_id } = trigger(&cx, &pay, m, md, Some(1)).await.unwrap() else { panic!("charged") };
    let paid = cx.store.get_session(m, &session_id).await.unwrap().unwrap();
    assert_eq!((paid.status, paid.payments.len()), (SessionStatus::Succeeded, 2));
    let after = cx.store.get_mandate(m, md).await.unwrap().unwrap();
    assert_eq!((after.failed_charges_in_a_row, after.charges_count, after.next_occurrence), (0, 1, 2));
    assert!(processor.off_session.lock().unwrap().is_empty(), "every scripted outcome was used");

    // One session per occurrence, whatever the number of tries.
    let query = |n: u32| SessionQuery {
        customer_id: Some("cus_soft".into()),
        reference: Some(format!("{md}-{n}")),
        limit: 10,
        now: cx.clock.now(),
        ..Default::default()
    };
    for n in [0, 1] {
        assert_eq!(cx.store.list_sessions(m, &query(n)).await.unwrap().items.len(), 1);
    }
}
