//! The storage contract on the DynamoDB adapter, against Amazon's DynamoDB Local.

use paysession_tests::contract::Stores;

async fn fresh() -> Stores {
    Stores::from(paysession_tests::dynamo::fresh_table().await)
}

paysession_tests::contract_suite!(fresh());
