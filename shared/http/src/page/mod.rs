//! The hosted payment page: server-rendered HTML that works without JavaScript.
//!
//! Every payment goes claim → processor → outcome, each step one conditional write (see
//! `paysession_domain::payment`), so two tabs paying at once reach the processor once.

mod html;
mod i18n;
pub mod security;
mod view;

use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use paysession_app::otp;
use paysession_app::payments::{self, CardError, CardSource, Decision, PaymentFailure, Step};
use paysession_app::ports::{MandateStore, MerchantStore, RefundStore, SessionStore, SettingsStore};
use paysession_app::processor::RedirectMethod;
use paysession_app::{Core, Payments};
use paysession_domain::card::parse_card;
use paysession_domain::mandate::CustomerAcceptance;
use paysession_domain::model::{PaymentMethodKind, SavePaymentMethod, SessionType};
use paysession_domain::payment::{AttemptStatus, PaymentAttempt};
use paysession_domain::session::PaymentSession;
use paysession_domain::{FieldError, SessionStatus};

use html::money;
use i18n::{Lang, failure, t};
use view::{Frame, Link, render};

use crate::pipeline::{Params, raw};
use crate::request::{Call, parse_form};
use crate::routes::{Route, RouteInfo};

/// What a page handler has to work with.
struct Page<'a, S: ?Sized> {
    cx: &'a Core<S>,
    pay: &'a Payments,
    call: &'a Call<'a>,
    token: String,
    session: PaymentSession,
    merchant_name: String,
    brand_color: String,
    lang: Lang,
    nonce: String,
}

/// Serves one of the page's routes (the `hosted-page` function's group).
pub async fn serve<S: SessionStore + MerchantStore + MandateStore + SettingsStore + RefundStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    info: &'static RouteInfo,
    params: Params,
    req: Request,
) -> Response<Body> {
    let route = info.route;
    raw(&(cx, pay), info, params, req, move |c, call| Box::pin(handle(c.0, c.1, route, call))).await
}

pub async fn handle<S: SessionStore + MerchantStore + MandateStore + SettingsStore + RefundStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    route: Route,
    call: &Call<'_>,
) -> Response<Body> {
    let token = call.param("token").to_string();
    let session = paysession_app::sessions::find_by_page_token(&*cx.store, &token).await;
    let session = match session {
        Ok(Some(s)) => s,
        Ok(None) => return bare(StatusCode::NOT_FOUND, Lang::En, t(Lang::En, "not_found")),
        Err(e) => {
            tracing::error!(error = %e, "page lookup failed");
            return bare(StatusCode::SERVICE_UNAVAILABLE, Lang::En, "Temporarily unavailable. Try again.");
        }
    };
    // The page runs on the session's merchant's clock (its sandbox test clock).
    let cx = &match cx.at_merchant(&session.merchant_id).await {
        Ok(cx) => cx,
        Err(e) => {
            tracing::error!(error = %e, "page clock lookup failed");
            return bare(StatusCode::SERVICE_UNAVAILABLE, Lang::En, "Temporarily unavailable. Try again.");
        }
    };
    let merchant = cx.merchant(&session.merchant_id).await.ok().flatten();
    let (merchant_name, brand_color) = merchant
        .map(|m| (m.display_name.clone(), m.brand_color.clone()))
        .unwrap_or_else(|| ("paysession".into(), view::NEUTRAL_BRAND.into()));
    let page = Page {
        cx,
        pay,
        call,
        token,
        lang: Lang::from_locale(&session.spec.locale),
        session,
        merchant_name,
        brand_color,
        nonce: security::nonce(),
    };
    match route {
        Route::PageView => page.view().await,
        Route::PageCard => page.pay_card().await,
        Route::PageStart => page.start_redirect().await,
        Route::PageOtp => page.otp().await,
        Route::PageChallenge => page.challenge().await,
        Route::PageChallengeDecide => page.decide().await,
        _ => unreachable!("only page routes reach the page handler"),
    }
}

/// A page without a session (unknown link).
fn bare(status: StatusCode, lang: Lang, text: &str) -> Response<Body> {
    let nonce = security::nonce();
    let f = Frame::new(lang, &nonce, "paysession", view::NEUTRAL_BRAND, t(lang, "title"), false);
    respond(status, &security::csp(None, &nonce), false, render(&view::MessageView { f, kind: "alert", text, link: None }))
}

fn respond(status: StatusCode, csp: &str, framable: bool, body: String) -> Response<Body> {
    let mut r = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .body(Body::Text(body))
        .expect("static parts");
    secure_headers(r.headers_mut(), csp, framable);
    r
}

fn secure_headers(h: &mut http::HeaderMap, csp: &str, framable: bool) {
    h.insert("content-security-policy", HeaderValue::from_str(csp).expect("ascii csp"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if !framable {
        // For browsers without CSP level 2.
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
}

fn form_field<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn query_param(call: &Call<'_>, name: &str) -> Option<String> {
    crate::request::query_value(call.req.uri().query(), name)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl<'a, S: SessionStore + MandateStore + RefundStore + ?Sized> Page<'a, S> {
    fn now(&self) -> DateTime<Utc> {
        self.cx.clock.now()
    }

    fn frame(&self, title: &'a str) -> Frame<'_> {
        Frame::new(self.lang, &self.nonce, &self.merchant_name, &self.brand_color, title, self.cx.config.sandbox)
    }

    fn framable(&self) -> bool {
        self.session.spec.allowed_domains.iter().any(|d| d.is_origin())
    }

    fn html(&self, status: StatusCode, body: String) -> Response<Body> {
        respond(status, &security::csp(Some(&self.session), &self.nonce), self.framable(), body)
    }

    fn message(&self, status: StatusCode, kind: &'static str, key: &str, link: Option<Link>) -> Response<Body> {
        let f = self.frame(t(self.lang, "title"));
        self.html(status, render(&view::MessageView { f, kind, text: t(self.lang, key), link }))
    }

    fn return_link(&self, url: Option<String>) -> Option<Link> {
        url.map(|href| Link { href, label: t(self.lang, "return") })
    }

    /// The receipt of a paid session: what was paid, to whom, when and how.
    async fn receipt(&self) -> Response<Body> {
        let s = &self.session;
        let paid = s.payments.iter().rev().find(|a| a.status.is_paid());
        // A page that cannot read the refunds still shows what was paid.
        let refunded = paysession_app::captures::session_refunded(self.cx, s).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "receipt without its refunds");
            0
        });
        let method = paid.map(|a| match &a.card {
            Some(c) => format!("{} •••• {}", card_brand_name(&c.brand), c.last4),
            None => t(self.lang, method_key(a.method)).to_string(),
        });
        let v = view::ReceiptView {
            f: self.frame(t(self.lang, "succeeded")),
            amount: money(s.spec.amount.minor(), s.spec.currency.code(), self.lang),
            refunded: (refunded > 0).then(|| money(refunded, s.spec.currency.code(), self.lang)),
            paid_at: paid.map(|a| i18n::date_time(self.lang, a.updated_at)),
            method,
            reference: &s.spec.reference,
            session_id: &s.id,
            link: self.return_link(self.success_location()),
        };
        self.html(StatusCode::OK, render(&v))
    }

    fn redirect(&self, location: &str) -> Response<Body> {
        let mut r =
            Response::builder().status(StatusCode::SEE_OTHER).header(header::LOCATION, location).body(Body::Empty).expect("valid location");
        secure_headers(r.headers_mut(), &security::csp(Some(&self.session), &self.nonce), self.framable());
        r
    }

    fn page_url(&self, suffix: &str) -> String {
        format!("/pay/{}{suffix}", self.token)
    }

    fn back_to_page(&self, proof: &str) -> Response<Body> {
        self.redirect(&format!("{}?v={}", self.page_url(""), url_encode(proof)))
    }

    /// The merchant's success URL with `session_id` and `state`.
    fn success_location(&self) -> Option<String> {
        self.session.spec.success_url.as_deref().map(|url| self.back_to_merchant(url))
    }

    /// The merchant's cancel URL with `session_id` and `state`, as on success.
    fn cancel_location(&self) -> Option<String> {
        self.session.spec.cancel_url.as_deref().map(|url| self.back_to_merchant(url))
    }

    fn back_to_merchant(&self, url: &str) -> String {
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut out = format!("{url}{sep}session_id={}", url_encode(&self.session.id));
        if let Some(state) = &self.session.spec.state {
            out.push_str(&format!("&state={}", url_encode(state)));
        }
        out
    }

    fn payment_failed(&self, f: PaymentFailure, proof: &str) -> Response<Body> {
        match f {
            // The page shows the payment running (and refreshes until it settles): a second
            // try never reaches the processor while the first one's outcome is owed.
            PaymentFailure::Refused(_) => self.back_to_page(proof),
            PaymentFailure::Store(e) => {
                tracing::error!(session_id = %self.session.id, error = %e, "page write failed");
                self.message(StatusCode::SERVICE_UNAVAILABLE, "alert", "failed", None)
            }
        }
    }

    // ---- GET /pay/{token} ----

    async fn view(mut self) -> Response<Body> {
        let now = self.now();
        match self.session.status_at(now) {
            SessionStatus::Expired => return self.message(StatusCode::GONE, "alert", "expired", None),
            SessionStatus::Succeeded => return self.receipt().await,
            SessionStatus::Cancelled => {
                let link = self.return_link(self.cancel_location());
                return self.message(StatusCode::OK, "alert", "cancelled", link);
            }
            SessionStatus::Failed => return self.message(StatusCode::OK, "alert", "failed", None),
            SessionStatus::RequiresConfirmation => return self.message(StatusCode::CONFLICT, "alert", "not_ready", None),
            _ => {}
        }
        let proof = query_param(self.call, "v");
        let app_id = query_param(self.call, "app_id");
        let verified = security::proof_ok(&self.cx.keys, &self.session, proof.as_deref(), now)
            || security::launched_from_allowed(&self.session, self.call, app_id.as_deref());
        if !verified {
            if otp::locked(&self.session) {
                return self.message(StatusCode::FORBIDDEN, "alert", "otp_locked", None);
            }
            return self.otp_gate(None).await;
        }
        let proof = security::issue_proof(&self.cx.keys, &self.session, now);
        self.payment_page(&proof, &[], &Kept::default(), StatusCode::OK).await
    }

    /// Shows the one-time-code form, sending a code when none is current.
    async fn otp_gate(&mut self, error_key: Option<&str>) -> Response<Body> {
        let now = self.now();
        let current = otp::has_current_code(&self.session, now);
        if !current
            && error_key.is_none()
            && let Err(refused) = self.send_code().await
        {
            return refused;
        }
        let dest = self.session.otp.as_ref().map(|o| o.sent_to.as_str()).unwrap_or_default();
        // Said plainly when there is nowhere to send a code (sandbox sessions without contact).
        let v = view::OtpView {
            f: self.frame(t(self.lang, "otp_title")),
            sent_to: (!dest.is_empty()).then(|| otp::mask(dest)),
            error: error_key.map(|k| t(self.lang, k)),
            action: self.page_url("/otp"),
            csrf: security::csrf_token(&self.cx.keys, &self.session),
        };
        let status = if error_key.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
        self.html(status, render(&v))
    }

    /// Issues and sends a new code; the page that says why not when the session's limits
    /// refuse it.
    async fn send_code(&mut self) -> Result<(), Response<Body>> {
        match otp::send_code(self.cx, self.pay, &self.session).await {
            Ok(Ok(written)) => {
                self.session = written;
                Ok(())
            }
            Ok(Err(refusal)) => Err(self.code_refused(refusal).await),
            Err(e) => {
                tracing::error!(session_id = %self.session.id, error = %e, "one-time code not stored");
                Err(self.message(StatusCode::SERVICE_UNAVAILABLE, "alert", "failed", None))
            }
        }
    }

    async fn code_refused(&mut self, refusal: otp::SendRefusal) -> Response<Body> {
        match refusal {
            otp::SendRefusal::NoContact => self.message(StatusCode::FORBIDDEN, "alert", "otp_unavailable", None),
            otp::SendRefusal::Locked => self.message(StatusCode::FORBIDDEN, "alert", "otp_locked", None),
            // A code may still be current: the form stays, with the reason.
            otp::SendRefusal::Exhausted if otp::has_current_code(&self.session, self.now()) => {
                Box::pin(self.otp_gate(Some("otp_resend_limit"))).await
            }
            otp::SendRefusal::Exhausted => self.message(StatusCode::FORBIDDEN, "alert", "otp_exhausted", None),
            otp::SendRefusal::Cooldown(_) if otp::has_current_code(&self.session, self.now()) => {
                Box::pin(self.otp_gate(Some("otp_cooldown"))).await
            }
            otp::SendRefusal::Cooldown(_) => self.message(StatusCode::TOO_MANY_REQUESTS, "alert", "otp_cooldown", None),
        }
    }

    // ---- POST /pay/{token}/otp ----

    async fn otp(mut self) -> Response<Body> {
        let form = parse_form(self.call.body_bytes()).unwrap_or_default();
        if !security::csrf_ok(&self.cx.keys, &self.session, form_field(&form, "csrf")) {
            return self.message(StatusCode::FORBIDDEN, "alert", "forbidden", None);
        }
        if form_field(&form, "action") == Some("resend") {
            if let Err(refused) = self.send_code().await {
                return refused;
            }
            return self.otp_gate(None).await;
        }
        let submitted = form_field(&form, "code").unwrap_or("");
        let (verdict, written) = otp::verify(self.cx, &self.session, submitted).await;
        self.session = written;
        let key = match verdict {
            otp::Verdict::Ok => {
                let proof = security::issue_proof(&self.cx.keys, &self.session, self.now());
                return self.back_to_page(&proof);
            }
            otp::Verdict::Locked => return self.message(StatusCode::FORBIDDEN, "alert", "otp_locked", None),
            otp::Verdict::Expired => "otp_expired",
            otp::Verdict::Wrong => "otp_wrong",
        };
        self.otp_gate(Some(key)).await
    }

    /// The mandate terms of a `first_in_series` session, as shown above the pay button.
    fn mandate_terms(&self) -> String {
        let s = &self.session;
        let mandate = s.spec.mandate.as_ref();
        let amount = money(s.spec.amount.minor(), s.spec.currency.code(), self.lang);
        let max = mandate.and_then(|m| m.max_amount).map(|m| money(m, s.spec.currency.code(), self.lang));
        i18n::mandate_terms(self.lang, &self.merchant_name, &amount, max.as_deref(), mandate.and_then(|m| m.schedule.as_ref()))
    }

    /// What the page records as the customer's acceptance of the mandate terms.
    fn acceptance(&self) -> CustomerAcceptance {
        let forwarded = self.call.header("x-forwarded-for").and_then(|v| v.split(',').next()).map(|ip| ip.trim().to_string());
        let source = || match self.call.req.request_context_ref() {
            Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.clone(),
            _ => None,
        };
        CustomerAcceptance {
            accepted_at: self.now(),
            ip_address: forwarded.filter(|ip| !ip.is_empty()).or_else(source),
            user_agent: self.call.header("user-agent").map(|ua| ua.chars().take(512).collect()),
        }
    }

    fn verified(&self, form: &[(String, String)]) -> Option<String> {
        let proof = form_field(form, "v")?;
        security::proof_ok(&self.cx.keys, &self.session, Some(proof), self.now()).then(|| proof.to_string())
    }

    // ---- the payment page ----

    async fn payment_page(&self, proof: &str, errors: &[FieldError], kept: &Kept, status: StatusCode) -> Response<Body> {
        let s = &self.session;
        let lang = self.lang;
        let now = self.now();
        let cur = s.spec.currency.code();
        let line = |name: &str, quantity: i64, minor: i64| view::Line { name: name.to_string(), quantity, total: money(minor, cur, lang) };
        let processing =
            s.status_at(now) == SessionStatus::Processing || s.open_attempt().is_some_and(|a| a.status == AttemptStatus::Pending);
        let declined = s.payments.last().filter(|a| a.status == AttemptStatus::Failed).map(|last| view::Declined {
            reason: failure(lang, last.failure_code.as_deref().unwrap_or("")),
            attempts: format!("{} {}", t(lang, "attempts_left_n"), s.attempts_remaining),
        });
        let methods = if processing { Vec::new() } else { self.methods(errors, kept).await };
        let mut f = self.frame(t(lang, "title"));
        if processing {
            f.refresh = Some(2);
        }
        let v = view::PayView {
            f,
            csrf: security::csrf_token(&self.cx.keys, s),
            proof,
            items: s.spec.items.iter().map(|it| line(&it.name, it.quantity, it.quantity * it.unit_amount)).collect(),
            recipients: s.spec.recipients.iter().map(|r| line(&r.name, 1, r.amount)).collect(),
            amount: money(s.spec.amount.minor(), cur, lang),
            due_date: s.spec.due_date.map(|d| i18n::date(lang, d)),
            descriptor: s.spec.statement_descriptor.as_deref(),
            expires_iso: s.spec.expires_at.to_rfc3339(),
            expires_at: i18n::date_time(lang, s.spec.expires_at),
            expires_in: i18n::time_left(lang, now, s.spec.expires_at),
            // Through our challenge route, which sends the customer on to a processor's page.
            continue_url: s
                .open_attempt()
                .filter(|a| a.next_action_url.is_some())
                .map(|a| format!("{}?v={}", self.page_url(&format!("/challenge/{}", a.id)), url_encode(proof))),
            processing,
            declined,
            has_errors: !errors.is_empty(),
            methods,
            cancel_url: self.cancel_location(),
        };
        self.html(status, render(&v))
    }

    /// The method chooser's entries, the first (or the one with errors) open.
    async fn methods(&self, errors: &[FieldError], kept: &Kept) -> Vec<view::Method> {
        let s = &self.session;
        let lang = self.lang;
        // A first payment saves the card its mandate charges: only cards are offered.
        let first_in_series = s.spec.session_type == SessionType::FirstInSeries;
        // Only what the merchant's processor takes (Stripe: cards).
        let processor = self.pay.for_merchant(&s.merchant_id).await.ok();
        let mut out = Vec::new();
        for m in s.spec.payment_methods.iter().filter(|m| s.accepts(**m) && processor.as_ref().is_none_or(|p| p.offers(**m))) {
            let mut entry = view::Method {
                key: m.as_str(),
                title: t(lang, method_key(*m)),
                open: false,
                card: None,
                redirect: None,
                virtual_account: None,
                qr: None,
            };
            match m {
                PaymentMethodKind::Card => entry.card = Some(self.card_form(errors, kept, first_in_series).await),
                PaymentMethodKind::Ewallet => {
                    let (hint, button) = (t(lang, "ewallet_hint"), t(lang, "pay_ewallet"));
                    entry.redirect = Some(view::RedirectForm { action: self.page_url("/start"), hint, button });
                }
                PaymentMethodKind::BankTransfer => {
                    let (hint, button) = (t(lang, "bank_hint"), t(lang, "pay_bank"));
                    entry.redirect = Some(view::RedirectForm { action: self.page_url("/start"), hint, button });
                }
                PaymentMethodKind::VirtualAccount => {
                    let Some(va) = &s.instructions.virtual_account else { continue };
                    entry.virtual_account =
                        Some(view::VirtualAccount { bank_name: va.bank_name.clone(), account_number: va.account_number.clone() });
                }
                PaymentMethodKind::Qr => {
                    let Some(qr) = &s.instructions.qr else { continue };
                    entry.qr = Some(view::Qr { payload_id: qr.payload_id.clone(), svg_base64: qr_svg(&qr.payload) });
                }
            }
            out.push(entry);
        }
        let open = if errors.is_empty() { 0 } else { out.iter().position(|m| m.card.is_some()).unwrap_or(0) };
        if let Some(m) = out.get_mut(open) {
            m.open = true;
        }
        out
    }

    async fn card_form(&self, errors: &[FieldError], kept: &Kept, first_in_series: bool) -> view::CardForm {
        let s = &self.session;
        let err_for = |field: &str| errors.iter().find(|e| e.field == field).map(|e| i18n::field_error(self.lang, field, e.code));
        let saved = if s.spec.show_saved_payment_methods { payments::offered_methods(self.cx, s).await } else { Vec::new() };
        view::CardForm {
            action: self.page_url("/card"),
            saved: saved
                .into_iter()
                .map(|pm| view::SavedCard {
                    label: format!(
                        "{} •••• {} ({:02}/{:02})",
                        card_brand_name(&pm.card.brand),
                        pm.card.last4,
                        pm.card.exp_month,
                        pm.card.exp_year % 100
                    ),
                    id: pm.id,
                })
                .collect(),
            number_err: err_for("card_number"),
            expiry_err: err_for("expiry"),
            cvc_err: err_for("cvc"),
            expiry: kept.expiry.clone(),
            offer_save: s.spec.save_payment_method == Some(SavePaymentMethod::Prompt),
            save_checked: kept.save,
            mandate_terms: first_in_series.then(|| self.mandate_terms()),
        }
    }

    // ---- POST /pay/{token}/card ----

    async fn pay_card(mut self) -> Response<Body> {
        let form = parse_form(self.call.body_bytes()).unwrap_or_default();
        if !security::csrf_ok(&self.cx.keys, &self.session, form_field(&form, "csrf")) {
            return self.message(StatusCode::FORBIDDEN, "alert", "forbidden", None);
        }
        let Some(proof) = self.verified(&form) else { return self.redirect(&self.page_url("")) };
        let source = match form_field(&form, "saved_method") {
            Some(pm_id) => CardSource::Saved(pm_id.to_string()),
            None => match parse_card(
                form_field(&form, "card_number").unwrap_or(""),
                form_field(&form, "expiry").unwrap_or(""),
                form_field(&form, "cvc").unwrap_or(""),
                self.now(),
            ) {
                Ok(c) => CardSource::Typed(c),
                Err(errors) => {
                    // The customer retypes the number and CVC only: they are never echoed back.
                    let kept = Kept {
                        expiry: form_field(&form, "expiry").unwrap_or("").chars().take(7).collect(),
                        save: form_field(&form, "save") == Some("on"),
                    };
                    return self.payment_page(&proof, &errors, &kept, StatusCode::UNPROCESSABLE_ENTITY).await;
                }
            },
        };
        let ticked = form_field(&form, "save") == Some("on");
        let page_path = self.page_url("");
        let acceptance = Some(self.acceptance());
        match payments::pay_card(self.cx, self.pay, self.session.clone(), source, ticked, acceptance, &page_path).await {
            Ok(step) => self.after(step, &proof),
            Err(CardError::UnknownSavedMethod) => self.back_to_page(&proof),
            Err(CardError::Failed(f)) => self.payment_failed(f, &proof),
        }
    }

    /// Sends the customer on after a payment step: to the challenge or provider page, to
    /// the merchant's success URL, or back to the page.
    fn after(&mut self, step: Step, proof: &str) -> Response<Body> {
        self.session = step.session;
        let challenge_url = self.page_url(&format!("/challenge/{}", step.attempt_id));
        match step.status {
            AttemptStatus::RequiresAction | AttemptStatus::Pending => self.redirect(&format!("{challenge_url}?v={}", url_encode(proof))),
            AttemptStatus::Succeeded if self.session.status == SessionStatus::Succeeded => match self.success_location() {
                Some(loc) => self.redirect(&loc),
                None => self.back_to_page(proof),
            },
            _ => self.back_to_page(proof),
        }
    }

    // ---- POST /pay/{token}/start ----

    async fn start_redirect(mut self) -> Response<Body> {
        let form = parse_form(self.call.body_bytes()).unwrap_or_default();
        if !security::csrf_ok(&self.cx.keys, &self.session, form_field(&form, "csrf")) {
            return self.message(StatusCode::FORBIDDEN, "alert", "forbidden", None);
        }
        let Some(proof) = self.verified(&form) else { return self.redirect(&self.page_url("")) };
        let method = match form_field(&form, "method") {
            Some("ewallet") => RedirectMethod::Ewallet,
            Some("bank_transfer") => RedirectMethod::BankTransfer,
            _ => return self.back_to_page(&proof),
        };
        let page_path = self.page_url("");
        match payments::start_redirect(self.cx, self.pay, self.session.clone(), method, &page_path).await {
            Ok(step) => self.after(step, &proof),
            Err(f) => self.payment_failed(f, &proof),
        }
    }

    fn attempt(&self) -> Option<PaymentAttempt> {
        let id = self.call.param("attempt");
        self.session.payments.iter().find(|a| a.id == id).cloned()
    }

    // ---- GET /pay/{token}/challenge/{attempt} ----

    async fn challenge(self) -> Response<Body> {
        if query_param(self.call, "returned").is_some() {
            return self.returned().await;
        }
        let Some(proof) = query_param(self.call, "v").filter(|p| security::proof_ok(&self.cx.keys, &self.session, Some(p), self.now()))
        else {
            return self.redirect(&self.page_url(""));
        };
        let Some(attempt) = self.attempt() else { return self.back_to_page(&proof) };
        // A processor's own page (3-D Secure at the issuer): the customer goes there, and
        // comes back to `?returned=1`.
        if let Some(url) = attempt.next_action_url.as_deref().filter(|u| u.starts_with("https://") || u.starts_with("http://"))
            && attempt.status == AttemptStatus::RequiresAction
        {
            return self.redirect(url);
        }
        let lang = self.lang;
        let title = match attempt.method {
            PaymentMethodKind::Card => t(lang, "challenge_3ds"),
            PaymentMethodKind::Ewallet => t(lang, "challenge_wallet"),
            _ => t(lang, "challenge_bank"),
        };
        let settle = match (attempt.method, attempt.status) {
            (PaymentMethodKind::BankTransfer, AttemptStatus::Pending) => true,
            (_, AttemptStatus::RequiresAction) => false,
            _ => return self.back_to_page(&proof),
        };
        let v = view::ChallengeView {
            f: self.frame(title),
            action: self.page_url(&format!("/challenge/{}", attempt.id)),
            csrf: security::csrf_token(&self.cx.keys, &self.session),
            proof: &proof,
            amount: money(attempt.amount, self.session.spec.currency.code(), lang),
            settle,
            pick_bank: attempt.method == PaymentMethodKind::BankTransfer,
        };
        self.html(StatusCode::OK, render(&v))
    }

    /// `GET /pay/{token}/challenge/{attempt}?returned=1`: back from the processor's page.
    /// The processor is asked what came of it (no proof needed: asking changes nothing the
    /// processor did not say); then the page, which asks the customer to verify again if
    /// the session wants that.
    async fn returned(mut self) -> Response<Body> {
        let (page_path, attempt_id) = (self.page_url(""), self.call.param("attempt").to_string());
        match payments::decide(self.cx, self.pay, self.session.clone(), &attempt_id, Decision::Returned, &page_path).await {
            Ok(Some(step)) => self.session = step.session,
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, attempt_id, "could not record the processor's answer after its page; reconciliation will"),
        }
        self.redirect(&self.page_url(""))
    }

    // ---- POST /pay/{token}/challenge/{attempt} ----

    async fn decide(mut self) -> Response<Body> {
        let form = parse_form(self.call.body_bytes()).unwrap_or_default();
        if !security::csrf_ok(&self.cx.keys, &self.session, form_field(&form, "csrf")) {
            return self.message(StatusCode::FORBIDDEN, "alert", "forbidden", None);
        }
        let Some(proof) = self.verified(&form) else { return self.redirect(&self.page_url("")) };
        let decision = match form_field(&form, "decision") {
            Some("approve") => Decision::Approve,
            Some("deny") => Decision::Deny,
            Some("settle") => Decision::Settle,
            _ => return self.back_to_page(&proof),
        };
        let (page_path, attempt_id) = (self.page_url(""), self.call.param("attempt").to_string());
        match payments::decide(self.cx, self.pay, self.session.clone(), &attempt_id, decision, &page_path).await {
            Ok(Some(step)) => self.after(step, &proof),
            Ok(None) => self.back_to_page(&proof),
            Err(f) => self.payment_failed(f, &proof),
        }
    }
}

/// What the card form keeps after an error: only what is not sensitive.
#[derive(Default)]
struct Kept {
    expiry: String,
    save: bool,
}

/// The i18n key of a method's name.
fn method_key(m: PaymentMethodKind) -> &'static str {
    match m {
        PaymentMethodKind::Card => "card",
        PaymentMethodKind::Ewallet => "ewallet",
        PaymentMethodKind::BankTransfer => "bank_transfer",
        PaymentMethodKind::VirtualAccount => "virtual_account",
        PaymentMethodKind::Qr => "qr",
    }
}

/// A card brand as printed on cards.
fn card_brand_name(brand: &str) -> &str {
    match brand {
        "visa" => "Visa",
        "mastercard" => "Mastercard",
        "amex" => "American Express",
        "discover" => "Discover",
        _ => "Card",
    }
}

/// The QR image as base64 SVG.
fn qr_svg(payload: &str) -> String {
    use base64::Engine;
    let svg = qrcode::QrCode::new(payload.as_bytes())
        .map(|code| code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(svg)
}
