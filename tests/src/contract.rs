//! The storage contract: the same test bodies run against the embedded store and the
//! DynamoDB adapter (on DynamoDB Local). Each body gets fresh, empty stores.

use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use paysession_app::merchants::{ApiClient, Merchant};
use paysession_app::ports::{
    AttemptLimiter, Cursor, EventQuery, Hold, IdempotencyBegin, IdempotencyCompletion, IdempotencyStore, MandateQuery, MandateStore,
    MerchantStore, RefundQuery, RefundStore, SessionQuery, SessionStore, SettingsStore, SigningStore, StoreError, StoredResponse,
    WebhookStore,
};
use paysession_domain::model::PaymentMethodKind;
use paysession_domain::session::{MerchantAction, PaymentSession, events_for};
use paysession_domain::webhook::{AttemptResult, Delivery, DeliveryStatus, EndpointSpec, WebhookEndpoint};
use paysession_domain::{MerchantPolicy, SessionStatus, parse_create_session};
use serde_json::json;

#[derive(Clone)]
pub struct Stores {
    pub sessions: Arc<dyn SessionStore>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    pub merchants: Arc<dyn MerchantStore>,
    pub settings: Arc<dyn SettingsStore>,
    pub webhooks: Arc<dyn WebhookStore>,
    pub mandates: Arc<dyn MandateStore>,
    pub signing: Arc<dyn SigningStore>,
    pub limiter: Arc<dyn AttemptLimiter>,
    pub refunds: Arc<dyn RefundStore>,
    pub due: Arc<dyn paysession_app::reconcile::DueMoney>,
    pub processor_events: Arc<dyn paysession_app::ports::ProcessorEventLog>,
}

impl Stores {
    pub fn from<T: paysession_app::Store + paysession_app::reconcile::DueMoney>(store: T) -> Stores {
        Stores::from_arc(Arc::new(store))
    }

    pub fn from_arc<T: paysession_app::Store + paysession_app::reconcile::DueMoney>(s: Arc<T>) -> Stores {
        Stores {
            sessions: s.clone(),
            idempotency: s.clone(),
            merchants: s.clone(),
            settings: s.clone(),
            webhooks: s.clone(),
            mandates: s.clone(),
            signing: s.clone(),
            limiter: s.clone(),
            refunds: s.clone(),
            processor_events: s.clone(),
            due: s,
        }
    }
}

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
}

pub fn session(merchant: &str, customer: &str, reference: &str, at: DateTime<Utc>) -> PaymentSession {
    let policy = MerchantPolicy { payment_methods: PaymentMethodKind::ALL.to_vec(), redirect_urls: vec![] };
    let body = json!({"amount": 1050, "currency": "EUR", "customer_id": customer, "reference": reference});
    let spec = parse_create_session(&body, at, &policy).unwrap();
    PaymentSession::create(spec, merchant.into(), at)
}

pub async fn insert(st: &Stores, s: &PaymentSession) -> Result<(), StoreError> {
    let events = events_for(None, s, s.created_at, || paysession_app::ids::new_id("evt"));
    st.sessions.create_session(s, &events, None).await
}

fn query(now: DateTime<Utc>) -> SessionQuery {
    SessionQuery { limit: 20, now, ..Default::default() }
}

pub async fn create_get_and_tenancy(st: Stores) {
    let s = session("mer_a", "cus_1", "ref-1", t0());
    insert(&st, &s).await.unwrap();
    assert_eq!(st.sessions.get_session("mer_a", &s.id).await.unwrap(), Some(s.clone()));
    assert_eq!(st.sessions.get_session("mer_b", &s.id).await.unwrap(), None, "foreign merchant sees nothing");
    assert_eq!(st.sessions.get_session("mer_a", "ps_missing").await.unwrap(), None);
    let events = st.sessions.session_events("mer_a", &s.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, "payment_session.created");
    assert!(st.sessions.session_events("mer_b", &s.id).await.unwrap().is_empty());
}

pub async fn duplicate_reference_guard(st: Stores) {
    let first = session("mer_a", "cus_1", "ref-1", t0());
    insert(&st, &first).await.unwrap();
    let first_events = st.sessions.session_events("mer_a", &first.id).await.unwrap();
    // In the same millisecond the duplicate has the first's id; a second later, another id with
    // the same reference key. Both are refused.
    let same_second = session("mer_a", "cus_1", "ref-1", t0());
    assert_eq!(same_second.id, first.id);
    assert!(matches!(insert(&st, &same_second).await, Err(StoreError::DuplicateReference)));
    let dup = session("mer_a", "cus_1", "ref-1", t0() + chrono::Duration::seconds(1));
    assert_ne!(dup.id, first.id);
    assert!(matches!(insert(&st, &dup).await, Err(StoreError::DuplicateReference)));
    // Nothing of the refused sessions was written, and the first is as it was.
    assert_eq!(st.sessions.get_session("mer_a", &dup.id).await.unwrap(), None);
    assert!(st.sessions.session_events("mer_a", &dup.id).await.unwrap().is_empty());
    assert_eq!(st.sessions.get_session("mer_a", &first.id).await.unwrap(), Some(first.clone()));
    assert_eq!(st.sessions.session_events("mer_a", &first.id).await.unwrap(), first_events);
    insert(&st, &session("mer_a", "cus_2", "ref-1", t0())).await.unwrap();
    insert(&st, &session("mer_b", "cus_1", "ref-1", t0())).await.unwrap();
}

pub async fn concurrent_creates_one_winner(st: Stores) {
    let attempts: Vec<_> = (0..20)
        .map(|_| {
            let st = st.clone();
            tokio::spawn(async move { insert(&st, &session("mer_a", "cus_1", "race", t0())).await })
        })
        .collect();
    let mut ok = 0;
    let mut dup = 0;
    for a in attempts {
        match a.await.unwrap() {
            Ok(()) => ok += 1,
            Err(StoreError::DuplicateReference) => dup += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!((ok, dup), (1, 19));
    let mut q = query(t0());
    q.reference = Some("race".into());
    assert_eq!(st.sessions.list_sessions("mer_a", &q).await.unwrap().items.len(), 1);
}

pub async fn versioned_updates(st: Stores) {
    let s = session("mer_a", "cus_1", "v", t0());
    insert(&st, &s).await.unwrap();
    let next = s.apply(MerchantAction::Cancel { reason: paysession_domain::model::CancellationReason::Duplicate }, t0()).unwrap();
    let events = events_for(Some(&s), &next, t0(), || paysession_app::ids::new_id("evt"));
    st.sessions.update_session(&next, s.version, &events, None).await.unwrap();
    // A writer that read the old version loses.
    let stale = s.apply(MerchantAction::Expire, t0()).unwrap();
    let stale_events = events_for(Some(&s), &stale, t0(), || paysession_app::ids::new_id("evt"));
    assert!(matches!(st.sessions.update_session(&stale, s.version, &stale_events, None).await, Err(StoreError::VersionConflict)));
    let stored = st.sessions.get_session("mer_a", &s.id).await.unwrap().unwrap();
    assert_eq!(stored.status, SessionStatus::Cancelled);
    let types: Vec<String> = st.sessions.session_events("mer_a", &s.id).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(
        types,
        ["payment_session.created", "payment_session.updated", "payment_session.cancelled"],
        "events in write order, none from the loser"
    );
}

pub async fn concurrent_transitions_one_wins(st: Stores) {
    let s = session("mer_a", "cus_1", "ct", t0());
    insert(&st, &s).await.unwrap();
    let run = |action: MerchantAction| {
        let (st, s) = (st.clone(), s.clone());
        tokio::spawn(async move {
            let next = s.apply(action, t0()).unwrap();
            let events = events_for(Some(&s), &next, t0(), || paysession_app::ids::new_id("evt"));
            st.sessions.update_session(&next, s.version, &events, None).await
        })
    };
    let a = run(MerchantAction::Cancel { reason: paysession_domain::model::CancellationReason::Abandoned });
    let b = run(MerchantAction::Expire);
    let results = [a.await.unwrap(), b.await.unwrap()];
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(results.iter().filter(|r| matches!(r, Err(StoreError::VersionConflict))).count(), 1);
    assert_eq!(st.sessions.session_events("mer_a", &s.id).await.unwrap().len(), 3);
}

pub async fn list_order_filters_cursor(st: Stores) {
    let mut ids = Vec::new();
    for i in 0..7 {
        let customer = if i % 2 == 0 { "cus_even" } else { "cus_odd" };
        let s = session("mer_a", customer, &format!("r{i}"), t0() + Duration::seconds(i));
        insert(&st, &s).await.unwrap();
        ids.push(s.id);
    }
    insert(&st, &session("mer_b", "cus_even", "other", t0())).await.unwrap();
    ids.reverse();

    let mut q = query(t0() + Duration::minutes(1));
    q.limit = 3;
    let mut seen = Vec::new();
    loop {
        let page = st.sessions.list_sessions("mer_a", &q).await.unwrap();
        seen.extend(page.items.iter().map(|s| s.id.clone()));
        if !page.has_more {
            break;
        }
        let last = page.items.last().unwrap();
        q.after = Some(Cursor { created_at: last.created_at, id: last.id.clone() });
    }
    assert_eq!(seen, ids, "newest first, every session once, only this merchant's");

    let mut q = query(t0());
    q.customer_id = Some("cus_even".into());
    assert_eq!(st.sessions.list_sessions("mer_a", &q).await.unwrap().items.len(), 4);
    q.reference = Some("r2".into());
    let one = st.sessions.list_sessions("mer_a", &q).await.unwrap();
    assert_eq!((one.items.len(), one.items[0].spec.reference.as_str()), (1, "r2"));
    let mut q = query(t0());
    q.reference = Some("r3".into());
    assert_eq!(st.sessions.list_sessions("mer_a", &q).await.unwrap().items.len(), 1);
    let mut q = query(t0());
    q.created_after = Some(t0() + Duration::seconds(4));
    assert_eq!(st.sessions.list_sessions("mer_a", &q).await.unwrap().items.len(), 2);
}

pub async fn status_filter_as_of_now(st: Stores) {
    let s = session("mer_a", "cus_1", "exp", t0());
    insert(&st, &s).await.unwrap();
    let mut q = query(t0());
    q.status = Some(SessionStatus::Open);
    assert_eq!(st.sessions.list_sessions("mer_a", &q).await.unwrap().items.len(), 1);
    // Past expires_at the stored status is still open, but it reads expired.
    let later = s.spec.expires_at + Duration::seconds(1);
    let mut q = query(later);
    q.status = Some(SessionStatus::Open);
    assert!(st.sessions.list_sessions("mer_a", &q).await.unwrap().items.is_empty());
    q.status = Some(SessionStatus::Expired);
    assert_eq!(st.sessions.list_sessions("mer_a", &q).await.unwrap().items.len(), 1);
}

fn completion(key: &str, owner: &str, status: u16) -> IdempotencyCompletion {
    completion_held(key, Hold::Owned(owner.into()), status)
}

/// A completion that takes `key` in its own write, as of `now`.
fn fresh_completion(key: &str, fingerprint: &str, now: DateTime<Utc>, status: u16) -> IdempotencyCompletion {
    IdempotencyCompletion {
        expires_at: now + Duration::hours(24),
        ..completion_held(key, Hold::Fresh { fingerprint: fingerprint.into(), owner: format!("req_{status}"), now }, status)
    }
}

fn completion_held(key: &str, hold: Hold, status: u16) -> IdempotencyCompletion {
    IdempotencyCompletion {
        merchant_id: "mer_a".into(),
        key: key.into(),
        hold,
        response: StoredResponse { status, content_type: "application/json".into(), body: format!("{{\"n\":{status}}}") },
        expires_at: t0() + Duration::hours(24),
    }
}

pub async fn idempotency_lifecycle(st: Stores) {
    let lock = t0() + Duration::seconds(60);
    let i = &st.idempotency;
    assert_eq!(i.begin("mer_a", "k", "fp1", "o1", t0(), lock).await.unwrap(), IdempotencyBegin::Started);
    assert_eq!(i.begin("mer_a", "k", "fp1", "o2", t0(), lock).await.unwrap(), IdempotencyBegin::InFlight);
    assert_eq!(i.begin("mer_a", "k", "fp2", "o2", t0(), lock).await.unwrap(), IdempotencyBegin::Mismatch);
    assert_eq!(i.begin("mer_b", "k", "fp2", "o2", t0(), lock).await.unwrap(), IdempotencyBegin::Started, "keys are per merchant");
    // Completion inside the session transaction.
    let s = session("mer_a", "cus_1", "idem", t0());
    let events = events_for(None, &s, t0(), || paysession_app::ids::new_id("evt"));
    st.sessions.create_session(&s, &events, Some(&completion("k", "o1", 201))).await.unwrap();
    match i.begin("mer_a", "k", "fp1", "o3", t0(), lock).await.unwrap() {
        IdempotencyBegin::Replay(r) => assert_eq!((r.status, r.body.as_str()), (201, "{\"n\":201}")),
        other => panic!("expected replay, got {other:?}"),
    }
    assert_eq!(i.begin("mer_a", "k", "fp2", "o3", t0(), lock).await.unwrap(), IdempotencyBegin::Mismatch);
    // Past retention the key is free again.
    let later = t0() + Duration::hours(25);
    assert_eq!(i.begin("mer_a", "k", "fp9", "o4", later, later + Duration::seconds(60)).await.unwrap(), IdempotencyBegin::Started);
}

pub async fn idempotency_takeover_and_release(st: Stores) {
    let i = &st.idempotency;
    let lock = t0() + Duration::seconds(60);
    assert_eq!(i.begin("mer_a", "k2", "fp", "dead", t0(), lock).await.unwrap(), IdempotencyBegin::Started);
    // The owner died: after its lock lapses another request takes the key over...
    let after = lock + Duration::seconds(1);
    assert_eq!(i.begin("mer_a", "k2", "fp", "alive", after, after + Duration::seconds(60)).await.unwrap(), IdempotencyBegin::Started);
    // ...and the dead owner can no longer complete it, not even inside a session write.
    let s = session("mer_a", "cus_1", "zombie", t0());
    let events = events_for(None, &s, t0(), || paysession_app::ids::new_id("evt"));
    assert!(matches!(
        st.sessions.create_session(&s, &events, Some(&completion("k2", "dead", 201))).await,
        Err(StoreError::IdempotencyLost)
    ));
    assert_eq!(st.sessions.get_session("mer_a", &s.id).await.unwrap(), None, "the whole transaction rolled back");
    assert!(matches!(i.complete(&completion("k2", "dead", 409)).await, Err(StoreError::IdempotencyLost)));
    i.complete(&completion("k2", "alive", 409)).await.unwrap();
    assert!(matches!(i.begin("mer_a", "k2", "fp", "x", after, after).await.unwrap(), IdempotencyBegin::Replay(_)));
    // Release frees an in-flight key only for its owner.
    assert_eq!(i.begin("mer_a", "k3", "fp", "o", t0(), lock).await.unwrap(), IdempotencyBegin::Started);
    i.release("mer_a", "k3", "someone-else").await.unwrap();
    assert_eq!(i.begin("mer_a", "k3", "fp", "p", t0(), lock).await.unwrap(), IdempotencyBegin::InFlight);
    i.release("mer_a", "k3", "o").await.unwrap();
    assert_eq!(i.begin("mer_a", "k3", "fp", "p", t0(), lock).await.unwrap(), IdempotencyBegin::Started);
}

pub async fn idempotency_concurrent_claims(st: Stores) {
    let lock = t0() + Duration::seconds(60);
    let claims: Vec<_> = (0..10)
        .map(|n| {
            let st = st.clone();
            tokio::spawn(async move { st.idempotency.begin("mer_a", "hot", "fp", &format!("o{n}"), t0(), lock).await.unwrap() })
        })
        .collect();
    let mut started = 0;
    for c in claims {
        match c.await.unwrap() {
            IdempotencyBegin::Started => started += 1,
            IdempotencyBegin::InFlight => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(started, 1);
}

/// A completion that takes its key in the change's own write: taken only where no live
/// record is, and a lost key cancels the whole write — before any other guard speaks.
pub async fn idempotency_taken_in_the_write(st: Stores) {
    let i = &st.idempotency;
    let create = |reference: &str, key: &str, fp: &str, now| {
        let st = st.clone();
        let s = session("mer_a", "cus_1", reference, t0());
        let c = fresh_completion(key, fp, now, 201);
        async move {
            let events = events_for(None, &s, t0(), || paysession_app::ids::new_id("evt"));
            let out = st.sessions.create_session(&s, &events, Some(&c)).await;
            (out, s.id)
        }
    };
    let (first, first_id) = create("f-1", "fk", "fp1", t0()).await;
    first.unwrap();
    match i.begin("mer_a", "fk", "fp1", "o", t0(), t0()).await.unwrap() {
        IdempotencyBegin::Replay(r) => assert_eq!(r.status, 201),
        other => panic!("the fresh completion is a finished record: {other:?}"),
    }
    // The same key again: lost, even where the reference guard would also refuse, and
    // nothing of the second write is stored.
    for reference in ["f-2", "f-1"] {
        let (out, id) = create(reference, "fk", "fp1", t0()).await;
        assert!(matches!(out, Err(StoreError::IdempotencyLost)), "{reference}: {out:?}");
        // "f-1" names the first session's id: only the first's own event is there.
        let kept = usize::from(id == first_id);
        assert_eq!(st.sessions.session_events("mer_a", &id).await.unwrap().len(), kept, "{reference}: the whole write was cancelled");
    }
    assert_eq!(st.sessions.get_session("mer_a", &first_id).await.unwrap().map(|s| s.version), Some(1));
    // A live in-flight claim holds the key against a fresh write until its lock lapses.
    let lock = t0() + Duration::seconds(60);
    assert_eq!(i.begin("mer_a", "held", "fp", "o1", t0(), lock).await.unwrap(), IdempotencyBegin::Started);
    assert!(matches!(create("f-3", "held", "fp", t0()).await.0, Err(StoreError::IdempotencyLost)));
    create("f-3", "held", "fp", lock).await.0.unwrap();
    // A finished record past retention is forgotten.
    let later = t0() + Duration::hours(25);
    create("f-4", "fk", "fp-other", later).await.0.unwrap();
    // Storing a refusal (no change) the same way: once.
    i.complete(&fresh_completion("refused", "fp", t0(), 409)).await.unwrap();
    assert!(matches!(i.complete(&fresh_completion("refused", "fp", t0(), 409)).await, Err(StoreError::IdempotencyLost)));
    // Concurrent twins: one write wins, the rest lose the key and store nothing.
    let twins: Vec<_> = (0..8).map(|n| tokio::spawn(create(&format!("twin-{n}"), "hot-fresh", "fp", t0()))).collect();
    let (mut won, mut lost) = (0, 0);
    for twin in twins {
        let (out, id) = twin.await.unwrap();
        match out {
            Ok(()) => won += 1,
            Err(StoreError::IdempotencyLost) => {
                lost += 1;
                assert_eq!(st.sessions.get_session("mer_a", &id).await.unwrap(), None);
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((won, lost), (1, 7));
    // On a transition too: the lost key is reported, and the session is unchanged.
    let s = st.sessions.get_session("mer_a", &first_id).await.unwrap().unwrap();
    let next = s.apply(MerchantAction::Expire, t0()).unwrap();
    let lost = st.sessions.update_session(&next, s.version, &[], Some(&fresh_completion("fk", "fp1", t0(), 200))).await;
    assert!(matches!(lost, Err(StoreError::IdempotencyLost)), "{lost:?}");
    assert_eq!(st.sessions.get_session("mer_a", &first_id).await.unwrap(), Some(s));
}

pub async fn aliases_and_saved_methods(st: Stores) {
    use paysession_app::ids::sha256_hex;
    use paysession_app::sessions::{find_by_page_token, find_by_qr_payload};
    use paysession_domain::payment::{CardSummary, SavedPaymentMethod};
    use paysession_domain::session::{QrCode, VirtualAccount, page_token, qr_payload_id};
    let mut s = session("mer_a", "cus_1", "alias", t0());
    let token = page_token("mer_a", &s.id, "secret-1");
    s.page_token_hash = Some(sha256_hex(token.as_bytes()));
    s.instructions.virtual_account = Some(VirtualAccount { bank_name: "Sandbox Bank".into(), account_number: "9000111122223333".into() });
    s.instructions.qr = Some(QrCode { payload_id: qr_payload_id("mer_a", &s.id), payload: "P".into() });
    insert(&st, &s).await.unwrap();
    let store = &*st.sessions;
    assert_eq!(find_by_page_token(store, &token).await.unwrap().map(|f| f.id), Some(s.id.clone()));
    for forged in [page_token("mer_a", &s.id, "secret-2"), page_token("mer_b", &s.id, "secret-1"), "secret-1".into(), String::new()] {
        assert_eq!(find_by_page_token(store, &forged).await.unwrap(), None, "{forged:?}");
    }
    assert_eq!(find_by_qr_payload(store, &qr_payload_id("mer_a", &s.id)).await.unwrap().map(|f| f.id), Some(s.id.clone()));
    assert_eq!(find_by_qr_payload(store, &qr_payload_id("mer_b", &s.id)).await.unwrap(), None, "another merchant's locator");
    assert_eq!(find_by_qr_payload(store, "qr_nope").await.unwrap(), None);
    assert_eq!(store.find_by_virtual_account("9000111122223333").await.unwrap().map(|f| f.id), Some(s.id.clone()));
    assert_eq!(store.find_by_virtual_account("9000111122224444").await.unwrap(), None);

    // A session without the QR method is not found by a locator of the right shape.
    let plain = session("mer_a", "cus_1", "alias-plain", t0());
    insert(&st, &plain).await.unwrap();
    assert_eq!(find_by_qr_payload(store, &qr_payload_id("mer_a", &plain.id)).await.unwrap(), None);
    assert_eq!(find_by_page_token(store, &page_token("mer_a", &plain.id, "secret-1")).await.unwrap(), None, "api mode: no page");

    // Two sessions under one number: the store refuses the second create (and keeps nothing
    // of it) or the lookup, but never picks one.
    let mut twin = session("mer_b", "cus_1", "alias-twin", t0());
    twin.instructions.virtual_account = s.instructions.virtual_account.clone();
    let taken = || StoreError::VirtualAccountTaken("9000111122223333".into());
    match insert(&st, &twin).await {
        Err(e) => {
            assert_eq!(e.to_string(), taken().to_string());
            assert_eq!(store.get_session("mer_b", &twin.id).await.unwrap(), None);
            assert_eq!(store.find_by_virtual_account("9000111122223333").await.unwrap().map(|f| f.id), Some(s.id.clone()));
        }
        Ok(()) => {
            // DynamoDB: the index is eventually consistent, so the twin may show up late.
            let mut found = store.find_by_virtual_account("9000111122223333").await;
            for _ in 0..100 {
                if found.is_err() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                found = store.find_by_virtual_account("9000111122223333").await;
            }
            assert_eq!(found.map(|f| f.map(|f| f.id)).unwrap_err().to_string(), taken().to_string(), "two sessions share the number");
        }
    }

    let card = CardSummary { brand: "visa".into(), last4: "4242".into(), exp_month: 12, exp_year: 2030, fingerprint: "fp".into() };
    let pm = SavedPaymentMethod {
        id: "pm_1".into(),
        merchant_id: "mer_a".into(),
        customer_id: "cus_1".into(),
        method: PaymentMethodKind::Card,
        card,
        processor_token: "tok".into(),
        network_transaction_id: Some("ntid".into()),
        created_at: t0(),
    };
    st.sessions.save_payment_method(&pm).await.unwrap();
    st.sessions.save_payment_method(&pm).await.unwrap();
    assert_eq!(st.sessions.list_payment_methods("mer_a", "cus_1").await.unwrap(), vec![pm.clone()], "saving again replaces");
    assert!(st.sessions.list_payment_methods("mer_b", "cus_1").await.unwrap().is_empty());
    assert!(st.sessions.list_payment_methods("mer_a", "cus_2").await.unwrap().is_empty());
}

/// A merchant with every payment method, created `at`.
pub fn merchant(id: &str, at: DateTime<Utc>) -> Merchant {
    Merchant {
        id: id.into(),
        name: id.into(),
        display_name: id.into(),
        brand_color: "#000000".into(),
        redirect_urls: vec![],
        payment_methods: PaymentMethodKind::ALL.to_vec(),
        created_at: at,
    }
}

/// An API client `id` of `merchant`.
pub fn client(id: &str, merchant: &str) -> ApiClient {
    ApiClient {
        client_id: id.into(),
        merchant_id: merchant.into(),
        secret_hash: "h".into(),
        scopes: vec![],
        created_at: t0(),
        knows_refunds_scope: true,
    }
}

pub async fn merchants_clients_settings(st: Stores) {
    let m = &st.merchants;
    m.create_merchant(&merchant("mer_1", t0()), &client("cid_1", "mer_1")).await.unwrap();
    m.create_merchant(&merchant("mer_2", t0() + Duration::seconds(1)), &client("cid_2", "mer_2")).await.unwrap();
    assert!(matches!(m.create_merchant(&merchant("mer_3", t0()), &client("cid_1", "mer_3")).await, Err(StoreError::AlreadyExists)));
    assert_eq!(m.get_merchant("mer_3").await.unwrap(), None, "no half-created merchant");
    let ids: Vec<String> = m.list_merchants().await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["mer_1", "mer_2"]);
    let mut c = m.get_client("cid_1").await.unwrap().unwrap();
    c.secret_hash = "rotated".into();
    m.put_client(&c).await.unwrap();
    assert_eq!(m.get_client("cid_1").await.unwrap().unwrap().secret_hash, "rotated");
    assert_eq!(m.list_clients("mer_1").await.unwrap().len(), 1);
    assert_eq!(m.get_client("cid_none").await.unwrap(), None);

    assert_eq!(st.settings.get_setting("x").await.unwrap(), None);
    st.settings.put_setting("x", "1").await.unwrap();
    st.settings.put_setting("x", "2").await.unwrap();
    assert_eq!(st.settings.get_setting("x").await.unwrap().as_deref(), Some("2"));
}

fn endpoint(id: &str, merchant: &str, at: DateTime<Utc>) -> WebhookEndpoint {
    let spec = EndpointSpec {
        url: "https://hooks.example.com/x".into(),
        events: vec!["*".into()],
        description: None,
        signature_scheme: Default::default(),
    };
    WebhookEndpoint::create(spec, id.into(), merchant.into(), sealed("sealed:v1:AAAA"), at)
}

pub async fn webhook_endpoints_versioned_and_tenanted(st: Stores) {
    let w = &st.webhooks;
    w.create_endpoint(&endpoint("we_1", "mer_1", t0())).await.unwrap();
    w.create_endpoint(&endpoint("we_2", "mer_1", t0() + Duration::seconds(1))).await.unwrap();
    w.create_endpoint(&endpoint("we_3", "mer_2", t0())).await.unwrap();
    let ids: Vec<String> = w.list_endpoints("mer_1").await.unwrap().into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["we_1", "we_2"], "oldest first, own endpoints only");
    assert_eq!(w.get_endpoint("mer_2", "we_1").await.unwrap(), None, "foreign id reads as absent");
    let current = w.get_endpoint("mer_1", "we_1").await.unwrap().unwrap();
    let rotated = current.rotate(sealed("sealed:v1:BBBB"), t0() + Duration::seconds(5));
    w.update_endpoint(&rotated, current.version).await.unwrap();
    let stale = current.disable("410", t0() + Duration::seconds(6));
    assert!(matches!(w.update_endpoint(&stale, current.version).await, Err(StoreError::VersionConflict)));
    assert_eq!(w.get_endpoint("mer_1", "we_1").await.unwrap().unwrap().secrets.len(), 2);
    assert!(!w.delete_endpoint("mer_2", "we_1").await.unwrap(), "another tenant cannot delete it");
    assert!(w.delete_endpoint("mer_1", "we_1").await.unwrap());
    assert!(!w.delete_endpoint("mer_1", "we_1").await.unwrap());
    assert_eq!(w.get_endpoint("mer_1", "we_1").await.unwrap(), None);
}

pub async fn deliveries_insert_once_and_update_by_version(st: Stores) {
    let w = &st.webhooks;
    let make = |id: &str, at| Delivery::new(id.into(), "mer_1", "we_1", "evt_1", "payment_session.created", false, at);
    // An id naming its time (stored in the endpoint's list on DynamoDB), then ids of before
    // (`whd_0`…, stored by id with an index entry): one list, in order.
    let first = make(&Delivery::fan_out_id("evt_1", t0(), "we_1"), t0());
    assert!(w.create_delivery(&first).await.unwrap().is_none());
    // The same (event, endpoint) again — a replayed stream record — finds the first.
    let again = w.create_delivery(&make(&first.id, t0() + Duration::seconds(9))).await.unwrap().unwrap();
    assert_eq!(again, first);
    let claimed = first.claim(t0());
    w.update_delivery(&claimed, first.version).await.unwrap();
    assert!(matches!(w.update_delivery(&first.claim(t0()), first.version).await, Err(StoreError::VersionConflict)), "one claim wins");
    let (recorded, _) = claimed.record(t0(), AttemptResult { status_code: Some(500), duration_ms: 3, error: None }, t0());
    w.update_delivery(&recorded, claimed.version).await.unwrap();
    let stored = w.get_delivery("mer_1", "we_1", &first.id).await.unwrap().unwrap();
    assert_eq!((stored.status, stored.attempts.len()), (DeliveryStatus::Pending, 1));
    assert_eq!(w.get_delivery("mer_2", "we_1", &first.id).await.unwrap(), None);
    assert_eq!(w.get_delivery("mer_1", "we_2", &first.id).await.unwrap(), None, "another endpoint's");
    for i in 0..4 {
        w.create_delivery(&make(&format!("whd_{i}"), t0() + Duration::seconds(i + 1))).await.unwrap();
    }
    let page = w.list_deliveries("mer_1", "we_1", 3, None).await.unwrap();
    let ids: Vec<&str> = page.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["whd_3", "whd_2", "whd_1"]);
    assert!(page.has_more);
    let last = page.items.last().unwrap();
    let rest = w.list_deliveries("mer_1", "we_1", 3, Some(&Cursor { created_at: last.created_at, id: last.id.clone() })).await.unwrap();
    let ids: Vec<&str> = rest.items.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["whd_0", first.id.as_str()]);
    assert!(!rest.has_more);
    assert_eq!(w.get_delivery("mer_1", "we_1", "whd_2").await.unwrap().unwrap().created_at, t0() + Duration::seconds(3));
    assert_eq!(w.get_delivery("mer_1", "we_2", "whd_2").await.unwrap(), None);
    assert!(w.list_deliveries("mer_2", "we_1", 10, None).await.unwrap().items.is_empty());
}

pub async fn merchant_event_log(st: Stores) {
    for (i, reference) in ["a", "b", "c"].iter().enumerate() {
        let s = session("mer_1", "cus_1", reference, t0() + Duration::seconds(i as i64));
        let events = events_for(None, &s, s.created_at, || paysession_app::ids::new_id("evt"));
        st.sessions.create_session(&s, &events, None).await.unwrap();
        let cancelled =
            s.apply(MerchantAction::Cancel { reason: paysession_domain::model::CancellationReason::Abandoned }, s.created_at).unwrap();
        let events = events_for(Some(&s), &cancelled, s.created_at, || paysession_app::ids::new_id("evt"));
        st.sessions.update_session(&cancelled, s.version, &events, None).await.unwrap();
    }
    let other = session("mer_2", "cus_1", "z", t0());
    st.sessions.create_session(&other, &events_for(None, &other, t0(), || paysession_app::ids::new_id("evt")), None).await.unwrap();
    let w = &st.webhooks;
    let all = w.list_events("mer_1", &EventQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert_eq!(all.items.len(), 9);
    assert!(all.items.windows(2).all(|p| (p[0].created_at, &p[0].id) > (p[1].created_at, &p[1].id)), "newest first");
    let created = w
        .list_events("mer_1", &EventQuery { limit: 100, event_type: Some("payment_session.created".into()), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(created.items.len(), 3);
    let recent = w
        .list_events("mer_1", &EventQuery { limit: 100, created_after: Some(t0() + Duration::milliseconds(1500)), ..Default::default() })
        .await
        .unwrap();
    // The second session's cancel wrote its two events at t0+1s and t0+1.001s.
    assert_eq!(recent.items.len(), 3, "only the third session's events are after t0+1.5s");
    let page = w.list_events("mer_1", &EventQuery { limit: 4, ..Default::default() }).await.unwrap();
    assert!(page.has_more);
    let last = page.items.last().unwrap();
    let next = w
        .list_events(
            "mer_1",
            &EventQuery { limit: 10, after: Some(Cursor { created_at: last.created_at, id: last.id.clone() }), ..Default::default() },
        )
        .await
        .unwrap();
    let ids: Vec<&str> = page.items.iter().chain(&next.items).map(|e| e.id.as_str()).collect();
    let all_ids: Vec<&str> = all.items.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, all_ids, "pages join without gaps or repeats");
    let one = &all.items[4];
    assert_eq!(w.get_event("mer_1", &one.id).await.unwrap().as_ref(), Some(one));
    assert_eq!(w.get_event("mer_2", &one.id).await.unwrap(), None, "another tenant's event reads as absent");
}

/// Every page of `list` from the start, following cursors: the ids in the order returned.
async fn all_pages<T, F, Fut>(list: F, id: impl Fn(&T) -> (DateTime<Utc>, String)) -> Vec<String>
where
    F: Fn(Option<Cursor>) -> Fut,
    Fut: std::future::Future<Output = paysession_app::ports::Page<T>>,
{
    let (mut seen, mut after) = (Vec::new(), None);
    loop {
        let page = list(after.clone()).await;
        seen.extend(page.items.iter().map(|t| id(t).1));
        if !page.has_more {
            return seen;
        }
        let (created_at, id) = id(page.items.last().expect("a page with more has items"));
        after = Some(Cursor { created_at, id });
    }
}

/// A merchant's lists read over every partition they are written to (16 shards on DynamoDB)
/// in one order: newest first, ties by id, every page joined to the next by its cursor
/// without gaps or repeats, whatever the page size and the filters.
pub async fn lists_merge_in_order_across_pages(st: Stores) {
    let (mut sessions, mut cancelled_ids) = (Vec::new(), Vec::new());
    for i in 0..60 {
        // Four sessions per millisecond: ties broken by id across partitions.
        let s = session("mer_s", &format!("cus_{}", i % 5), &format!("m{i}"), t0() + Duration::milliseconds(i / 4));
        insert(&st, &s).await.unwrap();
        if i % 3 == 0 {
            let cancelled =
                s.apply(MerchantAction::Cancel { reason: paysession_domain::model::CancellationReason::Abandoned }, s.created_at).unwrap();
            let events = events_for(Some(&s), &cancelled, s.created_at, || paysession_app::ids::new_id("evt"));
            st.sessions.update_session(&cancelled, s.version, &events, None).await.unwrap();
            cancelled_ids.push(s.id.clone());
        }
        sessions.push(s);
    }
    insert(&st, &session("mer_other", "cus_0", "m0", t0())).await.unwrap();
    let mut expected: Vec<(DateTime<Utc>, String)> = sessions.iter().map(|s| (s.created_at, s.id.clone())).collect();
    expected.sort();
    expected.reverse();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let key = |s: &PaymentSession| (s.created_at, s.id.clone());
    let (ss, ws) = (&st.sessions, &st.webhooks);
    for limit in [7, 100] {
        let listed = all_pages(
            |after| {
                let q = SessionQuery { limit, after, ..query(t0()) };
                async move { ss.list_sessions("mer_s", &q).await.unwrap() }
            },
            key,
        )
        .await;
        assert_eq!(listed, expected, "sessions, pages of {limit}");
    }
    let open: Vec<String> = expected.iter().filter(|id| !cancelled_ids.contains(id)).cloned().collect();
    let cancelled: Vec<String> = expected.iter().filter(|id| cancelled_ids.contains(id)).cloned().collect();
    for (status, want) in [(SessionStatus::Open, &open), (SessionStatus::Cancelled, &cancelled)] {
        let listed = all_pages(
            |after| {
                let q = SessionQuery { limit: 6, after, status: Some(status), ..query(t0()) };
                async move { ss.list_sessions("mer_s", &q).await.unwrap() }
            },
            key,
        )
        .await;
        assert_eq!(&listed, want, "{status:?} sessions, pages of 6");
    }

    let all_events = st.webhooks.list_events("mer_s", &EventQuery { limit: 100, ..Default::default() }).await.unwrap();
    assert!(!all_events.has_more);
    assert_eq!(all_events.items.len(), 60 + 2 * 20, "a created event each, and a cancel's two");
    let mut expected: Vec<(DateTime<Utc>, String)> = all_events.items.iter().map(|e| (e.created_at, e.id.clone())).collect();
    expected.sort();
    expected.reverse();
    let expected: Vec<String> = expected.into_iter().map(|(_, id)| id).collect();
    let event_key = |e: &paysession_domain::session::EventRecord| (e.created_at, e.id.clone());
    let listed = all_pages(
        |after| {
            let q = EventQuery { limit: 9, after, ..Default::default() };
            async move { ws.list_events("mer_s", &q).await.unwrap() }
        },
        event_key,
    )
    .await;
    assert_eq!(listed, expected, "events, pages of 9");
    let floor = t0() + Duration::milliseconds(7);
    let listed = all_pages(
        |after| {
            let q = EventQuery { limit: 4, after, created_after: Some(floor), event_type: Some("payment_session.created".into()) };
            async move { ws.list_events("mer_s", &q).await.unwrap() }
        },
        event_key,
    )
    .await;
    let want: Vec<String> = all_events
        .items
        .iter()
        .filter(|e| e.created_at > floor && e.event_type == "payment_session.created")
        .map(|e| e.id.clone())
        .collect();
    assert_eq!(listed, want, "created events after a time, pages of 4");
    assert_eq!(want.len(), 60 - 32, "sessions created at milliseconds 8..14");

    // An endpoint's deliveries, three to a millisecond, another endpoint's in between.
    let mut deliveries = Vec::new();
    for (i, event) in all_events.items.iter().enumerate().take(45) {
        let at = t0() + Duration::milliseconds(i as i64 / 3);
        for endpoint in ["we_merge", "we_other"] {
            let id = Delivery::fan_out_id(&event.id, at, endpoint);
            let d = Delivery::new(id, "mer_s", endpoint, &event.id, &event.event_type, false, at);
            assert!(ws.create_delivery(&d).await.unwrap().is_none());
            if endpoint == "we_merge" {
                deliveries.push((d.created_at, d.id));
            }
        }
    }
    deliveries.sort();
    deliveries.reverse();
    let want: Vec<String> = deliveries.into_iter().map(|(_, id)| id).collect();
    for limit in [4, 50] {
        let listed = all_pages(
            |after| async move { ws.list_deliveries("mer_s", "we_merge", limit, after.as_ref()).await.unwrap() },
            |d: &Delivery| (d.created_at, d.id.clone()),
        )
        .await;
        assert_eq!(listed, want, "deliveries, pages of {limit}");
    }
}

/// Expands to one `#[tokio::test]` per contract body, each on fresh stores from `$make`.
pub fn saved_method(id: &str, merchant: &str, customer: &str) -> paysession_domain::payment::SavedPaymentMethod {
    use paysession_domain::payment::{CardSummary, SavedPaymentMethod};
    let card = CardSummary { brand: "visa".into(), last4: "0341".into(), exp_month: 12, exp_year: 2030, fingerprint: format!("fp-{id}") };
    SavedPaymentMethod {
        id: id.into(),
        merchant_id: merchant.into(),
        customer_id: customer.into(),
        method: PaymentMethodKind::Card,
        card,
        processor_token: "tok".into(),
        network_transaction_id: Some("ntid".into()),
        created_at: t0(),
    }
}

pub fn mandate(id: &str, merchant: &str, customer: &str, at: DateTime<Utc>) -> paysession_domain::mandate::Mandate {
    use paysession_domain::mandate::{CustomerAcceptance, Mandate};
    use paysession_domain::model::{MandateSpec, MandateType};
    let spec = MandateSpec { mandate_type: MandateType::OnDemand, max_amount: Some(5_000), schedule: None };
    let acceptance = CustomerAcceptance { accepted_at: at, ip_address: Some("203.0.113.7".into()), user_agent: Some("UA".into()) };
    Mandate::from_first_payment(
        id.into(),
        merchant.into(),
        &spec,
        customer.into(),
        "pm_1".into(),
        paysession_domain::money::Currency::parse("EUR").unwrap(),
        paysession_domain::money::Amount::new(1050).unwrap(),
        "ps_origin".into(),
        acceptance,
        at,
    )
}

/// The first payment's success, its saved method and its mandate commit together or not at
/// all: a stale session version writes none of them, a second mandate with the same id
/// rolls the whole write back.
pub async fn first_payment_creates_mandate_atomically(st: Stores) {
    let s = session("mer_a", "cus_1", "first", t0());
    insert(&st, &s).await.unwrap();
    let mut paid = s.clone();
    paid.status = SessionStatus::Succeeded;
    paid.version += 1;
    let events = events_for(Some(&s), &paid, t0(), || paysession_app::ids::new_id("evt"));
    let pm = saved_method("pm_1", "mer_a", "cus_1");
    let md = mandate("md_1", "mer_a", "cus_1", t0());

    let stale = st.mandates.complete_first_payment(&paid, s.version + 5, &events, &pm, &md).await;
    assert!(matches!(stale, Err(StoreError::VersionConflict)), "{stale:?}");
    assert!(st.mandates.get_mandate("mer_a", "md_1").await.unwrap().is_none(), "no mandate without the success");
    assert!(st.sessions.list_payment_methods("mer_a", "cus_1").await.unwrap().is_empty());
    assert_eq!(st.sessions.get_session("mer_a", &s.id).await.unwrap().unwrap().status, s.status);

    st.mandates.complete_first_payment(&paid, s.version, &events, &pm, &md).await.unwrap();
    assert_eq!(st.mandates.get_mandate("mer_a", "md_1").await.unwrap(), Some(md.clone()));
    assert_eq!(st.sessions.get_session("mer_a", &s.id).await.unwrap().unwrap().status, SessionStatus::Succeeded);
    assert_eq!(st.sessions.list_payment_methods("mer_a", "cus_1").await.unwrap(), vec![pm.clone()]);
    assert_eq!(st.sessions.session_events("mer_a", &s.id).await.unwrap().len(), 1 + events.len());

    // Another session paying with the same mandate id: refused whole, its success not written.
    let other = session("mer_a", "cus_1", "second", t0());
    insert(&st, &other).await.unwrap();
    let mut other_paid = other.clone();
    other_paid.status = SessionStatus::Succeeded;
    other_paid.version += 1;
    let again = st.mandates.complete_first_payment(&other_paid, other.version, &[], &pm, &md).await;
    assert!(matches!(again, Err(StoreError::AlreadyExists)), "{again:?}");
    assert_eq!(st.sessions.get_session("mer_a", &other.id).await.unwrap().unwrap().status, other.status);
}

pub async fn mandates_versioned_listed_and_tenanted(st: Stores) {
    use paysession_domain::mandate::{MandateAction, MandateStatus};
    for (i, (id, customer)) in [("md_a", "cus_1"), ("md_b", "cus_2"), ("md_c", "cus_1")].into_iter().enumerate() {
        let s = session("mer_a", customer, id, t0());
        insert(&st, &s).await.unwrap();
        let mut paid = s.clone();
        paid.status = SessionStatus::Succeeded;
        paid.version += 1;
        let md = mandate(id, "mer_a", customer, t0() + Duration::seconds(i as i64));
        st.mandates.complete_first_payment(&paid, s.version, &[], &saved_method("pm_1", "mer_a", customer), &md).await.unwrap();
    }
    assert!(st.mandates.get_mandate("mer_b", "md_a").await.unwrap().is_none(), "another tenant's id reads as absent");

    let current = st.mandates.get_mandate("mer_a", "md_a").await.unwrap().unwrap();
    let suspended = current.apply(&MandateAction::Suspend, t0()).unwrap();
    let events = paysession_domain::mandate::mandate_events(&current, &suspended, t0(), || paysession_app::ids::new_id("evt"));
    st.mandates.update_mandate(&suspended, current.version, &events).await.unwrap();
    let lost = st.mandates.update_mandate(&suspended, current.version, &events).await;
    assert!(matches!(lost, Err(StoreError::VersionConflict)), "{lost:?}");

    let ids =
        |page: paysession_app::ports::Page<paysession_domain::mandate::Mandate>| page.items.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let all = MandateQuery { limit: 10, ..Default::default() };
    assert_eq!(ids(st.mandates.list_mandates("mer_a", &all).await.unwrap()), ["md_c", "md_b", "md_a"], "newest first");
    let cus_1 = MandateQuery { customer_id: Some("cus_1".into()), ..all.clone() };
    assert_eq!(ids(st.mandates.list_mandates("mer_a", &cus_1).await.unwrap()), ["md_c", "md_a"]);
    let active = MandateQuery { status: Some(MandateStatus::Active), ..cus_1.clone() };
    assert_eq!(ids(st.mandates.list_mandates("mer_a", &active).await.unwrap()), ["md_c"]);
    let first = st.mandates.list_mandates("mer_a", &MandateQuery { limit: 2, ..all.clone() }).await.unwrap();
    assert!(first.has_more);
    let last = first.items.last().unwrap();
    let after = Cursor { created_at: last.created_at, id: last.id.clone() };
    let rest = st.mandates.list_mandates("mer_a", &MandateQuery { limit: 2, after: Some(after), ..all.clone() }).await.unwrap();
    assert_eq!((ids(rest.clone()), rest.has_more), (vec!["md_a".to_string()], false));
    assert!(st.mandates.list_mandates("mer_b", &all).await.unwrap().items.is_empty());

    // The change's events are in the merchant's event log (and so reach webhooks).
    let logged = st
        .webhooks
        .list_events("mer_a", &EventQuery { event_type: Some("mandate.suspended".into()), limit: 10, ..Default::default() })
        .await
        .unwrap();
    assert_eq!(logged.items.len(), 1);
    assert_eq!(logged.items[0].session_id, "md_a");
    assert_eq!(logged.items[0].data.to_value()["previous_status"], "active");
}

pub async fn payment_methods_detach(st: Stores) {
    let pm = saved_method("pm_9", "mer_a", "cus_1");
    st.sessions.save_payment_method(&pm).await.unwrap();
    use paysession_domain::payment::SavedPaymentMethod;
    use paysession_domain::session::EventRecord;
    let detached = |id: &str| EventRecord {
        id: id.into(),
        event_type: "payment_method.detached".into(),
        created_at: t0(),
        session_id: "pm_9".into(),
        data: paysession_domain::session::EventData::of(&pm.to_api(), None),
    };
    let foreign = SavedPaymentMethod { merchant_id: "mer_b".into(), ..pm.clone() };
    assert!(!st.mandates.delete_payment_method(&foreign, &[detached("evt_x1")]).await.unwrap(), "tenancy");
    let other_customer = SavedPaymentMethod { customer_id: "cus_2".into(), ..pm.clone() };
    assert!(!st.mandates.delete_payment_method(&other_customer, &[detached("evt_x2")]).await.unwrap(), "another customer's");
    assert_eq!(st.sessions.list_payment_methods("mer_a", "cus_1").await.unwrap(), vec![pm.clone()]);
    assert!(st.mandates.delete_payment_method(&pm, &[detached("evt_d1")]).await.unwrap());
    assert!(!st.mandates.delete_payment_method(&pm, &[detached("evt_d2")]).await.unwrap(), "gone");
    assert!(st.sessions.list_payment_methods("mer_a", "cus_1").await.unwrap().is_empty());
    // Exactly the detach that removed it logged its event; the refused ones logged nothing.
    let query = EventQuery { event_type: Some("payment_method.detached".into()), limit: 10, ..Default::default() };
    let ids: Vec<String> = st.webhooks.list_events("mer_a", &query).await.unwrap().items.into_iter().map(|e| e.id).collect();
    assert_eq!(ids, ["evt_d1"]);
    assert!(st.webhooks.list_events("mer_b", &query).await.unwrap().items.is_empty());
}

#[macro_export]
macro_rules! contract_suite {
    ($make:expr) => {
        $crate::contract_suite!(@each $make;
            create_get_and_tenancy, duplicate_reference_guard, concurrent_creates_one_winner,
            versioned_updates, concurrent_transitions_one_wins, list_order_filters_cursor,
            status_filter_as_of_now, idempotency_lifecycle, idempotency_takeover_and_release,
            idempotency_concurrent_claims, idempotency_taken_in_the_write, merchants_clients_settings, aliases_and_saved_methods,
            webhook_endpoints_versioned_and_tenanted, deliveries_insert_once_and_update_by_version,
            merchant_event_log, first_payment_creates_mandate_atomically, mandates_versioned_listed_and_tenanted,
            payment_methods_detach, signing_profiles_versioned_and_tenanted, nonces_spent_once,
            attempts_limited_per_subject_and_source, concurrent_failures_never_pass_a_limit, settings_add_atomically,
            concurrent_refunds_never_exceed_what_was_received, refund_transitions_move_the_counters, refunds_listed_and_tenanted,
            processor_events_seen_once, lists_merge_in_order_across_pages);
    };
    (@each $make:expr; $($name:ident),+) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let stores = $make.await;
                $crate::contract::$name(stores).await;
            }
        )+
    };
}

pub async fn signing_profiles_versioned_and_tenanted(st: Stores) {
    use paysession_app::signing::SigningProfile;
    use paysession_domain::signed_requests::Mode;
    assert_eq!(st.signing.get_signing_profile("mer_a").await.unwrap(), None);
    let mut p = SigningProfile::empty("mer_a");
    p.version = 1;
    p.mode = Mode::Optional;
    st.signing.put_signing_profile(&p).await.unwrap();
    assert!(matches!(st.signing.put_signing_profile(&p).await, Err(StoreError::VersionConflict)), "a second first write loses");
    assert_eq!(st.signing.get_signing_profile("mer_a").await.unwrap(), Some(p.clone()));
    assert_eq!(st.signing.get_signing_profile("mer_b").await.unwrap(), None, "tenants see only their own");
    let mut next = p.clone();
    next.version = 2;
    next.mode = Mode::Required;
    st.signing.put_signing_profile(&next).await.unwrap();
    let mut stale = p.clone();
    stale.version = 2;
    assert!(matches!(st.signing.put_signing_profile(&stale).await, Err(StoreError::VersionConflict)), "written from a stale read");
    assert_eq!(st.signing.get_signing_profile("mer_a").await.unwrap().unwrap().mode, Mode::Required);
}

/// A processor's event id is recorded once (of concurrent deliveries one wins), forgotten on
/// request (its effect failed), and taken again once it expired.
pub async fn processor_events_seen_once(st: Stores) {
    let log = st.processor_events.clone();
    let later = Utc::now() + Duration::days(30);
    let firsts = futures::future::join_all((0..8).map(|_| {
        let log = log.clone();
        async move { log.first_sight("stripe:mer_a:evt_1", later).await.unwrap() }
    }))
    .await;
    assert_eq!(firsts.iter().filter(|f| **f).count(), 1, "one of eight concurrent deliveries: {firsts:?}");
    assert!(log.first_sight("stripe:mer_b:evt_1", later).await.unwrap(), "per merchant");
    log.forget("stripe:mer_a:evt_1").await.unwrap();
    assert!(log.first_sight("stripe:mer_a:evt_1", later).await.unwrap(), "forgotten: seen anew");
    assert!(log.first_sight("stripe:mer_a:evt_old", Utc::now() - Duration::seconds(5)).await.unwrap());
    assert!(log.first_sight("stripe:mer_a:evt_old", later).await.unwrap(), "an expired record is taken over");
    assert!(!log.first_sight("stripe:mer_a:evt_old", later).await.unwrap());
}

pub async fn nonces_spent_once(st: Stores) {
    let now = Utc::now();
    let until = now + Duration::seconds(600);
    let claims = (0..16).map(|i| {
        let s = st.signing.clone();
        tokio::spawn(async move { s.claim_nonce("mer_a", "rfc9421:n-1", &format!("claimant-{i}"), now, until).await.unwrap() })
    });
    let won = futures::future::join_all(claims).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(won, 1, "of 16 concurrent claims exactly one succeeds");
    assert!(
        !st.signing.claim_nonce("mer_a", "rfc9421:n-1", "claimant-x", now + Duration::seconds(599), until).await.unwrap(),
        "still live"
    );
    assert!(st.signing.claim_nonce("mer_b", "rfc9421:n-1", "claimant-y", now, until).await.unwrap(), "nonces are per merchant");
    let later = until + Duration::seconds(1);
    assert!(
        st.signing.claim_nonce("mer_a", "rfc9421:n-1", "claimant-z", later, later + Duration::seconds(600)).await.unwrap(),
        "reusable once past its time"
    );
    assert!(!st.signing.claim_nonce("mer_a", "rfc9421:n-1", "claimant-w", later, later + Duration::seconds(600)).await.unwrap());
}

fn sealed(text: &str) -> paysession_domain::webhook::SealedSecret {
    paysession_domain::webhook::SealedSecret { sealed: text.into(), expires_at: None, public_key: None }
}

const ATTEMPTS: paysession_app::limiter::AttemptPolicy =
    paysession_app::limiter::AttemptPolicy { scope: "contract", per_subject: 3, per_source: 5, window: Duration::seconds(60) };

pub async fn attempts_limited_per_subject_and_source(st: Stores) {
    // The start of a window, so every count below falls in it.
    let now = DateTime::from_timestamp(ATTEMPTS.window_index(Utc::now()) * 60 + 60, 0).unwrap();
    let count = |source: &'static str, subject: &'static str, at: DateTime<Utc>| {
        let limiter = st.limiter.clone();
        async move { limiter.count_failure(&ATTEMPTS, source, subject, at).await.unwrap() }
    };
    for i in 0..3 {
        assert!(count("198.51.100.1", "cid_x", now).await, "failure {i} of the subject is counted");
    }
    assert!(!count("198.51.100.1", "cid_x", now).await, "the subject's limit from this source is used up");
    assert!(count("198.51.100.2", "cid_x", now).await, "another source has its own count for the subject");
    assert!(count("198.51.100.1", "cid_y", now).await);
    assert!(count("198.51.100.1", "cid_y", now + Duration::seconds(59)).await);
    assert!(!count("198.51.100.1", "cid_z", now).await, "the source's own limit (5) is used up for every subject");
    assert!(count("198.51.100.1", "cid_x", now + Duration::seconds(60)).await, "the next window starts afresh");
    let other_scope = paysession_app::limiter::AttemptPolicy { scope: "other", ..ATTEMPTS };
    assert!(st.limiter.count_failure(&other_scope, "198.51.100.1", "cid_x", now).await.unwrap(), "scopes count apart");
}

pub async fn concurrent_failures_never_pass_a_limit(st: Stores) {
    let now = DateTime::from_timestamp(ATTEMPTS.window_index(Utc::now()) * 60 + 60, 0).unwrap();
    let policy = paysession_app::limiter::AttemptPolicy { per_subject: 10, per_source: 30, ..ATTEMPTS };
    let tries = (0..40).map(|_| {
        let limiter = st.limiter.clone();
        tokio::spawn(async move { limiter.count_failure(&policy, "203.0.113.9", "cid_brute", now).await.unwrap() })
    });
    let counted = futures::future::join_all(tries).await.into_iter().filter(|r| *r.as_ref().unwrap()).count();
    assert_eq!(counted, 10, "of 40 concurrent failures exactly the limit is counted");
}

pub async fn settings_add_atomically(st: Stores) {
    let adds = (0..20).map(|_| {
        let settings = st.settings.clone();
        tokio::spawn(async move { settings.add_to_setting("counter", 0, 5, 1_000).await.unwrap() })
    });
    let mut seen: Vec<i64> = futures::future::join_all(adds).await.into_iter().map(|r| r.unwrap().unwrap()).collect();
    seen.sort();
    assert_eq!(seen, (1..=20).map(|i| i * 5).collect::<Vec<_>>(), "every addition counted once, in some order");
    assert_eq!(st.settings.get_setting("counter").await.unwrap().as_deref(), Some("100"));
    assert_eq!(st.settings.add_to_setting("counter", 0, 901, 1_000).await.unwrap(), None, "past the maximum: refused");
    assert_eq!(st.settings.get_setting("counter").await.unwrap().as_deref(), Some("100"), "a refused addition writes nothing");
    assert_eq!(st.settings.add_to_setting("fresh", 7, 3, 1_000).await.unwrap(), Some(10), "an absent setting starts at start");
    // A setting an earlier release wrote as text goes on from the value the caller read.
    st.settings.put_setting("legacy", "40").await.unwrap();
    assert_eq!(st.settings.add_to_setting("legacy", 40, 2, 1_000).await.unwrap(), Some(42));
    assert_eq!(st.settings.get_setting("legacy").await.unwrap().as_deref(), Some("42"));
}

/// A refund of `amount` on payment `payment` of session `session_id`, created at `at`.
pub fn refund(
    id: &str,
    merchant: &str,
    session_id: &str,
    payment: &str,
    amount: i64,
    at: DateTime<Utc>,
) -> paysession_domain::refund::Refund {
    paysession_domain::refund::Refund {
        id: id.into(),
        merchant_id: merchant.into(),
        payment_id: payment.into(),
        session_id: session_id.into(),
        amount,
        currency: "EUR".into(),
        reason: None,
        status: paysession_domain::refund::RefundStatus::Pending,
        failure_reason: None,
        processor_reference: None,
        metadata: Default::default(),
        next_sync_at: Some(at + Duration::minutes(1)),
        sync_attempts: 0,
        created_at: at,
        updated_at: at,
        version: 1,
    }
}

/// A session of 1050 with a payment id that names it, and refund ids that do.
pub fn paid(merchant: &str, reference: &str) -> (PaymentSession, String) {
    let s = session(merchant, "cus_r", reference, t0());
    let payment = paysession_domain::session::child_id("pay", &s.id, "00000000000000aa");
    (s, payment)
}

pub fn refund_id(session: &PaymentSession, n: usize) -> String {
    paysession_domain::session::child_id("re", &session.id, &format!("{n:016x}"))
}

fn refund_events(r: &paysession_domain::refund::Refund) -> Vec<paysession_domain::session::EventRecord> {
    r.events(None, r.created_at, || paysession_app::ids::new_id("evt"))
}

/// The reservation is one conditional write: of 20 concurrent refunds of 10 on a payment
/// that received 100, exactly 10 are stored and the rest refused, with the counters as they
/// were; the exact remainder is accepted, one more is not; the 21st refund is refused
/// whatever is left.
pub async fn concurrent_refunds_never_exceed_what_was_received(st: Stores) {
    let (s, payment) = paid("mer_a", "ref-refund");
    insert(&st, &s).await.unwrap();
    let tries = (0..20).map(|i| {
        let (st, s, payment) = (st.clone(), s.clone(), payment.clone());
        tokio::spawn(async move {
            let r = refund(&refund_id(&s, i), "mer_a", &s.id, &payment, 10, t0());
            st.refunds.create_refund(&r, 100, &refund_events(&r), None).await
        })
    });
    let results: Vec<_> = futures::future::join_all(tries).await.into_iter().map(|r| r.unwrap()).collect();
    let ok = results.iter().filter(|r| r.is_ok()).count();
    let refused = results.iter().filter(|r| matches!(r, Err(StoreError::RefundRefused { .. }))).count();
    assert_eq!((ok, refused), (10, 10), "{results:?}");
    let money = st.refunds.payment_money("mer_a", &s.id, &payment).await.unwrap().unwrap();
    assert_eq!((money.refundable, money.refund_count, money.refunded), (0, 10, 0));
    let stored =
        st.refunds.list_refunds("mer_a", &RefundQuery { payment_id: Some(payment.clone()), limit: 100, ..Default::default() }).await;
    assert_eq!(stored.unwrap().items.len(), 10, "only the accepted refunds are stored");
    let events = st.sessions.session_events("mer_a", &s.id).await.unwrap();
    assert_eq!(events.iter().filter(|e| e.event_type == "refund.created").count(), 10, "one event per stored refund");

    // The exact remainder, and one more than it.
    let (s2, p2) = paid("mer_a", "ref-exact");
    insert(&st, &s2).await.unwrap();
    let first = refund(&refund_id(&s2, 1), "mer_a", &s2.id, &p2, 60, t0());
    st.refunds.create_refund(&first, 100, &refund_events(&first), None).await.unwrap();
    let over = refund(&refund_id(&s2, 2), "mer_a", &s2.id, &p2, 41, t0());
    assert!(matches!(
        st.refunds.create_refund(&over, 100, &[], None).await,
        Err(StoreError::RefundRefused { refundable: 40, refund_count: 1 })
    ));
    let (s4, p4) = paid("mer_a", "ref-first-over");
    insert(&st, &s4).await.unwrap();
    let more_than_received = refund(&refund_id(&s4, 1), "mer_a", &s4.id, &p4, 101, t0());
    assert!(
        matches!(
            st.refunds.create_refund(&more_than_received, 100, &[], None).await,
            Err(StoreError::RefundRefused { refundable: 100, refund_count: 0 })
        ),
        "a first refund above what was received"
    );
    let exact = refund(&refund_id(&s2, 3), "mer_a", &s2.id, &p2, 40, t0());
    st.refunds.create_refund(&exact, 100, &[], None).await.unwrap();
    assert_eq!(st.refunds.get_refund("mer_a", &over.id).await.unwrap(), None, "a refused refund is not stored");

    // The limit counts refunds, not money.
    let (s3, p3) = paid("mer_a", "ref-many");
    insert(&st, &s3).await.unwrap();
    for i in 0..20 {
        let r = refund(&refund_id(&s3, i), "mer_a", &s3.id, &p3, 1, t0());
        st.refunds.create_refund(&r, 1000, &[], None).await.unwrap();
    }
    let r21 = refund(&refund_id(&s3, 21), "mer_a", &s3.id, &p3, 1, t0());
    assert!(matches!(st.refunds.create_refund(&r21, 1000, &[], None).await, Err(StoreError::RefundRefused { refund_count: 20, .. })));
}

/// Transitions replace the refund by version and move the counters in the same write; a
/// late failure gives the amount back; a stale version writes nothing.
pub async fn refund_transitions_move_the_counters(st: Stores) {
    use paysession_domain::refund::RefundStatus;
    let (s, payment) = paid("mer_a", "ref-moves");
    insert(&st, &s).await.unwrap();
    let r = refund(&refund_id(&s, 1), "mer_a", &s.id, &payment, 30, t0());
    st.refunds.create_refund(&r, 100, &refund_events(&r), None).await.unwrap();
    let due = st.due.due_refunds(None, t0() + Duration::minutes(2), 10).await.unwrap();
    assert_eq!(due, vec![("mer_a".to_string(), r.id.clone())], "a pending refund's sync is due");
    let (ok, d) = r.moved(RefundStatus::Succeeded, None, t0()).unwrap().unwrap();
    let ok = paysession_domain::refund::Refund { next_sync_at: None, ..ok };
    st.refunds.update_refund(&ok, r.version, d, &ok.events(Some(&r), t0(), || paysession_app::ids::new_id("evt"))).await.unwrap();
    assert!(matches!(st.refunds.update_refund(&ok, r.version, d, &[]).await, Err(StoreError::VersionConflict)), "stale");
    let money = st.refunds.payment_money("mer_a", &s.id, &payment).await.unwrap().unwrap();
    assert_eq!((money.refundable, money.refunded), (70, 30));
    assert!(st.due.due_refunds(None, t0() + Duration::days(9), 10).await.unwrap().is_empty(), "nothing owed");
    let (late, d) = ok.moved(RefundStatus::Failed, Some("expired_or_canceled_card".into()), t0()).unwrap().unwrap();
    st.refunds.update_refund(&late, ok.version, d, &[]).await.unwrap();
    let money = st.refunds.payment_money("mer_a", &s.id, &payment).await.unwrap().unwrap();
    assert_eq!((money.refundable, money.refunded), (100, 0), "the late failure makes it refundable again");
    assert_eq!(st.refunds.get_refund("mer_a", &r.id).await.unwrap().unwrap().status, RefundStatus::Failed);
    let types: Vec<String> = st.sessions.session_events("mer_a", &s.id).await.unwrap().into_iter().map(|e| e.event_type).collect();
    assert_eq!(types, ["payment_session.created", "refund.created", "refund.updated", "refund.succeeded"]);
    let money = st.refunds.session_money("mer_a", &s.id).await.unwrap();
    assert_eq!(money.len(), 1);
}

pub async fn refunds_listed_and_tenanted(st: Stores) {
    let (s, payment) = paid("mer_a", "ref-list");
    insert(&st, &s).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let r = refund(&refund_id(&s, i), "mer_a", &s.id, &payment, 10, t0() + Duration::seconds(i as i64));
        st.refunds.create_refund(&r, 100, &refund_events(&r), None).await.unwrap();
        ids.push(r.id);
    }
    assert_eq!(st.refunds.get_refund("mer_b", &ids[0]).await.unwrap(), None, "another tenant sees nothing");
    assert_eq!(st.refunds.get_refund("mer_a", "re_nonsense").await.unwrap(), None);
    let q = |session: Option<&str>, payment: Option<&str>| RefundQuery {
        session_id: session.map(str::to_string),
        payment_id: payment.map(str::to_string),
        limit: 2,
        ..Default::default()
    };
    for query in [q(None, None), q(Some(&s.id), None), q(None, Some(&payment))] {
        let page = st.refunds.list_refunds("mer_a", &query).await.unwrap();
        assert_eq!(page.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [ids[2].as_str(), ids[1].as_str()], "{query:?}");
        assert!(page.has_more);
        let last = page.items.last().unwrap();
        let next = RefundQuery { after: Some(Cursor { created_at: last.created_at, id: last.id.clone() }), ..query.clone() };
        let page = st.refunds.list_refunds("mer_a", &next).await.unwrap();
        assert_eq!(page.items.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), [ids[0].as_str()]);
        assert!(!page.has_more);
    }
    assert!(st.refunds.list_refunds("mer_b", &q(None, None)).await.unwrap().items.is_empty());
    let pending = RefundQuery { status: Some(paysession_domain::refund::RefundStatus::Succeeded), limit: 10, ..Default::default() };
    assert!(st.refunds.list_refunds("mer_a", &pending).await.unwrap().items.is_empty());
}
