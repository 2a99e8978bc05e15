//! The signing profile (one item per merchant, read consistently on every API request so
//! a revoked key stops verifying at once) and spent nonces (one item each, TTL-collected;
//! the condition, not the TTL, decides whether a nonce is still live).

use async_trait::async_trait;
use aws_sdk_dynamodb::types::Put;
use chrono::{DateTime, Utc};
use paysession_app::ports::{SigningStore, StoreError};
use paysession_app::signing::SigningProfile;

use crate::keys::*;
use crate::store::{DynamoStore, attr_str, backend, body, item, ms, n, parse_body, s};

#[async_trait]
impl SigningStore for DynamoStore {
    async fn get_signing_profile(&self, merchant_id: &str) -> Result<Option<SigningProfile>, StoreError> {
        self.get_item(merchant_pk(merchant_id), SIGNING_SK).await?.map(|it| parse_body(&it)).transpose()
    }

    async fn put_signing_profile(&self, profile: &SigningProfile) -> Result<(), StoreError> {
        let it = item([
            (PK, s(merchant_pk(&profile.merchant_id))),
            (SK, s(SIGNING_SK)),
            ("version", n(profile.version as i64)),
            ("body", body(profile)?),
        ]);
        let put = Put::builder().table_name(self.table()).set_item(Some(it));
        let put = if profile.version <= 1 {
            put.condition_expression("attribute_not_exists(#pk)").expression_attribute_names("#pk", PK)
        } else {
            put.condition_expression("#v = :expected")
                .expression_attribute_names("#v", "version")
                .expression_attribute_values(":expected", n(profile.version as i64 - 1))
        };
        match self.put_item(put.build().map_err(backend)?).await? {
            true => Ok(()),
            false => Err(StoreError::VersionConflict),
        }
    }

    async fn claim_nonce(
        &self,
        merchant_id: &str,
        nonce: &str,
        claimant: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let it = item([
            (PK, s(nonce_pk(merchant_id, nonce))),
            (SK, s(NONCE_SK)),
            ("until_ms", n(ms(until))),
            ("claimant", s(claimant)),
            (TTL, n(until.timestamp() + 1)),
        ]);
        let put = Put::builder()
            .table_name(self.table())
            .set_item(Some(it))
            .condition_expression("attribute_not_exists(#pk) OR until_ms <= :now")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_values(":now", n(ms(now)))
            .build()
            .map_err(backend)?;
        if self.put_item(put).await? {
            return Ok(true);
        }
        // Refused: a replay, or this claim's own put whose answer was lost and whose retry
        // then failed the condition. Only this request knows its claimant.
        let stored = self.get_item(nonce_pk(merchant_id, nonce), NONCE_SK).await?;
        Ok(stored.as_ref().and_then(|it| attr_str(it, "claimant")) == Some(claimant))
    }
}
