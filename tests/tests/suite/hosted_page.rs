//! The hosted page over HTTP, as a browser without JavaScript uses it.

use paysession_tests::Server;
use paysession_tests::page::Customer;
use serde_json::{Value, json};

const SHOP: &str = "https://shop.example";

async fn session(s: &Server, t: &str, extra: Value) -> Value {
    let mut body = json!({
        "amount": 1050, "currency": "EUR", "customer_id": "cus_page",
        "reference": format!("page-{}", paysession_app::ids::new_id("r")),
        "customer": {"email": "ada@example.com"}, "allowed_domains": [SHOP],
        "success_url": "https://shop.example/success", "cancel_url": "https://shop.example/cancel", "state": "st-1"
    });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = s.create(t, &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json()
}

async fn api_session(s: &Server, t: &str, id: &str) -> Value {
    s.get(&format!("/v1/payment_sessions/{id}"), t).await.json()
}

#[tokio::test]
async fn card_decline_then_success_redirects_with_state() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({})).await;
    let mut c = Customer::new(&s, &sess);
    let page = c.open_from(SHOP).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("€10.50") && page.body.contains("card_number"), "payment form shown without OTP");
    let csp = page.csp.unwrap();
    assert!(csp.contains("frame-ancestors https://shop.example") && csp.contains("script-src 'nonce-"), "{csp}");

    let declined = c.pay_card("4000000000000002").await;
    assert_eq!(declined.status, 303);
    let page = c.follow(&declined).await;
    assert!(page.body.contains("payment-error") && page.body.contains("declined"));
    let r = c.pay_card("4000000000009995").await;
    let page = c.follow(&r).await;
    assert!(page.body.contains("insufficient funds"));

    let ok = c.pay_card("4242 4242 4242 4242").await;
    assert_eq!(ok.status, 303);
    let loc = ok.location.unwrap();
    assert_eq!(loc, format!("https://shop.example/success?session_id={}&state=st-1", sess["id"].as_str().unwrap()));
    let api = api_session(&s, &t, sess["id"].as_str().unwrap()).await;
    assert_eq!(api["status"], "succeeded");
    assert_eq!(api["attempts_remaining"], 3);
    let statuses: Vec<&str> = api["payments"].as_array().unwrap().iter().map(|p| p["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["failed", "failed", "succeeded"]);
    assert_eq!(api["payments"][2]["card"]["last4"], "4242");
    // The page now shows the status, not a form.
    let after = c.get(&c.url, &[]).await;
    assert!(after.body.contains("Payment received") && !after.body.contains("card_number"));
}

#[tokio::test]
async fn five_failures_fail_the_session() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({})).await;
    let mut c = Customer::new(&s, &sess);
    c.open_from(SHOP).await;
    for _ in 0..5 {
        let r = c.pay_card("4000000000000119").await;
        assert_eq!(r.status, 303);
    }
    let api = api_session(&s, &t, sess["id"].as_str().unwrap()).await;
    assert_eq!((api["status"].as_str(), api["attempts_remaining"].as_i64()), (Some("failed"), Some(0)));
    let events = s.get(&format!("/v1/payment_sessions/{}/events", sess["id"].as_str().unwrap()), &t).await.json();
    assert!(events["data"].as_array().unwrap().iter().any(|e| e["type"] == "payment_session.failed"));
}

#[tokio::test]
async fn three_ds_approve_and_deny() {
    let s = Server::start().await;
    let t = s.token().await;
    for (decision, expected) in [("deny", "open"), ("approve", "succeeded")] {
        let sess = session(&s, &t, json!({})).await;
        let mut c = Customer::new(&s, &sess);
        c.open_from(SHOP).await;
        let r = c.pay_card("4000002760003184").await;
        assert!(r.location.as_deref().unwrap().contains("/challenge/pay_"));
        let api = api_session(&s, &t, sess["id"].as_str().unwrap()).await;
        assert_eq!(api["status"], "requires_action");
        let challenge = c.follow(&r).await;
        assert!(challenge.body.contains("3-D Secure"));
        let action = challenge.body.split("action=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
        let done = c.post(&action, &[("decision", decision)]).await;
        assert_eq!(done.status, 303);
        let api = api_session(&s, &t, sess["id"].as_str().unwrap()).await;
        assert_eq!(api["status"], expected, "{decision}");
        if decision == "deny" {
            assert_eq!(api["payments"][0]["failure_code"], "authentication_failed");
        }
    }
}

#[tokio::test]
async fn ewallet_and_bank_transfer() {
    let s = Server::start().await;
    let t = s.token().await;
    // E-wallet: approve on the wallet page.
    let sess = session(&s, &t, json!({})).await;
    let mut c = Customer::new(&s, &sess);
    c.open_from(SHOP).await;
    let r = c.post(&format!("{}/start", c.path()), &[("method", "ewallet")]).await;
    let wallet = c.follow(&r).await;
    assert!(wallet.body.contains("Sandbox e-wallet"));
    let action = wallet.body.split("action=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let done = c.post(&action, &[("decision", "approve")]).await;
    assert!(done.location.unwrap().starts_with("https://shop.example/success"));

    // Bank transfer: approve → processing → settle.
    let sess = session(&s, &t, json!({})).await;
    let id = sess["id"].as_str().unwrap().to_string();
    let mut c = Customer::new(&s, &sess);
    c.open_from(SHOP).await;
    let r = c.post(&format!("{}/start", c.path()), &[("method", "bank_transfer")]).await;
    let bank = c.follow(&r).await;
    let action = bank.body.split("action=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let approved = c.post(&action, &[("decision", "approve"), ("bank", "Sandbox Sparkasse")]).await;
    assert_eq!(api_session(&s, &t, &id).await["status"], "processing");
    let submitted = c.follow(&approved).await;
    assert!(submitted.body.contains("Transfer submitted"));
    let settled = c.post(&action, &[("decision", "settle")]).await;
    assert_eq!(settled.status, 303);
    assert_eq!(api_session(&s, &t, &id).await["status"], "succeeded");
}

#[tokio::test]
async fn virtual_account_and_qr() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({"mode": "api", "payment_methods": ["virtual_account", "qr"]})).await;
    let va = sess["instructions"]["virtual_account"]["account_number"].as_str().unwrap().to_string();
    assert!(sess["url"].is_null(), "api mode: instructions, no page");
    let wrong =
        s.http.post(s.url(&format!("/sandbox/virtual_accounts/{va}/deposits"))).json(&json!({"amount": 1000})).send().await.unwrap();
    assert_eq!(wrong.status(), 422);
    let ok = s.http.post(s.url(&format!("/sandbox/virtual_accounts/{va}/deposits"))).json(&json!({"amount": 1050})).send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<Value>().await.unwrap()["status"], "succeeded");
    let again =
        s.http.post(s.url(&format!("/sandbox/virtual_accounts/{va}/deposits"))).json(&json!({"amount": 1050})).send().await.unwrap();
    assert_eq!(again.status(), 409, "a paid single session takes no second deposit");

    // Multiple: every QR payment and deposit is received; the session stays active.
    let multi = session(&s, &t, json!({"payment_type": "multiple", "payment_methods": ["qr", "virtual_account"]})).await;
    let qr = multi["instructions"]["qr"]["payload_id"].as_str().unwrap().to_string();
    for amount in [300, 700] {
        let r = s.http.post(s.url(&format!("/sandbox/qr/{qr}/pay"))).json(&json!({"amount": amount})).send().await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let api = api_session(&s, &t, multi["id"].as_str().unwrap()).await;
    assert_eq!(api["status"], "active");
    assert_eq!(api["payments"].as_array().unwrap().len(), 2);
    let page = Customer::new(&s, &multi).open_from(SHOP).await;
    assert!(page.body.contains("qr-image") && page.body.contains("va-number"));
    assert_eq!(s.http.post(s.url("/sandbox/qr/qr_nope/pay")).json(&json!({})).send().await.unwrap().status(), 404);
}

#[tokio::test]
async fn otp_when_not_launched_from_an_allowed_domain() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({})).await;
    let id = sess["id"].as_str().unwrap().to_string();
    let mut c = Customer::new(&s, &sess);
    let gate = c.get(&c.url.clone(), &[("referer", "https://evil.example/")]).await;
    assert!(gate.body.contains("a***@example.com") && !gate.body.contains("card_number"));
    c.read_form(&gate);
    // Paying without the proof goes back to the gate.
    let sneaky = c.pay_card("4242424242424242").await;
    assert_eq!(sneaky.status, 303);
    assert_eq!(api_session(&s, &t, &id).await["payments"], json!([]));

    // Five wrong codes per session, over all its codes: a resend does not give tries back.
    let otp_path = format!("{}/otp", c.path());
    for _ in 0..4 {
        let wrong = c.post(&otp_path, &[("code", "000000"), ("action", "verify")]).await;
        assert_eq!(wrong.status, 422);
    }
    let code = s.get(&format!("/sandbox/otp?session_id={id}"), &t).await.json();
    assert_eq!(code["tries_left"], 1);
    let too_soon = c.post(&otp_path, &[("action", "resend")]).await;
    assert!(too_soon.body.contains("Wait 30 seconds"), "{}", too_soon.body);
    s.advance_clock(&t, 31).await;
    c.post(&otp_path, &[("action", "resend")]).await;
    let fresh = s.get(&format!("/sandbox/otp?session_id={id}"), &t).await.json();
    assert_ne!(fresh["code"], code["code"]);
    assert_eq!(fresh["tries_left"], 1, "the session's count carries over");
    let locked = c.post(&otp_path, &[("code", "111111"), ("action", "verify")]).await;
    assert_eq!(locked.status, 403);
    assert!(locked.body.contains("can no longer be confirmed"), "the page says why");
    let right_but_locked = c.post(&otp_path, &[("code", fresh["code"].as_str().unwrap()), ("action", "verify")]).await;
    assert_eq!(right_but_locked.status, 403, "locked for good");
    assert_eq!(c.post(&otp_path, &[("action", "resend")]).await.status, 403, "no new code either");
    assert_eq!(c.get(&c.url.clone(), &[]).await.status, 403, "the page refuses payment");
    assert_eq!(api_session(&s, &t, &id).await["payments"], json!([]));

    // A session verified with its code pays.
    let sess = session(&s, &t, json!({})).await;
    let id = sess["id"].as_str().unwrap().to_string();
    let mut c = Customer::new(&s, &sess);
    let gate = c.get(&c.url.clone(), &[]).await;
    c.read_form(&gate);
    let code = s.get(&format!("/sandbox/otp?session_id={id}"), &t).await.json();
    let ok = c.post(&format!("{}/otp", c.path()), &[("code", code["code"].as_str().unwrap()), ("action", "verify")]).await;
    assert_eq!(ok.status, 303);
    let page = c.follow(&ok).await;
    assert!(page.body.contains("card_number"));
    assert_eq!(c.pay_card("4242424242424242").await.status, 303);
    assert_eq!(api_session(&s, &t, &id).await["status"], "succeeded");
    let again = c.post(&format!("{}/otp", c.path()), &[("code", code["code"].as_str().unwrap()), ("action", "verify")]).await;
    assert_eq!(again.status, 422, "a used code does not verify twice");

    // Asked for before the page is opened (the README's order), the code is issued then,
    // and the page opened afterwards asks for that very code.
    let sess3 = session(&s, &t, json!({})).await;
    let early = s.get(&format!("/sandbox/otp?session_id={}", sess3["id"].as_str().unwrap()), &t).await;
    assert_eq!(early.status, 200, "{}", early.text);
    let mut c3 = Customer::new(&s, &sess3);
    let gate = c3.get(&c3.url.clone(), &[]).await;
    assert!(gate.body.contains("a***@example.com"), "the gate shows where the code went");
    c3.read_form(&gate);
    let ok = c3.post(&format!("{}/otp", c3.path()), &[("code", early.json()["code"].as_str().unwrap()), ("action", "verify")]).await;
    assert_eq!(ok.status, 303, "the early code verifies");
    let paid = session(&s, &t, json!({})).await;
    let paid_id = paid["id"].as_str().unwrap();
    s.post(&format!("/v1/payment_sessions/{paid_id}/cancel"), &t, &json!({})).await;
    let none = s.get(&format!("/sandbox/otp?session_id={paid_id}"), &t).await;
    assert_eq!(none.status, 404, "a cancelled session gets no code");
    assert!(none.text.contains("cancelled"), "{}", none.text);

    // Ten minutes later a code has expired.
    let sess2 = session(&s, &t, json!({})).await;
    let mut c2 = Customer::new(&s, &sess2);
    let gate = c2.get(&c2.url.clone(), &[]).await;
    c2.read_form(&gate);
    let code = s.get(&format!("/sandbox/otp?session_id={}", sess2["id"].as_str().unwrap()), &t).await.json();
    s.advance_clock(&t, 601).await;
    let late = c2.post(&format!("{}/otp", c2.path()), &[("code", code["code"].as_str().unwrap()), ("action", "verify")]).await;
    assert!(late.body.contains("expired"), "{}", late.status);
}

/// At most four codes per session (the first and three resends), 30 s apart; 40 concurrent
/// wrong guesses on one code are checked one conditional write at a time, so exactly four
/// are answered "wrong" and the fifth locks the session.
#[tokio::test]
async fn otp_limits_hold_per_session_and_under_concurrency() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({})).await;
    let id = sess["id"].as_str().unwrap().to_string();
    let mut c = Customer::new(&s, &sess);
    let gate = c.get(&c.url.clone(), &[]).await;
    c.read_form(&gate);
    let otp_path = format!("{}/otp", c.path());
    for _ in 0..3 {
        s.advance_clock(&t, 31).await;
        let resent = c.post(&otp_path, &[("action", "resend")]).await;
        assert_eq!(resent.status, 200, "{}", resent.body);
    }
    s.advance_clock(&t, 31).await;
    let fifth = c.post(&otp_path, &[("action", "resend")]).await;
    assert!(fifth.body.contains("No more new codes"), "{}", fifth.body);
    let current = s.get(&format!("/sandbox/otp?session_id={id}"), &t).await.json();

    let guesses = (0..40).map(|i| {
        let (c, path) = (&c, &otp_path);
        async move { c.post(path, &[("code", &format!("{:06}", 100_000 + i)), ("action", "verify")]).await.status }
    });
    let statuses = futures::future::join_all(guesses).await;
    let wrong = statuses.iter().filter(|&&st| st == 422).count();
    let locked = statuses.iter().filter(|&&st| st == 403).count();
    assert_eq!((wrong, locked), (4, 36), "{statuses:?}");
    let right = c.post(&otp_path, &[("code", current["code"].as_str().unwrap()), ("action", "verify")]).await;
    assert_eq!(right.status, 403, "the limit held: the right code no longer helps");
}

/// A sandbox session with no email or phone says so, instead of a made-up destination.
#[tokio::test]
async fn otp_without_contact_says_so() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({"customer": {"name": "Ada"}})).await;
    let c = Customer::new(&s, &sess);
    let gate = c.get(&c.url.clone(), &[]).await;
    assert!(gate.body.contains("No email address or phone number is on file"), "{}", gate.body);
    assert!(!gate.body.contains("san**ox"));
}

#[tokio::test]
async fn app_webviews_use_app_id() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({"allowed_domains": ["com.shop.app"]})).await;
    let c = Customer::new(&s, &sess);
    let ok = c.get(&format!("{}?app_id=com.shop.app", c.url), &[]).await;
    assert!(ok.body.contains("card_number"));
    let other = c.get(&format!("{}?app_id=com.evil.app", c.url), &[]).await;
    assert!(!other.body.contains("card_number"));
    assert!(ok.csp.unwrap().contains("frame-ancestors 'none'"), "app ids are not web origins");
}

#[tokio::test]
async fn csrf_expiry_confirmation_and_status_pages() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({})).await;
    let mut c = Customer::new(&s, &sess);
    c.open_from(SHOP).await;
    c.csrf = "forged".into();
    assert_eq!(c.pay_card("4242424242424242").await.status, 403);

    let unconfirmed = session(&s, &t, json!({"auto_confirm": false})).await;
    let u = Customer::new(&s, &unconfirmed).open_from(SHOP).await;
    assert_eq!(u.status, 409);

    let cancelled = session(&s, &t, json!({})).await;
    s.post(&format!("/v1/payment_sessions/{}/cancel", cancelled["id"].as_str().unwrap()), &t, &json!({})).await;
    let page = Customer::new(&s, &cancelled).open_from(SHOP).await;
    assert!(page.body.contains("cancelled") && page.body.contains("https://shop.example/cancel"));

    assert_eq!(c.get(&format!("{}/pay/nonexistent", s.base), &[]).await.status, 404);
    s.advance_clock(&t, 16 * 60).await;
    let expired = c.get(&c.url.clone(), &[("referer", SHOP)]).await;
    assert_eq!(expired.status, 410);
    assert!(expired.body.contains("expired"));
}

#[tokio::test]
async fn german_locale() {
    let s = Server::start().await;
    let t = s.token().await;
    let sess = session(&s, &t, json!({"locale": "de", "amount": 123456, "items": null})).await;
    let page = Customer::new(&s, &sess).open_from(SHOP).await;
    assert!(page.body.contains(r#"<html lang="de">"#) && page.body.contains("1.234,56 €") && page.body.contains("Kartennummer"));
}

#[tokio::test]
async fn two_tabs_paying_at_once_charge_once() {
    let s = Server::start().await;
    let t = s.token().await;
    for _ in 0..5 {
        let sess = session(&s, &t, json!({})).await;
        let mut a = Customer::new(&s, &sess);
        a.open_from(SHOP).await;
        let mut b = Customer::new(&s, &sess);
        b.open_from(SHOP).await;
        let (ra, rb) = tokio::join!(a.pay_card("4242424242424242"), b.pay_card("4242424242424242"));
        let wins =
            [&ra, &rb].iter().filter(|r| r.location.as_deref().is_some_and(|l| l.starts_with("https://shop.example/success"))).count();
        assert_eq!(wins, 1, "{} {:?} / {} {:?}", ra.status, ra.location, rb.status, rb.location);
        let api = api_session(&s, &t, sess["id"].as_str().unwrap()).await;
        assert_eq!(api["payments"].as_array().unwrap().len(), 1, "the processor was reached once");
        assert_eq!(api["status"], "succeeded");
    }
}

#[tokio::test]
async fn saved_cards_are_offered_and_reused() {
    let s = Server::start().await;
    let t = s.token().await;
    let first = session(&s, &t, json!({"save_payment_method": "prompt"})).await;
    let mut c = Customer::new(&s, &first);
    let page = c.open_from(SHOP).await;
    assert!(page.body.contains(r#"name="save""#));
    let r = c
        .post(&format!("{}/card", c.path()), &[("card_number", "4242424242424242"), ("expiry", "12/30"), ("cvc", "123"), ("save", "on")])
        .await;
    assert_eq!(r.status, 303);
    let api = api_session(&s, &t, first["id"].as_str().unwrap()).await;
    let pm = api["payment_method_id"].as_str().unwrap().to_string();
    assert!(pm.starts_with("pm_"));

    let second = session(&s, &t, json!({"show_saved_payment_methods": true})).await;
    let mut c2 = Customer::new(&s, &second);
    let page = c2.open_from(SHOP).await;
    assert!(page.body.contains("•••• 4242") && page.body.contains(&pm));
    let r = c2.post(&format!("{}/card", c2.path()), &[("saved_method", &pm)]).await;
    assert!(r.location.unwrap().starts_with("https://shop.example/success"));
}

#[tokio::test]
async fn card_numbers_never_reach_storage_or_logs() {
    let s = Server::start().await;
    let t = s.token().await;
    let cards = ["4242424242424242", "4000000000000002", "4000002760003184", "4000000000000341"];
    for card in cards {
        let sess = session(&s, &t, json!({"save_payment_method": "always", "session_type": "first_in_series"})).await;
        let mut c = Customer::new(&s, &sess);
        c.open_from(SHOP).await;
        c.pay_card(card).await;
    }
    let store = paysession_embedded::EmbeddedStore::open_dir(&s.dir).unwrap();
    let dump = store.dump_all_text().await.unwrap();
    assert!(dump.contains("4242"), "the audit reads real rows (last4 is kept)");
    for card in cards {
        assert!(!dump.contains(card), "PAN {card} found in storage");
        assert!(!dump.contains(&card[..12]), "a PAN prefix of {card} found in storage");
    }
    // WAL and database files on disk, byte for byte.
    for entry in std::fs::read_dir(&s.dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        for card in cards {
            assert!(!bytes.windows(card.len()).any(|w| w == card.as_bytes()), "PAN {card} in a data file");
        }
    }
}

/// A first_in_series payment shows the mandate terms, and its success creates the mandate
/// and saves the card in the same write, recording the customer's acceptance; the 3-D
/// Secure path does too. Only cards are offered for a first payment.
#[tokio::test]
async fn first_payment_creates_the_mandate_with_the_acceptance() {
    let s = Server::start().await;
    let t = s.token().await;
    let start = (chrono::Utc::now() + chrono::Duration::days(3)).date_naive();
    let mandate = json!({"type": "scheduled", "schedule": {"interval": "month", "interval_count": 1, "start_date": start.to_string(), "max_charges": 12}});
    let store = s.running.as_ref().unwrap().local.app.core.store.clone();
    for card in ["4242424242424242", "4000002760003184"] {
        let sess =
            session(&s, &t, json!({"session_type": "first_in_series", "mandate": mandate, "customer_id": format!("cus_{card}")})).await;
        let id = sess["id"].as_str().unwrap();
        let mut c = Customer::new(&s, &sess);
        let page = c.open_from(SHOP).await;
        assert!(page.body.contains(r#"id="mandate-terms""#), "the terms are shown before paying");
        assert!(page.body.contains("every month, first on") && page.body.contains("at most 12 times"), "{}", page.body);
        assert!(!page.body.contains(r#"name="method" value="ewallet""#), "a first payment offers cards only");
        let ewallet = c.post(&format!("{}/start", c.path()), &[("method", "ewallet")]).await;
        assert_eq!(ewallet.status, 303);
        assert!(api_session(&s, &t, id).await["payments"].as_array().unwrap().is_empty(), "no e-wallet attempt was claimed");

        let form: Vec<(&str, &str)> = vec![("csrf", &c.csrf), ("v", &c.proof), ("card_number", card), ("expiry", "12/30"), ("cvc", "123")];
        let r = c
            .http
            .post(format!("{}{}/card", c.base, c.path()))
            .header("user-agent", "PaysessionTest/1.0")
            .header("x-forwarded-for", "198.51.100.23")
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303);
        if card == "4000002760003184" {
            let location = r.headers()["location"].to_str().unwrap().to_string();
            let challenge = c.get(&format!("{}{location}", c.base), &[]).await;
            let action = challenge.body.split("action=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
            assert_eq!(c.post(&action, &[("decision", "approve")]).await.status, 303);
        }
        let api = api_session(&s, &t, id).await;
        assert_eq!(api["status"], "succeeded", "{card}");
        let md_id = api["mandate_id"].as_str().expect("the session names its mandate");
        let pm_id = api["payment_method_id"].as_str().expect("and the saved card");
        let m = store.get_mandate(&store_merchant(&s).await, md_id).await.unwrap().expect("the mandate exists");
        assert_eq!(m.status, paysession_domain::mandate::MandateStatus::Active);
        assert_eq!((m.payment_method_id.as_str(), m.origin_session_id.as_str()), (pm_id, id));
        assert_eq!(m.amount.map(|a| a.minor()), Some(1050));
        assert_eq!(m.next_charge_at.unwrap().date_naive(), start);
        assert_eq!(m.customer_acceptance.ip_address.as_deref(), Some("198.51.100.23"));
        if card == "4242424242424242" {
            assert_eq!(m.customer_acceptance.user_agent.as_deref(), Some("PaysessionTest/1.0"));
        }
        let events = s.get(&format!("/v1/payment_sessions/{id}/events"), &t).await.json();
        let types: Vec<&str> = events["data"].as_array().unwrap().iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert!(types.contains(&"mandate.created") && types.contains(&"payment_method.attached"), "{types:?}");
        assert!(types.contains(&"payment_session.succeeded"));
    }
}

/// The demo merchant's id, as the store keys it.
async fn store_merchant(s: &Server) -> String {
    s.running.as_ref().unwrap().demo.merchant_id.clone()
}

/// Off-session charges under a mandate: `POST /v1/payment_sessions` with `next_in_series`
/// charges the saved card with no customer present and answers 201 with the final status;
/// the mandate's rules are checked field by field; the 0341 card saves fine and declines
/// every off-session charge; a suspended mandate charges nothing.
#[tokio::test]
async fn next_in_series_charges_the_saved_card_off_session() {
    let s = Server::start().await;
    let t = s.token().await;
    let mut mandates = Vec::new();
    for card in ["4242424242424242", "4000000000000341"] {
        let customer = format!("cus_ns_{card}");
        let first = session(
            &s,
            &t,
            json!({"session_type": "first_in_series", "customer_id": customer,
            "mandate": {"type": "on_demand", "max_amount": 5000}}),
        )
        .await;
        let mut c = Customer::new(&s, &first);
        c.open_from(SHOP).await;
        assert_eq!(c.pay_card(card).await.status, 303);
        let api = api_session(&s, &t, first["id"].as_str().unwrap()).await;
        assert_eq!(api["status"], "succeeded");
        mandates.push((customer, api["mandate_id"].as_str().unwrap().to_string(), api["payment_method_id"].as_str().unwrap().to_string()));
    }
    let charge = |customer: &str, mandate: &str, amount: i64, currency: &str| {
        json!({"session_type": "next_in_series", "mandate_id": mandate, "customer_id": customer, "amount": amount,
               "currency": currency, "reference": format!("ns-{}", paysession_app::ids::new_id("r"))})
    };
    let (good_customer, good_mandate, good_pm) = &mandates[0];
    let r = s.create(&t, &charge(good_customer, good_mandate, 4200, "EUR")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let body = r.json();
    assert_eq!(body["status"], "succeeded");
    assert_eq!(body["payment_method_id"], good_pm.as_str());
    assert_eq!(body["payments"][0]["status"], "succeeded");
    assert!(body["url"].is_null(), "no customer, no page");

    let (bad_customer, bad_mandate, _) = &mandates[1];
    let r = s.create(&t, &charge(bad_customer, bad_mandate, 1000, "EUR")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!((r.json()["status"].as_str(), r.json()["payments"][0]["failure_code"].as_str()), (Some("failed"), Some("card_declined")));

    let refused = [
        (charge(good_customer, "md_unknown", 100, "EUR"), "mandate_id", "not_found"),
        (charge(bad_customer, good_mandate, 100, "EUR"), "mandate_id", "customer_mismatch"),
        (charge(good_customer, good_mandate, 100, "USD"), "mandate_id", "currency_mismatch"),
        (charge(good_customer, good_mandate, 5001, "EUR"), "amount", "over_mandate_limit"),
    ];
    for (body, field, code) in refused {
        let r = s.create(&t, &body).await;
        assert_eq!(r.status, 422, "{}", r.text);
        assert_eq!(r.error_fields(), vec![(field.to_string(), code.to_string())], "{}", r.text);
    }

    // A suspended mandate charges nothing.
    let suspended = s.post(&format!("/v1/mandates/{good_mandate}/suspend"), &t, &json!({})).await;
    assert_eq!(suspended.status, 200, "{}", suspended.text);
    let r = s.create(&t, &charge(good_customer, good_mandate, 100, "EUR")).await;
    assert_eq!(r.error_fields(), vec![("mandate_id".to_string(), "inactive".to_string())], "{}", r.text);
}
