//! The route table: every HTTP route, the Lambda function that serves it in AWS, and the
//! scope it needs. The local server, template.yaml and the OpenAPI document are all checked
//! against this one list.

use http::Method;
use paysession_app::auth::Scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Route {
    OAuthToken,
    CreateSession,
    ListSessions,
    GetSession,
    ConfirmSession,
    CancelSession,
    ExpireSession,
    SessionEvents,
    OpenApi,
    TestClockGet,
    TestClockAdvance,
    Health,
    PageView,
    PageCard,
    PageStart,
    PageOtp,
    PageChallenge,
    PageChallengeDecide,
    SandboxDeposit,
    SandboxQrPay,
    SandboxOtp,
    CreateWebhookEndpoint,
    ListWebhookEndpoints,
    GetWebhookEndpoint,
    DeleteWebhookEndpoint,
    RotateWebhookSecret,
    ListWebhookDeliveries,
    ListEvents,
    GetEvent,
    RedeliverEvent,
    GetMandate,
    ListMandates,
    RevokeMandate,
    SuspendMandate,
    ResumeMandate,
    ListPaymentMethods,
    DetachPaymentMethod,
    GetMerchantSettings,
    UpdateMerchantSettings,
    CreateSigningKey,
    ListSigningKeys,
    GetSigningKey,
    RevokeSigningKey,
    GetPayment,
    ListPayments,
    CapturePayment,
    CancelPayment,
    CreateRefund,
    GetRefund,
    ListRefunds,
    CancelRefund,
    SandboxRefundComplete,
    SandboxProcessorCalls,
    StripeWebhook,
}

impl Route {
    /// Routes answered with HTML to the paying customer (no API token).
    pub fn is_page(self) -> bool {
        matches!(
            self,
            Route::PageView | Route::PageCard | Route::PageStart | Route::PageOtp | Route::PageChallenge | Route::PageChallengeDecide
        )
    }
}

/// How a route is authorised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Public,
    /// Any valid token.
    Authenticated,
    Scope(Scope),
}

pub struct RouteInfo {
    pub route: Route,
    pub method: Method,
    /// API Gateway style template: `/v1/payment_sessions/{id}`.
    pub path: &'static str,
    /// The `functions/` package (and template.yaml resource) serving it in AWS; `None` for
    /// local-server-only routes.
    pub function: Option<&'static str>,
    pub access: Access,
    /// Only present in sandbox mode.
    pub sandbox_only: bool,
}

macro_rules! route {
    ($r:ident, $m:ident, $p:literal, $f:expr, $a:expr, $s:expr) => {
        RouteInfo { route: Route::$r, method: Method::$m, path: $p, function: $f, access: $a, sandbox_only: $s }
    };
}

pub fn table() -> &'static [RouteInfo] {
    use Access::{Authenticated, Public};
    use paysession_app::auth::Scope as S;
    static TABLE: std::sync::OnceLock<Vec<RouteInfo>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        vec![
            route!(OAuthToken, POST, "/oauth/token", Some("oauth-token"), Public, false),
            route!(CreateSession, POST, "/v1/payment_sessions", Some("session-create"), Access::Scope(S::SessionsWrite), false),
            route!(ListSessions, GET, "/v1/payment_sessions", Some("session-list"), Access::Scope(S::SessionsRead), false),
            route!(GetSession, GET, "/v1/payment_sessions/{id}", Some("session-get"), Access::Scope(S::SessionsRead), false),
            route!(
                ConfirmSession,
                POST,
                "/v1/payment_sessions/{id}/confirm",
                Some("session-confirm"),
                Access::Scope(S::SessionsWrite),
                false
            ),
            route!(CancelSession, POST, "/v1/payment_sessions/{id}/cancel", Some("session-cancel"), Access::Scope(S::SessionsWrite), false),
            route!(ExpireSession, POST, "/v1/payment_sessions/{id}/expire", Some("session-expire"), Access::Scope(S::SessionsWrite), false),
            route!(SessionEvents, GET, "/v1/payment_sessions/{id}/events", Some("session-events"), Access::Scope(S::SessionsRead), false),
            route!(OpenApi, GET, "/openapi.json", Some("openapi"), Public, false),
            route!(TestClockGet, GET, "/v1/test_clock", Some("test-clock"), Authenticated, true),
            route!(TestClockAdvance, POST, "/v1/test_clock/advance", Some("test-clock"), Authenticated, true),
            route!(Health, GET, "/health", None, Public, false),
            route!(PageView, GET, "/pay/{token}", Some("hosted-page"), Public, false),
            route!(PageCard, POST, "/pay/{token}/card", Some("hosted-page"), Public, false),
            route!(PageStart, POST, "/pay/{token}/start", Some("hosted-page"), Public, false),
            route!(PageOtp, POST, "/pay/{token}/otp", Some("hosted-page"), Public, false),
            route!(PageChallenge, GET, "/pay/{token}/challenge/{attempt}", Some("hosted-page"), Public, false),
            route!(PageChallengeDecide, POST, "/pay/{token}/challenge/{attempt}", Some("hosted-page"), Public, false),
            route!(SandboxDeposit, POST, "/sandbox/virtual_accounts/{number}/deposits", Some("sandbox"), Public, true),
            route!(SandboxQrPay, POST, "/sandbox/qr/{payload}/pay", Some("sandbox"), Public, true),
            route!(SandboxOtp, GET, "/sandbox/otp", Some("sandbox"), Authenticated, true),
            route!(
                CreateWebhookEndpoint,
                POST,
                "/v1/webhook_endpoints",
                Some("webhook-endpoint-create"),
                Access::Scope(S::WebhooksManage),
                false
            ),
            route!(
                ListWebhookEndpoints,
                GET,
                "/v1/webhook_endpoints",
                Some("webhook-endpoint-list"),
                Access::Scope(S::WebhooksManage),
                false
            ),
            route!(
                GetWebhookEndpoint,
                GET,
                "/v1/webhook_endpoints/{id}",
                Some("webhook-endpoint-get"),
                Access::Scope(S::WebhooksManage),
                false
            ),
            route!(
                DeleteWebhookEndpoint,
                DELETE,
                "/v1/webhook_endpoints/{id}",
                Some("webhook-endpoint-delete"),
                Access::Scope(S::WebhooksManage),
                false
            ),
            route!(
                RotateWebhookSecret,
                POST,
                "/v1/webhook_endpoints/{id}/rotate_secret",
                Some("webhook-endpoint-rotate"),
                Access::Scope(S::WebhooksManage),
                false
            ),
            route!(
                ListWebhookDeliveries,
                GET,
                "/v1/webhook_endpoints/{id}/deliveries",
                Some("webhook-deliveries"),
                Access::Scope(S::WebhooksManage),
                false
            ),
            route!(ListEvents, GET, "/v1/events", Some("event-list"), Access::Scope(S::SessionsRead), false),
            route!(GetEvent, GET, "/v1/events/{id}", Some("event-get"), Access::Scope(S::SessionsRead), false),
            route!(RedeliverEvent, POST, "/v1/events/{id}/redeliver", Some("event-redeliver"), Access::Scope(S::WebhooksManage), false),
            route!(GetMandate, GET, "/v1/mandates/{id}", Some("mandate-get"), Access::Scope(S::SessionsRead), false),
            route!(ListMandates, GET, "/v1/mandates", Some("mandate-list"), Access::Scope(S::SessionsRead), false),
            route!(RevokeMandate, POST, "/v1/mandates/{id}/revoke", Some("mandate-revoke"), Access::Scope(S::MandatesWrite), false),
            route!(SuspendMandate, POST, "/v1/mandates/{id}/suspend", Some("mandate-suspend"), Access::Scope(S::MandatesWrite), false),
            route!(ResumeMandate, POST, "/v1/mandates/{id}/resume", Some("mandate-resume"), Access::Scope(S::MandatesWrite), false),
            route!(
                ListPaymentMethods,
                GET,
                "/v1/customers/{customer_id}/payment_methods",
                Some("payment-method-list"),
                Access::Scope(S::SessionsRead),
                false
            ),
            route!(
                DetachPaymentMethod,
                DELETE,
                "/v1/customers/{customer_id}/payment_methods/{pm_id}",
                Some("payment-method-detach"),
                Access::Scope(S::MandatesWrite),
                false
            ),
            route!(GetMerchantSettings, GET, "/v1/merchant/settings", Some("signing-keys"), Access::Scope(S::KeysManage), false),
            route!(UpdateMerchantSettings, POST, "/v1/merchant/settings", Some("signing-keys"), Access::Scope(S::KeysManage), false),
            route!(CreateSigningKey, POST, "/v1/signing_keys", Some("signing-keys"), Access::Scope(S::KeysManage), false),
            route!(ListSigningKeys, GET, "/v1/signing_keys", Some("signing-keys"), Access::Scope(S::KeysManage), false),
            route!(GetSigningKey, GET, "/v1/signing_keys/{id}", Some("signing-keys"), Access::Scope(S::KeysManage), false),
            route!(RevokeSigningKey, DELETE, "/v1/signing_keys/{id}", Some("signing-keys"), Access::Scope(S::KeysManage), false),
            route!(GetPayment, GET, "/v1/payments/{id}", Some("payment-get"), Access::Scope(S::SessionsRead), false),
            route!(ListPayments, GET, "/v1/payments", Some("payment-list"), Access::Scope(S::SessionsRead), false),
            route!(CapturePayment, POST, "/v1/payments/{id}/capture", Some("payment-capture"), Access::Scope(S::SessionsWrite), false),
            route!(CancelPayment, POST, "/v1/payments/{id}/cancel", Some("payment-cancel"), Access::Scope(S::SessionsWrite), false),
            route!(CreateRefund, POST, "/v1/refunds", Some("refund-create"), Access::Scope(S::RefundsWrite), false),
            route!(GetRefund, GET, "/v1/refunds/{id}", Some("refund-get"), Access::Scope(S::SessionsRead), false),
            route!(ListRefunds, GET, "/v1/refunds", Some("refund-list"), Access::Scope(S::SessionsRead), false),
            route!(CancelRefund, POST, "/v1/refunds/{id}/cancel", Some("refund-cancel"), Access::Scope(S::RefundsWrite), false),
            route!(SandboxRefundComplete, POST, "/sandbox/refunds/{id}/complete", Some("sandbox"), Access::Scope(S::RefundsWrite), true),
            route!(SandboxProcessorCalls, GET, "/sandbox/processor_calls/{id}", None, Authenticated, true),
            route!(StripeWebhook, POST, "/v1/processors/stripe/webhooks/{merchant_id}", Some("processor-webhook"), Public, false),
        ]
    })
}

impl Route {
    pub fn info(self) -> &'static RouteInfo {
        table().iter().find(|i| i.route == self).expect("every route is in the table")
    }
}

/// Matches `path` against a template, returning the `{name}` segments.
pub fn match_path(template: &str, path: &str) -> Option<Vec<(&'static str, String)>> {
    let path = path.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(path);
    let mut t = template.split('/');
    let mut p = path.split('/');
    let mut params = Vec::new();
    loop {
        match (t.next(), p.next()) {
            (None, None) => return Some(params),
            (Some(ts), Some(ps)) if ts.starts_with('{') && ts.ends_with('}') => {
                if ps.is_empty() {
                    return None;
                }
                // Templates are 'static; leak-free because the names are sliced from them.
                let name: &'static str = static_name(ts);
                params.push((name, ps.to_string()));
            }
            (Some(ts), Some(ps)) if ts == ps => {}
            _ => return None,
        }
    }
}

fn static_name(segment: &str) -> &'static str {
    match segment {
        "{id}" => "id",
        "{token}" => "token",
        "{attempt}" => "attempt",
        "{number}" => "number",
        "{payload}" => "payload",
        "{customer_id}" => "customer_id",
        "{pm_id}" => "pm_id",
        "{merchant_id}" => "merchant_id",
        other => panic!("route template uses unknown parameter {other}"),
    }
}

pub enum Resolved {
    Found(&'static RouteInfo, Vec<(&'static str, String)>),
    /// The path exists with other methods.
    MethodNotAllowed(Vec<Method>),
    NotFound,
}

/// Finds the route for a request (the local server's router).
pub fn resolve(method: &Method, path: &str, sandbox: bool) -> Resolved {
    let mut allowed = Vec::new();
    for info in table().iter().filter(|i| sandbox || !i.sandbox_only) {
        if let Some(params) = match_path(info.path, path) {
            if info.method == *method {
                return Resolved::Found(info, params);
            }
            allowed.push(info.method.clone());
        }
    }
    if allowed.is_empty() { Resolved::NotFound } else { Resolved::MethodNotAllowed(allowed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert_eq!(match_path("/v1/payment_sessions/{id}", "/v1/payment_sessions/ps_1"), Some(vec![("id", "ps_1".into())]));
        assert_eq!(match_path("/v1/payment_sessions/{id}", "/v1/payment_sessions/"), None);
        assert_eq!(match_path("/v1/payment_sessions", "/v1/payment_sessions/"), Some(vec![]));
        assert!(match_path("/v1/payment_sessions/{id}/cancel", "/v1/payment_sessions/ps_1").is_none());
        assert!(matches!(resolve(&Method::DELETE, "/v1/payment_sessions/x", true), Resolved::MethodNotAllowed(_)));
        assert!(matches!(resolve(&Method::GET, "/v1/test_clock", false), Resolved::NotFound));
    }
}
