//! The connector's response mappers on Stripe's own published fixtures
//! (tests/fixtures/stripe, from stripe/openapi's fixtures3.json): each object parses as
//! Stripe sends it, and each state it can be in maps to ours.

use paysession_app::processor::{Outcome, RefundOutcome};
use paysession_domain::refund::RefundStatus;
use paysession_runtime::outbound::stripe::transformers::{self, Event, PaymentIntent, Refund, StripeDispute};
use serde_json::{Value, json};

fn fixture(name: &str) -> Value {
    let all: Value =
        serde_json::from_str(include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/stripe/fixtures3-excerpt.json"))).unwrap();
    all[name].clone()
}

fn with(mut base: Value, changes: Value) -> Value {
    for (k, v) in changes.as_object().unwrap() {
        base[k] = v.clone();
    }
    base
}

fn outcome(pi: Value) -> Outcome {
    let pi: PaymentIntent = serde_json::from_value(pi).unwrap();
    transformers::answer(&pi, &|_| {}).outcome
}

#[test]
fn payment_intents_map_by_status() {
    let base = fixture("payment_intent");
    let parsed: PaymentIntent = serde_json::from_value(base.clone()).unwrap();
    assert_eq!(parsed.id, "pi_1PgafyB7WZ01zgkWSjxsAJo3");
    // As published: back at requires_payment_method with an error that is no decline.
    assert_eq!(outcome(base.clone()), Outcome::Failed { code: "processing_error" });
    let cases = [
        (json!({"status": "succeeded"}), Outcome::Succeeded { token: None }),
        (json!({"status": "requires_capture", "capture_method": "manual"}), Outcome::Succeeded { token: None }),
        (json!({"status": "processing"}), Outcome::Processing),
        (json!({"status": "requires_confirmation"}), Outcome::Unknown),
        (json!({"status": "canceled"}), Outcome::Failed { code: "processing_error" }),
        (
            json!({"status": "requires_payment_method", "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "insufficient_funds"}}),
            Outcome::Failed { code: "insufficient_funds" },
        ),
        (
            json!({"status": "requires_payment_method", "last_payment_error": {"type": "card_error", "code": "card_declined", "decline_code": "do_not_honor"}}),
            Outcome::Failed { code: "card_declined" },
        ),
        (
            json!({"status": "requires_action", "next_action": {"type": "redirect_to_url", "redirect_to_url": {"url": "https://hooks.stripe.com/3d_secure_2/x", "return_url": "https://pay.example/r"}}}),
            Outcome::RequiresAction,
        ),
        // An action only Stripe.js performs: the page cannot, so authentication is required.
        (
            json!({"status": "requires_action", "next_action": {"type": "use_stripe_sdk"}}),
            Outcome::Failed { code: "authentication_required" },
        ),
    ];
    for (changes, want) in cases {
        assert_eq!(outcome(with(base.clone(), changes.clone())), want, "{changes}");
    }
    // A saved method's token, and the network id from the expanded charge (Stripe's charge fixture).
    let charge = with(
        fixture("charge"),
        json!({"payment_method_details": {"type": "card", "card": {"network_transaction_id": "ntid_123", "last4": "4242"}}}),
    );
    let saved: PaymentIntent = serde_json::from_value(with(
        base,
        json!({"status": "succeeded", "customer": "cus_1", "payment_method": "pm_1", "setup_future_usage": "off_session", "latest_charge": charge}),
    ))
    .unwrap();
    let answer = transformers::answer(&saved, &|_| {});
    assert_eq!(answer.outcome, Outcome::Succeeded { token: Some("cus_1/pm_1".into()) });
    assert_eq!(answer.network_transaction_id.as_deref(), Some("ntid_123"));
}

#[test]
fn an_unknown_decline_code_is_reported_to_the_caller() {
    let pi: PaymentIntent = serde_json::from_value(with(
        fixture("payment_intent"),
        json!({"last_payment_error": {"type": "card_error", "code": "brand_new_code"}}),
    ))
    .unwrap();
    let seen = std::cell::RefCell::new(Vec::new());
    let answer = transformers::answer(&pi, &|c| seen.borrow_mut().push(c.to_string()));
    assert_eq!(answer.outcome, Outcome::Failed { code: "processing_error" });
    assert_eq!(seen.into_inner(), ["brand_new_code"]);
}

#[test]
fn refunds_map_by_status() {
    let base = fixture("refund");
    for (status, reason, want) in [
        ("succeeded", None, RefundStatus::Succeeded),
        ("pending", None, RefundStatus::Pending),
        ("requires_action", None, RefundStatus::RequiresAction),
        ("canceled", None, RefundStatus::Canceled),
        ("failed", Some("expired_or_canceled_card"), RefundStatus::Failed),
    ] {
        let r: Refund = serde_json::from_value(with(base.clone(), json!({"status": status, "failure_reason": reason}))).unwrap();
        let said = transformers::refund_answer(&r);
        assert_eq!(said.outcome, RefundOutcome::Known { status: want, failure_reason: reason.map(str::to_string) }, "{status}");
        assert_eq!(said.reference.as_deref(), Some("re_1Pgc72B7WZ01zgkWqPvrRrPE"));
        assert_eq!(said.check_after.is_some(), status == "pending", "only a pending refund is asked about again");
    }
}

#[test]
fn events_and_disputes_parse_as_published() {
    let event: Event = serde_json::from_value(fixture("event")).unwrap();
    assert_eq!((event.id.as_str(), event.kind.as_str()), ("evt_1Pgc76B7WZ01zgkWwyRHS12y", "plan.created"));
    let d: StripeDispute = serde_json::from_value(with(fixture("dispute"), json!({"payment_intent": "pi_1"}))).unwrap();
    let ours = transformers::dispute(&d);
    assert_eq!((ours.amount, ours.created_at.timestamp()), (1000, 1_234_567_890));
    assert_eq!(d.payment_intent.unwrap().id(), Some("pi_1"));
}
