//! Virtual-account numbers are hashes of the session id, so two sessions can draw the same
//! one. The embedded store refuses the second create and the create draws another number;
//! the DynamoDB store cannot guard the number, so a deposit to it is refused, never guessed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use paysession_app::merchants::{NewMerchant, provision};
use paysession_app::ports::{IdempotencyCompletion, Page, SessionQuery, SessionStore, SettingsStore, StoreError};
use paysession_app::sessions;
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::payment::SavedPaymentMethod;
use paysession_domain::session::{EventRecord, PaymentSession, events_for};
use paysession_domain::{MerchantPolicy, SessionStatus, parse_create_session};
use paysession_embedded::EmbeddedStore;
use paysession_http::Route;
use paysession_http::lambda_http::Body;
use paysession_http::mount::{Mounted, invoke};
use paysession_runtime::{build_core, decode_key};
use paysession_tests::lambda_json;
use serde_json::json;

const KEY_B64: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// A session of `merchant` showing `number`.
fn twin(merchant: &str, number: &str) -> PaymentSession {
    let policy = MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
    let body = json!({"amount": 700, "currency": "EUR", "customer_id": "cus_twin", "reference": format!("twin-{number}")});
    let now = chrono::Utc::now();
    let mut s = PaymentSession::create(parse_create_session(&body, now, &policy).unwrap(), merchant.into(), now);
    paysession_app::sessions::add_instructions(&mut s, 0);
    s.instructions.virtual_account.as_mut().unwrap().account_number = number.into();
    s
}

/// The real embedded store, except that before the first create it reaches, another
/// session takes that create's virtual-account number.
struct NumberTakenFirst {
    inner: EmbeddedStore,
    planted: AtomicBool,
    first_number: std::sync::Mutex<Option<String>>,
}

#[async_trait]
impl SessionStore for NumberTakenFirst {
    async fn create_session(
        &self,
        s: &PaymentSession,
        events: &[EventRecord],
        i: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        if !self.planted.swap(true, Ordering::SeqCst) {
            let number = s.virtual_account_number().expect("the create shows a virtual account");
            let other = twin("mer_other", number);
            self.inner
                .create_session(&other, &events_for(None, &other, other.created_at, || paysession_app::ids::new_id("evt")), None)
                .await?;
            *self.first_number.lock().unwrap() = Some(number.to_string());
        }
        self.inner.create_session(s, events, i).await
    }
    async fn update_session(
        &self,
        s: &PaymentSession,
        v: u64,
        e: &[EventRecord],
        i: Option<&IdempotencyCompletion>,
    ) -> Result<(), StoreError> {
        self.inner.update_session(s, v, e, i).await
    }
    async fn get_session(&self, m: &str, id: &str) -> Result<Option<PaymentSession>, StoreError> {
        self.inner.get_session(m, id).await
    }
    async fn list_sessions(&self, m: &str, q: &SessionQuery) -> Result<Page<PaymentSession>, StoreError> {
        self.inner.list_sessions(m, q).await
    }
    async fn session_events(&self, m: &str, id: &str) -> Result<Vec<EventRecord>, StoreError> {
        self.inner.session_events(m, id).await
    }
    async fn find_by_virtual_account(&self, number: &str) -> Result<Option<PaymentSession>, StoreError> {
        self.inner.find_by_virtual_account(number).await
    }
    async fn save_payment_method(&self, m: &SavedPaymentMethod) -> Result<(), StoreError> {
        self.inner.save_payment_method(m).await
    }
    async fn list_payment_methods(&self, m: &str, c: &str) -> Result<Vec<SavedPaymentMethod>, StoreError> {
        self.inner.list_payment_methods(m, c).await
    }
}

#[async_trait]
impl SettingsStore for NumberTakenFirst {
    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        self.inner.get_setting(key).await
    }
    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.inner.put_setting(key, value).await
    }
    async fn add_to_setting(&self, key: &str, start: i64, delta: i64, max: i64) -> Result<Option<i64>, StoreError> {
        self.inner.add_to_setting(key, start, delta, max).await
    }
}

#[tokio::test]
async fn a_create_whose_number_is_taken_draws_another_number() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(NumberTakenFirst {
        inner: EmbeddedStore::open_dir(dir.path()).unwrap(),
        planted: AtomicBool::new(false),
        first_number: Default::default(),
    });
    let cx = build_core(store.clone(), decode_key(KEY_B64, "key").unwrap(), "https://pay.example".into(), false).await.unwrap();
    let merchant = paysession_app::merchants::Merchant {
        id: "mer_va".into(),
        name: "VA".into(),
        display_name: "VA".into(),
        brand_color: "#000000".into(),
        redirect_urls: vec![],
        payment_methods: PaymentMethodKind::ALL.to_vec(),
        created_at: chrono::Utc::now(),
    };
    let body = json!({"amount": 1050, "currency": "EUR", "customer_id": "cus_1", "reference": "va-taken", "mode": "api"});
    let spec = parse_create_session(&body, cx.clock.now(), &merchant.policy()).unwrap();
    let created = sessions::create(&cx, &merchant, spec, |s, _| (s.clone(), None)).await.expect("the create succeeds with another number");

    let first = store.first_number.lock().unwrap().clone().expect("the first draw reached the store");
    let number = created.virtual_account_number().unwrap();
    assert_ne!(number, first, "another number was drawn");
    let key = paysession_domain::session::reference_key("mer_va", "cus_1", "va-taken");
    assert_eq!(paysession_domain::session::id_reference_key(&created.id), Some(key.as_str()), "the id carries the reference's key");
    let stored = store.get_session("mer_va", &created.id).await.unwrap().expect("the session is stored");
    assert_eq!(stored, created);
    let events = store.session_events("mer_va", &created.id).await.unwrap();
    assert_eq!(events.len(), 1, "nothing of the first draw was kept");
    assert_eq!(
        events[0].data.to_value()["object"]["instructions"]["virtual_account"]["account_number"],
        number,
        "the event shows the number kept"
    );
    assert_eq!(store.find_by_virtual_account(number).await.unwrap().map(|s| s.id), Some(created.id.clone()));
    assert_eq!(store.find_by_virtual_account(&first).await.unwrap().map(|s| s.merchant_id), Some("mer_other".into()));
}

#[tokio::test]
async fn a_deposit_to_a_number_of_two_sessions_is_refused_on_dynamodb() {
    let store = Arc::new(paysession_tests::dynamo::fresh_table().await);
    let core = build_core(store.clone(), decode_key(KEY_B64, "key").unwrap(), "https://pay.example".into(), true).await.unwrap();
    let merchant =
        provision(store.as_ref(), &core.keys, &NewMerchant { name: "VA".into(), ..Default::default() }, None, chrono::Utc::now())
            .await
            .unwrap()
            .merchant;
    let deps = Mounted { core, payments: paysession_app::Payments::sandbox(), queue: Arc::new(paysession_app::ports::PolledQueue) };
    let first = twin(&merchant.id, "8808000000000042");
    let second = twin("mer_other", "8808000000000042");
    for s in [&first, &second] {
        store.create_session(s, &events_for(None, s, s.created_at, || paysession_app::ids::new_id("evt")), None).await.unwrap();
    }
    // The index behind the lookup is eventually consistent: wait until it shows both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while store.find_by_virtual_account("8808000000000042").await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the index never showed both sessions");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let req = http::Request::builder()
        .method("POST")
        .uri("/sandbox/virtual_accounts/8808000000000042/deposits")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"amount": 700}"#))
        .unwrap();
    let resp = invoke(Route::SandboxDeposit, &deps, req).await;
    let problem = lambda_json(&resp);
    assert_eq!(resp.status(), 409, "{problem}");
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    assert_eq!(problem["code"], "virtual_account_ambiguous");
    assert!(problem["detail"].as_str().unwrap().contains("not credited"), "{problem}");
    for s in [&first, &second] {
        let now = store.get_session(&s.merchant_id, &s.id).await.unwrap().unwrap();
        assert_eq!((now.status, now.version), (SessionStatus::Open, 1), "neither session was paid");
    }
}
