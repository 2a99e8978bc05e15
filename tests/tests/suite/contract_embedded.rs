//! The storage contract on the embedded (SQLite) store.

use paysession_tests::contract::Stores;

async fn fresh() -> Stores {
    let dir = tempfile::tempdir().unwrap().keep();
    Stores::from(paysession_embedded::EmbeddedStore::open_dir(&dir).unwrap())
}

paysession_tests::contract_suite!(fresh());
