//! Bearer-token authentication and scope checks shared by every API function.

use paysession_app::auth::{Principal, TokenError};
use paysession_app::Deps;

use crate::problem::ApiError;
use crate::request::Call;
use crate::routes::Access;

pub fn authenticate(deps: &Deps, call: &Call<'_>, access: Access) -> Result<Option<Principal>, ApiError> {
    if access == Access::Public {
        return Ok(None);
    }
    let header = call.header("authorization").ok_or(ApiError::Unauthorized(None))?;
    let token = header
        .strip_prefix("Bearer ")
        .or_else(|| header.strip_prefix("bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized(Some("the Authorization header must be 'Bearer <token>'".into())))?;
    let principal = deps.tokens.verify(token).map_err(|e| {
        ApiError::Unauthorized(Some(match e {
            TokenError::Expired => "the access token has expired; request a new one".into(),
            TokenError::Malformed | TokenError::BadSignature => "the access token is invalid".into(),
        }))
    })?;
    if let Access::Scope(scope) = access
        && !principal.has(scope)
    {
        return Err(ApiError::InsufficientScope(scope.as_str()));
    }
    Ok(Some(principal))
}
