//! A monthly subscription's first payment through the use cases the hosted page calls, on
//! any store: the merchant, the paid `first_in_series` session, its mandate.

use chrono::Utc;
use paysession_app::entities::Merchant;
use paysession_app::merchants::{NewMerchant, provision};
use paysession_app::payments::{CardSource, pay_card};
use paysession_app::ports::{MandateStore, MerchantStore, SessionStore};
use paysession_app::{Core, Payments, sessions};
use paysession_domain::mandate::{CustomerAcceptance, Mandate};
use paysession_domain::parse_create_session;
use serde_json::json;

/// Provisions a merchant and pays the first payment of a monthly mandate (starting
/// tomorrow, `max_charges` scheduled charges) with `card`.
pub async fn first_payment<S: SessionStore + MandateStore + MerchantStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    customer: &str,
    card: &str,
    max_charges: u32,
) -> (Merchant, Mandate) {
    let merchant =
        provision(cx.store.as_ref(), &cx.keys, &NewMerchant { name: "Subscriptions".into(), ..Default::default() }, None, Utc::now())
            .await
            .unwrap()
            .merchant;
    let now = cx.clock.now();
    let start = (now + chrono::Duration::days(1)).date_naive();
    let body = json!({
        "amount": 990, "currency": "EUR", "customer_id": customer, "reference": paysession_app::ids::new_id("first"),
        "session_type": "first_in_series",
        "mandate": {"type": "scheduled", "schedule": {"interval": "month", "interval_count": 1, "start_date": start.to_string(), "max_charges": max_charges}}
    });
    let spec = parse_create_session(&body, now, &merchant.policy()).unwrap();
    let session = sessions::create(cx, &merchant, spec, |s, _| (s.clone(), None)).await.unwrap();
    let card = paysession_domain::card::parse_card(card, "12/34", "123", now).unwrap();
    let acceptance = CustomerAcceptance { accepted_at: now, ip_address: Some("203.0.113.5".into()), user_agent: Some("test".into()) };
    pay_card(cx, pay, session.clone(), CardSource::Typed(card), false, Some(acceptance), "/pay/x").await.unwrap();
    let paid = cx.store.get_session(&merchant.id, &session.id).await.unwrap().unwrap();
    let md = paid.spec.mandate_id.expect("the first payment created a mandate");
    let mandate = cx.store.get_mandate(&merchant.id, &md).await.unwrap().unwrap();
    (merchant, mandate)
}
