//! The storage contract on the DynamoDB adapter, against Amazon's DynamoDB Local.

use paysession_tests::contract::Stores;

async fn fresh() -> Stores {
    Stores::from(paysession_tests::dynamo::fresh_table().await)
}

paysession_tests::contract_suite!(fresh());

/// A session written before sharding (its GSI1 key the unsharded `MER#m#SESSIONS`) is still
/// listed, in order with the sharded ones.
#[tokio::test]
async fn sessions_written_before_sharding_are_still_listed() {
    use paysession_app::ports::{SessionQuery, SessionStore as _};
    use paysession_aws::keys::{GSI1PK, PK, SESSION_SK, SK, session_pk};
    let store = paysession_tests::dynamo::fresh_table().await;
    let stores = Stores::from(store.clone());
    let t = chrono::Utc::now();
    let old = paysession_tests::contract::session("mer_l", "cus_1", "old", t);
    let new = paysession_tests::contract::session("mer_l", "cus_1", "new", t + chrono::Duration::seconds(1));
    paysession_tests::contract::insert(&stores, &old).await.unwrap();
    paysession_tests::contract::insert(&stores, &new).await.unwrap();
    let av = aws_sdk_dynamodb::types::AttributeValue::S;
    store
        .client()
        .update_item()
        .table_name(store.table())
        .key(PK, av(session_pk("mer_l", &old.id)))
        .key(SK, av(SESSION_SK.into()))
        .update_expression("SET #g = :legacy")
        .expression_attribute_names("#g", GSI1PK)
        .expression_attribute_values(":legacy", av("MER#mer_l#SESSIONS".into()))
        .send()
        .await
        .unwrap();
    let q = SessionQuery { limit: 10, now: t, ..Default::default() };
    let listed: Vec<String> = store.list_sessions("mer_l", &q).await.unwrap().items.into_iter().map(|s| s.id).collect();
    assert_eq!(listed, vec![new.id, old.id]);
}

/// Issue 35: the local server's sweeps read what is due, not the table. On DynamoDB Local a
/// due item carries the due index's keys; a sweep is one `Query` of that index, after one
/// filtered `Scan` per kind and process for items written before it. An item no longer due
/// leaves the index with the write that clears its due time.
#[tokio::test]
async fn sweeps_query_only_what_is_due() {
    use chrono::Duration;
    use paysession_app::reconcile::DueMoney as _;
    use paysession_tests::contract::{insert, paid, refund, refund_id, t0};
    let (store, counter) = paysession_tests::dynamo::counted_table().await;
    let store = std::sync::Arc::new(store);
    let stores = Stores::from_arc(store.clone());
    let mut refunds = Vec::new();
    for i in 0..12 {
        let (s, payment) = paid("mer_due", &format!("due-{i}"));
        insert(&stores, &s).await.unwrap();
        // Half due a minute after t0, half a day after.
        let mut r = refund(&refund_id(&s, 1), "mer_due", &s.id, &payment, 10, t0());
        if i % 2 == 1 {
            r.next_sync_at = Some(t0() + Duration::days(1));
        }
        stores.refunds.create_refund(&r, 1050, &[], None).await.unwrap();
        refunds.push(r);
    }
    counter.take();
    assert!(store.due_refunds(None, t0(), 10).await.unwrap().is_empty(), "nothing due yet");
    assert_eq!(counter.take().get("Scan"), Some(&1), "the first sweep of a kind scans once, for items older than the index");

    let at = t0() + Duration::minutes(2);
    let due = store.due_refunds(None, at, 10).await.unwrap();
    let requests = counter.take();
    assert_eq!((requests.get("Scan"), requests.get("Query")), (None, Some(&1)), "{requests:?}");
    let want: std::collections::BTreeSet<String> = refunds.iter().step_by(2).map(|r| r.id.clone()).collect();
    assert_eq!(due.iter().map(|(m, id)| (assert_eq!(m, "mer_due"), id.clone()).1).collect::<std::collections::BTreeSet<_>>(), want);
    assert_eq!(store.due_refunds(None, at, 2).await.unwrap().len(), 2, "at most the limit");

    // Settled: its write clears the due time, and it is no longer found.
    let first = &refunds[0];
    let settled = paysession_domain::refund::Refund { next_sync_at: None, version: 2, ..first.clone() };
    stores.refunds.update_refund(&settled, first.version, Default::default(), &[]).await.unwrap();
    let due = store.due_refunds(None, at, 10).await.unwrap();
    assert_eq!(due.len(), 5);
    assert!(due.iter().all(|(_, id)| *id != first.id));
    assert_eq!(store.due_refunds(None, t0() + Duration::days(2), 20).await.unwrap().len(), 11);
}

/// Issue 35: an event id names its subject, so `get_event` finds it in the subject's
/// partition and the item has no by-id index entry (one index write less per event). An
/// event whose id names nothing (written before) keeps the entry and is found by it; another
/// merchant finds neither.
#[tokio::test]
async fn events_are_found_by_the_subject_their_id_names() {
    use aws_sdk_dynamodb::types::AttributeValue as AV;
    use paysession_app::ids::{new_event_id, new_id};
    use paysession_aws::keys::{GSI2PK, PK, SK, event_sk, session_pk};
    use paysession_domain::session::{MerchantAction, events_for};
    use paysession_tests::contract::{insert, session, t0};
    let store = paysession_tests::dynamo::fresh_table().await;
    let stores = Stores::from(store.clone());
    let s = session("mer_ev", "cus_1", "named", t0());
    let named = events_for(None, &s, t0(), || new_event_id(&s.id));
    stores.sessions.create_session(&s, &named, None).await.unwrap();
    assert!(named[0].id.starts_with(&format!("evt_{}_", s.id)));
    let cancelled = s.apply(MerchantAction::Cancel { reason: paysession_domain::model::CancellationReason::Abandoned }, t0()).unwrap();
    let legacy = events_for(Some(&s), &cancelled, t0(), || new_id("evt"));
    stores.sessions.update_session(&cancelled, s.version, &legacy, None).await.unwrap();
    insert(&stores, &session("mer_ev", "cus_1", "other", t0())).await.unwrap();

    let raw = |version: u64, i: usize| {
        let (client, table) = (store.client().clone(), store.table().to_string());
        let pk = session_pk("mer_ev", &s.id);
        async move {
            client.get_item().table_name(table).key(PK, AV::S(pk)).key(SK, AV::S(event_sk(version, i))).send().await.unwrap().item.unwrap()
        }
    };
    assert!(!raw(s.version, 0).await.contains_key(GSI2PK), "a subject-named event has no by-id entry");
    assert!(raw(cancelled.version, 0).await.contains_key(GSI2PK), "a random id keeps it");
    for e in named.iter().chain(&legacy) {
        assert_eq!(stores.webhooks.get_event("mer_ev", &e.id).await.unwrap().map(|f| f.id), Some(e.id.clone()));
        assert_eq!(stores.webhooks.get_event("mer_other", &e.id).await.unwrap(), None, "another merchant's");
    }
    let unknown = new_event_id(&s.id);
    assert_eq!(stores.webhooks.get_event("mer_ev", &unknown).await.unwrap(), None);
    assert_eq!(stores.sessions.session_events("mer_ev", &s.id).await.unwrap().len(), named.len() + legacy.len());
}
