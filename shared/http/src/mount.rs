//! Every handler mounted on its route: the local server's router and the test harness's
//! way into a function's handler. Lambda functions do not link this module; each names its
//! one handler in its `main.rs` (see `paysession-runtime`).

use std::sync::Arc;

use lambda_http::{Body, Request, Response};
use paysession_app::ports::{DeliveryQueue, Store};
use paysession_app::{Core, Payments};
use paysession_domain::signed_requests::RequestParts;

use crate::handlers::{events, mandates, misc, oauth, payments, processors, sandbox, sessions, signing, webhooks};
use crate::pipeline::{Params, api, public, raw, unrouted};
use crate::problem::ApiError;
use crate::routes::{Route, RouteInfo, match_path};

/// Everything the mounted handlers use.
pub struct Mounted<S: ?Sized> {
    pub core: Core<S>,
    pub payments: Payments,
    /// Where fan-out and redelivery queue deliveries.
    pub queue: Arc<dyn DeliveryQueue>,
}

impl<S: ?Sized> Clone for Mounted<S> {
    fn clone(&self) -> Self {
        Mounted { core: self.core.clone(), payments: self.payments.clone(), queue: self.queue.clone() }
    }
}

impl<S: Store + ?Sized> crate::pipeline::AtMerchant for Mounted<S> {
    fn at_merchant<'a>(&'a self, merchant_id: &'a str) -> crate::pipeline::MerchantFuture<'a, Self> {
        Box::pin(async move { Ok(Mounted { core: self.core.at_merchant(merchant_id).await?, ..self.clone() }) })
    }
    fn check_signature<'a>(&'a self, merchant_id: &'a str, parts: &'a RequestParts<'a>) -> crate::pipeline::CheckFuture<'a> {
        self.core.check_signature(merchant_id, parts)
    }
}

/// Serves one request for a known route. Never fails: errors become problem+json.
pub async fn handle<S: Store + ?Sized>(m: &Mounted<S>, info: &RouteInfo, params: Params, req: Request) -> Response<Body> {
    let keys = &m.core.keys;
    macro_rules! api {
        ($h:expr) => {
            api(m, keys, info, params, req, |m, p, call| Box::pin($h(&m.core, p, call))).await
        };
    }
    macro_rules! public {
        ($h:expr) => {
            public(m, info, params, req, |m, call| Box::pin($h(&m.core, call))).await
        };
    }
    match info.route {
        Route::CreateSession => {
            api(m, keys, info, params, req, |m, p, call| Box::pin(sessions::create(&m.core, &m.payments, p, call))).await
        }
        Route::ListSessions => api!(sessions::list),
        Route::GetSession => api!(sessions::get),
        Route::ConfirmSession => api!(sessions::confirm),
        Route::CancelSession => api!(sessions::cancel),
        Route::ExpireSession => api!(sessions::expire),
        Route::SessionEvents => api!(sessions::events),
        Route::TestClockGet => api!(misc::test_clock_get),
        Route::TestClockAdvance => api!(misc::test_clock_advance),
        Route::SandboxOtp => api!(sandbox::otp),
        Route::CreateWebhookEndpoint => api!(webhooks::create),
        Route::ListWebhookEndpoints => api!(webhooks::list),
        Route::GetWebhookEndpoint => api!(webhooks::get),
        Route::DeleteWebhookEndpoint => api!(webhooks::delete),
        Route::RotateWebhookSecret => api!(webhooks::rotate),
        Route::ListWebhookDeliveries => api!(webhooks::deliveries),
        Route::ListEvents => api!(events::list),
        Route::GetEvent => api!(events::get),
        Route::RedeliverEvent => {
            api(m, keys, info, params, req, |m, p, call| Box::pin(events::redeliver(&m.core, m.queue.as_ref(), p, call))).await
        }
        Route::GetMandate => api!(mandates::get),
        Route::ListMandates => api!(mandates::list),
        Route::RevokeMandate => api!(mandates::revoke),
        Route::SuspendMandate => api!(mandates::suspend),
        Route::ResumeMandate => api!(mandates::resume),
        Route::ListPaymentMethods => api!(mandates::payment_methods),
        Route::DetachPaymentMethod => api!(mandates::detach_payment_method),
        Route::GetMerchantSettings => api!(signing::get_settings),
        Route::UpdateMerchantSettings => api!(signing::update_settings),
        Route::CreateSigningKey => api!(signing::create_key),
        Route::ListSigningKeys => api!(signing::list_keys),
        Route::GetSigningKey => api!(signing::get_key),
        Route::RevokeSigningKey => api!(signing::revoke_key),
        Route::GetPayment => api!(payments::get_payment),
        Route::ListPayments => api!(payments::list_payments),
        Route::CapturePayment => {
            api(m, keys, info, params, req, |m, p, call| Box::pin(payments::capture(&m.core, &m.payments, p, call))).await
        }
        Route::CancelPayment => {
            api(m, keys, info, params, req, |m, p, call| Box::pin(payments::cancel(&m.core, &m.payments, p, call))).await
        }
        Route::CreateRefund => {
            api(m, keys, info, params, req, |m, p, call| Box::pin(payments::create_refund(&m.core, &m.payments, p, call))).await
        }
        Route::GetRefund => api!(payments::get_refund),
        Route::ListRefunds => api!(payments::list_refunds),
        Route::CancelRefund => api!(payments::cancel_refund),
        Route::SandboxRefundComplete => api!(sandbox::complete_refund),
        Route::StripeWebhook => {
            public(m, info, params, req, |m, call| Box::pin(processors::stripe_webhook(&m.core, &m.payments, call))).await
        }
        Route::SandboxProcessorCalls => {
            api(m, keys, info, params, req, |m, p, call| Box::pin(sandbox::processor_calls(&m.payments, p, call))).await
        }
        Route::OpenApi => public!(misc::openapi),
        Route::Health => public!(misc::health),
        Route::SandboxDeposit => public!(sandbox::deposit),
        Route::SandboxQrPay => public!(sandbox::qr_pay),
        Route::OAuthToken => raw(m, info, params, req, |m, call| Box::pin(oauth::token(&m.core, call))).await,
        route @ (Route::PageView
        | Route::PageCard
        | Route::PageStart
        | Route::PageOtp
        | Route::PageChallenge
        | Route::PageChallengeDecide) => {
            raw(m, info, params, req, |m, call| Box::pin(crate::page::handle(&m.core, &m.payments, route, call))).await
        }
    }
}

/// One invocation as the function serving `route` sees it (API Gateway event → response):
/// among the routes of that function, the one matching the request.
pub async fn invoke<S: Store + ?Sized>(route: Route, m: &Mounted<S>, req: Request) -> Response<Body> {
    let function = route.info().function;
    let found = crate::routes::table()
        .iter()
        .filter(|i| i.function == function)
        .find_map(|i| (i.method == req.method()).then(|| match_path(i.path, req.uri().path()).map(|p| (i, p))).flatten());
    match found {
        Some((info, params)) => handle(m, info, params, req).await,
        None => unrouted(ApiError::NotFound(format!("no route for {}", req.uri().path())), &req),
    }
}
