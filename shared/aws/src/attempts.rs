//! Failed attempts on DynamoDB: one item per source and window holding the source's total
//! and a count per subject, so one conditional `UpdateItem` per failed attempt checks and
//! counts both limits, whichever instance took the attempt (on the store's own client,
//! `wire`, like its other single-item writes). TTL removes past windows;
//! reads never look at them (the window is in the key).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::Update;
use chrono::{DateTime, Utc};
use paysession_app::limiter::{AttemptPolicy, subject_key};
use paysession_app::ports::{AttemptLimiter, StoreError};

use crate::keys::{PK, SK, TTL, attempts_pk, attempts_sk};
use crate::store::{DynamoStore, backend, n, s};

/// Past windows stay this much longer before TTL may remove them.
const KEEP_SECS: i64 = 60;

#[async_trait]
impl AttemptLimiter for DynamoStore {
    async fn count_failure(&self, policy: &AttemptPolicy, source: &str, subject: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
        // A retry of this call after a lost answer may count one failure twice: the limit
        // then errs towards refusing early, never towards letting more through.
        let update = Update::builder()
            .table_name(self.table())
            .key(PK, s(attempts_pk(&policy.source_key(source))))
            .key(SK, s(attempts_sk(policy.window_index(now))))
            .update_expression("ADD #total :one, #subject :one SET #ttl = :ttl")
            .condition_expression(
                "(attribute_not_exists(#total) OR #total < :per_source) AND (attribute_not_exists(#subject) OR #subject < :per_subject)",
            )
            .expression_attribute_names("#total", "n")
            .expression_attribute_names("#subject", format!("s{}", subject_key(subject)))
            .expression_attribute_names("#ttl", TTL)
            .expression_attribute_values(":one", n(1))
            .expression_attribute_values(":per_source", n(i64::from(policy.per_source)))
            .expression_attribute_values(":per_subject", n(i64::from(policy.per_subject)))
            .expression_attribute_values(":ttl", n(policy.window_end(now).timestamp() + KEEP_SECS))
            .build()
            .map_err(backend)?;
        Ok(self.update_item(update, false).await?.is_some())
    }
}
