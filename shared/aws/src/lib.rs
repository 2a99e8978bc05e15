//! AWS adapters: the storage ports on DynamoDB, and configuration loading for Lambda.

mod attempts;
mod body;
pub mod bus;
pub mod keys;
mod mandates;
mod refunds;
pub mod scheduler;
mod sdk;
mod signing;
pub mod sqs;
mod store;
pub mod stream;
pub mod stream_poller;
pub mod table;
mod webhooks;
pub mod wire;

pub use aws_types::SdkConfig;
pub use sdk::{Trust, sdk_config, sdk_config_with};
pub use store::DynamoStore;

/// An SDK error with its service code and message, for logs and operator messages.
pub fn describe<E, R>(e: &aws_sdk_dynamodb::error::SdkError<E, R>) -> String
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match e.as_service_error() {
        Some(se) => format!("{}: {}", se.code().unwrap_or("error"), se.message().unwrap_or("no message")),
        None => format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(e)),
    }
}

/// A DynamoDB client from the standard AWS environment (region, credentials,
/// `AWS_ENDPOINT_URL_DYNAMODB` for DynamoDB Local).
pub async fn dynamodb_client() -> Result<aws_sdk_dynamodb::Client, String> {
    Ok(aws_sdk_dynamodb::Client::new(&sdk_config().await?))
}
