//! Detaching a saved method when the process dies half-way: no active mandate is ever left
//! charging a method that is gone, and one left so by an earlier release is revoked by the
//! next trigger of its charge.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use paysession_app::ports::{
    IdempotencyCompletion, MandateQuery, MandateStore, MerchantStore, Page, SessionQuery, SessionStore, SettingsStore, StoreError,
};
use paysession_app::{Payments, mandates, recurring};
use paysession_domain::SessionStatus;
use paysession_domain::mandate::{Mandate, MandateStatus};
use paysession_domain::payment::SavedPaymentMethod;
use paysession_domain::session::{EventRecord, PaymentSession};
use paysession_embedded::EmbeddedStore;
use paysession_runtime::{build_core, decode_key};
use paysession_tests::contract::{Stores, insert, mandate, saved_method, session};

const KEY_B64: &str = "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDE=";

/// The embedded store, whose mandate writes fail while `crash` is set: the process died
/// before the write reached the store.
struct CrashOnMandateWrite {
    inner: Arc<EmbeddedStore>,
    crash: AtomicBool,
}

#[async_trait]
impl MandateStore for CrashOnMandateWrite {
    async fn complete_first_payment(
        &self,
        s: &PaymentSession,
        v: u64,
        e: &[EventRecord],
        m: &SavedPaymentMethod,
        md: &Mandate,
    ) -> Result<(), StoreError> {
        self.inner.complete_first_payment(s, v, e, m, md).await
    }
    async fn get_mandate(&self, m: &str, id: &str) -> Result<Option<Mandate>, StoreError> {
        self.inner.get_mandate(m, id).await
    }
    async fn list_mandates(&self, m: &str, q: &MandateQuery) -> Result<Page<Mandate>, StoreError> {
        self.inner.list_mandates(m, q).await
    }
    async fn update_mandate(&self, m: &Mandate, v: u64, e: &[EventRecord]) -> Result<(), StoreError> {
        if self.crash.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the process died here".into()));
        }
        self.inner.update_mandate(m, v, e).await
    }
    async fn delete_payment_method(&self, m: &SavedPaymentMethod, e: &[EventRecord]) -> Result<bool, StoreError> {
        self.inner.delete_payment_method(m, e).await
    }
}

#[async_trait]
impl SessionStore for CrashOnMandateWrite {
    async fn create_session(&self, s: &PaymentSession, e: &[EventRecord], i: Option<&IdempotencyCompletion>) -> Result<(), StoreError> {
        self.inner.create_session(s, e, i).await
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
impl SettingsStore for CrashOnMandateWrite {
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

/// A first payment of `customer` that saved `pm_1` and created `mandate`.
async fn paid_with_mandate(store: &Arc<EmbeddedStore>, mandate: &Mandate, at: DateTime<Utc>) {
    let st = Stores::from_arc(store.clone());
    let s = session(&mandate.merchant_id, &mandate.customer_id, &format!("first-{}", mandate.id), at);
    insert(&st, &s).await.unwrap();
    let mut paid = s.clone();
    paid.status = SessionStatus::Succeeded;
    paid.version += 1;
    let method = saved_method("pm_1", &mandate.merchant_id, &mandate.customer_id);
    store.complete_first_payment(&paid, s.version, &[], &method, mandate).await.unwrap();
}

/// Every active mandate of the customer charges a method that exists.
async fn no_orphans(store: &EmbeddedStore) {
    let methods: Vec<String> = store.list_payment_methods("mer_a", "cus_1").await.unwrap().into_iter().map(|m| m.id).collect();
    let query = MandateQuery { customer_id: Some("cus_1".into()), limit: 100, ..Default::default() };
    for m in store.list_mandates("mer_a", &query).await.unwrap().items {
        assert!(
            m.status != MandateStatus::Active || methods.contains(&m.payment_method_id),
            "{} is active on {}, which is gone",
            m.id,
            m.payment_method_id
        );
    }
}

#[tokio::test]
async fn a_detach_that_dies_half_way_leaves_no_active_mandate_on_a_gone_method() {
    let dir = tempfile::tempdir().unwrap();
    let inner = Arc::new(EmbeddedStore::open_dir(dir.path()).unwrap());
    paid_with_mandate(&inner, &mandate("md_1", "mer_a", "cus_1", Utc::now()), Utc::now()).await;
    let store = Arc::new(CrashOnMandateWrite { inner: inner.clone(), crash: AtomicBool::new(true) });
    let cx = build_core(store.clone(), decode_key(KEY_B64, "key").unwrap(), "https://pay.example".into(), false).await.unwrap();

    assert!(mandates::detach(&cx, "mer_a", "cus_1", "pm_1").await.is_err(), "the process died during the detach");
    no_orphans(&inner).await;
    assert_eq!(inner.list_payment_methods("mer_a", "cus_1").await.unwrap().len(), 1, "the method stays until its mandates are revoked");

    // The merchant's retry finishes it.
    store.crash.store(false, Ordering::SeqCst);
    assert!(mandates::detach(&cx, "mer_a", "cus_1", "pm_1").await.unwrap().is_some());
    no_orphans(&inner).await;
    assert!(inner.list_payment_methods("mer_a", "cus_1").await.unwrap().is_empty());
    let md = inner.get_mandate("mer_a", "md_1").await.unwrap().unwrap();
    assert_eq!((md.status, md.revocation_reason.as_deref()), (MandateStatus::Revoked, Some("payment_method_detached")));
    assert!(mandates::detach(&cx, "mer_a", "cus_1", "pm_1").await.unwrap().is_none(), "a third detach finds nothing");
}

/// A scheduled mandate left active on a deleted method (an earlier release deleted the
/// method first and could die before revoking): its next trigger revokes it.
#[tokio::test]
async fn a_trigger_revokes_a_mandate_whose_method_is_gone() {
    use paysession_domain::mandate::CustomerAcceptance;
    use paysession_domain::model::{Interval, MandateSpec, MandateType, Schedule};
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(EmbeddedStore::open_dir(dir.path()).unwrap());
    let now = Utc::now();
    let client = paysession_tests::contract::client("cid_a", "mer_a");
    store.create_merchant(&paysession_tests::contract::merchant("mer_a", now), &client).await.unwrap();
    let spec = MandateSpec {
        mandate_type: MandateType::Scheduled,
        max_amount: None,
        schedule: Some(Schedule {
            interval: Interval::Month,
            interval_count: 1,
            start_date: (now - chrono::Duration::days(2)).date_naive(),
            time: None,
            end_date: None,
            max_charges: Some(12),
        }),
    };
    let acceptance = CustomerAcceptance { accepted_at: now, ip_address: None, user_agent: None };
    let md = Mandate::from_first_payment(
        "md_s".into(),
        "mer_a".into(),
        &spec,
        "cus_1".into(),
        "pm_1".into(),
        paysession_domain::money::Currency::parse("EUR").unwrap(),
        paysession_domain::money::Amount::new(990).unwrap(),
        "ps_origin".into(),
        acceptance,
        now,
    );
    paid_with_mandate(&store, &md, now).await;
    assert!(store.get_mandate("mer_a", "md_s").await.unwrap().unwrap().next_charge_at.is_some_and(|at| at <= now), "due");
    // What an interrupted detach of an earlier release left: the method deleted, the mandate active.
    store.delete_payment_method(&saved_method("pm_1", "mer_a", "cus_1"), &[]).await.unwrap();

    let cx = build_core(store.clone(), decode_key(KEY_B64, "key").unwrap(), "https://pay.example".into(), false).await.unwrap();
    let triggered = recurring::trigger(&cx, &Payments::sandbox(), "mer_a", "md_s", None).await.unwrap();
    assert!(matches!(triggered, recurring::Triggered::NothingDue), "{triggered:?}");
    let md = store.get_mandate("mer_a", "md_s").await.unwrap().unwrap();
    assert_eq!((md.status, md.revocation_reason.as_deref()), (MandateStatus::Revoked, Some("payment_method_detached")));
    no_orphans(&store).await;
}
