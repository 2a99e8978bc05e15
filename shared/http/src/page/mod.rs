//! The hosted payment page: server-rendered HTML that works without JavaScript.
//!
//! Every payment goes claim → processor → outcome, each step one conditional write (see
//! `paysession_domain::payment`), so two tabs paying at once reach the processor once.

mod html;
mod i18n;
pub mod security;

use chrono::{DateTime, Utc};
use http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use paysession_app::ids::sha256_hex;
use paysession_app::otp;
use paysession_app::payments::{self, CardError, CardSource, Decision, PaymentFailure, Step};
use paysession_app::ports::{MandateStore, MerchantStore, SessionStore, SettingsStore};
use paysession_app::processor::RedirectMethod;
use paysession_app::{Core, Payments};
use paysession_domain::card::parse_card;
use paysession_domain::mandate::CustomerAcceptance;
use paysession_domain::model::{PaymentMethodKind, SavePaymentMethod, SessionType};
use paysession_domain::payment::{AttemptStatus, PaymentAttempt, PaymentError};
use paysession_domain::session::{ALIAS_PAGE, PaymentSession};
use paysession_domain::{FieldError, SessionStatus};

use html::{Frame, esc, money};
use i18n::{Lang, failure, t};

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
pub async fn serve<S: SessionStore + MerchantStore + MandateStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    info: &'static RouteInfo,
    params: Params,
    req: Request,
) -> Response<Body> {
    let route = info.route;
    raw(&(cx, pay), info, params, req, move |c, call| Box::pin(handle(c.0, c.1, route, call))).await
}

pub async fn handle<S: SessionStore + MerchantStore + MandateStore + SettingsStore + ?Sized>(
    cx: &Core<S>,
    pay: &Payments,
    route: Route,
    call: &Call<'_>,
) -> Response<Body> {
    let token = call.param("token").to_string();
    let session = cx.store.find_by_alias(ALIAS_PAGE, &sha256_hex(token.as_bytes())).await;
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
    let (merchant_name, brand_color) =
        merchant.map(|m| (m.display_name.clone(), m.brand_color.clone())).unwrap_or_else(|| ("paysession".into(), "#635bff".into()));
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
    let frame = Frame { lang, nonce: &nonce, merchant: "paysession", brand_color: "#635bff", title: t(lang, "title"), refresh: None };
    respond(status, &security::csp(None, &nonce), false, html::message(&frame, "alert", text, None))
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
    call.req.uri().query().and_then(|q| {
        q.split('&').find_map(|p| {
            let (k, v) = p.split_once('=')?;
            (k == name).then(|| crate::request::percent_decode(v)).flatten()
        })
    })
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl<'a, S: SessionStore + MandateStore + ?Sized> Page<'a, S> {
    fn now(&self) -> DateTime<Utc> {
        self.cx.clock.now()
    }

    fn frame(&self, title: &'a str, refresh: Option<u32>) -> Frame<'_> {
        Frame { lang: self.lang, nonce: &self.nonce, merchant: &self.merchant_name, brand_color: &self.brand_color, title, refresh }
    }

    fn framable(&self) -> bool {
        self.session.spec.allowed_domains.iter().any(|d| d.is_origin())
    }

    fn html(&self, status: StatusCode, body: String) -> Response<Body> {
        respond(status, &security::csp(Some(&self.session), &self.nonce), self.framable(), body)
    }

    fn message(&self, status: StatusCode, class: &str, key: &str, link: Option<(&str, &str)>) -> Response<Body> {
        let frame = self.frame(t(self.lang, "title"), None);
        self.html(status, html::message(&frame, class, t(self.lang, key), link))
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
        let url = self.session.spec.success_url.as_ref()?;
        let sep = if url.contains('?') { '&' } else { '?' };
        let mut out = format!("{url}{sep}session_id={}", url_encode(&self.session.id));
        if let Some(state) = &self.session.spec.state {
            out.push_str(&format!("&state={}", url_encode(state)));
        }
        Some(out)
    }

    fn payment_failed(&self, f: PaymentFailure, proof: &str) -> Response<Body> {
        match f {
            PaymentFailure::Refused(PaymentError::AttemptInProgress) => self.message(StatusCode::CONFLICT, "alert", "busy", None),
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
            SessionStatus::Succeeded => {
                let link = self.success_location();
                let label = t(self.lang, "return");
                return self.message(StatusCode::OK, "ok", "succeeded", link.as_deref().map(|l| (l, label)));
            }
            SessionStatus::Cancelled => {
                let link = self.session.spec.cancel_url.clone();
                return self.message(StatusCode::OK, "alert", "cancelled", link.as_deref().map(|l| (l, t(self.lang, "return"))));
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
        self.payment_page(&proof, &[], StatusCode::OK).await
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
        let lang = self.lang;
        // Said plainly when there is nowhere to send a code (sandbox sessions without contact).
        let sent = if dest.is_empty() {
            format!("<p>{}</p>", t(lang, "otp_no_contact_sandbox"))
        } else {
            format!("<p>{} <strong>{}</strong>.</p>", t(lang, "otp_sent"), esc(&otp::mask(dest)))
        };
        let error = error_key.map(|k| format!(r#"<p class="err" role="alert" id="otp-error">{}</p>"#, t(lang, k))).unwrap_or_default();
        let csrf = security::csrf_token(&self.cx.keys, &self.session);
        let body = format!(
            r#"<section aria-labelledby="otp-h"><h2 id="otp-h">{title}</h2>
{sent}{error}
<form method="post" action="{action}">
<input type="hidden" name="csrf" value="{csrf}">
<label for="code">{code_label}</label>
<input type="text" id="code" name="code" inputmode="numeric" autocomplete="one-time-code" pattern="[0-9]{{6}}" maxlength="6" required{invalid}>
<button type="submit" name="action" value="verify">{verify}</button>
<button type="submit" name="action" value="resend" class="secondary" formnovalidate>{resend}</button>
</form></section>"#,
            title = t(lang, "otp_title"),
            action = self.page_url("/otp"),
            code_label = t(lang, "otp_code"),
            invalid = if error_key.is_some() { r#" aria-invalid="true" aria-describedby="otp-error""# } else { "" },
            verify = t(lang, "otp_verify"),
            resend = t(lang, "otp_resend"),
        );
        let status = if error_key.is_some() { StatusCode::UNPROCESSABLE_ENTITY } else { StatusCode::OK };
        let frame = self.frame(t(lang, "otp_title"), None);
        self.html(status, html::page(&frame, &body))
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
    fn mandate_terms_html(&self) -> String {
        let s = &self.session;
        let mandate = s.spec.mandate.as_ref();
        let amount = money(s.spec.amount.minor(), s.spec.currency.code(), self.lang);
        let max = mandate.and_then(|m| m.max_amount).map(|m| money(m, s.spec.currency.code(), self.lang));
        let terms = i18n::mandate_terms(self.lang, &self.merchant_name, &amount, max.as_deref(), mandate.and_then(|m| m.schedule.as_ref()));
        format!(r#"<p id="mandate-terms" class="muted">{}</p>"#, esc(&terms))
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

    async fn payment_page(&self, proof: &str, errors: &[FieldError], status: StatusCode) -> Response<Body> {
        let s = &self.session;
        let lang = self.lang;
        let now = self.now();
        let csrf = security::csrf_token(&self.cx.keys, s);
        let hidden = format!(r#"<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="v" value="{}">"#, esc(proof));
        let mut body = String::new();

        body.push_str(&format!(
            r#"<section aria-labelledby="amount-h"><h2 id="amount-h">{due}</h2><p class="amount" id="amount">{amount}</p>"#,
            due = t(lang, "amount_due"),
            amount = esc(&money(s.spec.amount.minor(), s.spec.currency.code(), lang))
        ));
        if let Some(d) = s.spec.due_date {
            body.push_str(&format!("<p>{}: {d}</p>", t(lang, "due_date")));
        }
        if let Some(desc) = &s.spec.statement_descriptor {
            body.push_str(&format!("<p class=\"muted\">{}: {}</p>", t(lang, "descriptor"), esc(desc)));
        }
        body.push_str(&format!(
            r#"<p class="muted">{}: <time id="expires" datetime="{}">{} UTC</time> <span id="countdown" aria-live="polite"></span></p></section>"#,
            t(lang, "expires_in"),
            s.spec.expires_at.to_rfc3339(),
            s.spec.expires_at.format("%Y-%m-%d %H:%M")
        ));
        if !s.spec.items.is_empty() {
            body.push_str(&format!(r#"<section aria-labelledby="items-h"><h2 id="items-h">{}</h2><table>"#, t(lang, "items")));
            for it in &s.spec.items {
                body.push_str(&format!(
                    r#"<tr><td>{} × {}</td><td class="num">{}</td></tr>"#,
                    it.quantity,
                    esc(&it.name),
                    esc(&money(it.quantity * it.unit_amount, s.spec.currency.code(), lang))
                ));
            }
            body.push_str("</table></section>");
        }
        if !s.spec.recipients.is_empty() {
            body.push_str(&format!(r#"<section aria-labelledby="rcpt-h"><h2 id="rcpt-h">{}</h2><table>"#, t(lang, "recipients")));
            for r in &s.spec.recipients {
                body.push_str(&format!(
                    r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
                    esc(&r.name),
                    esc(&money(r.amount, s.spec.currency.code(), lang))
                ));
            }
            body.push_str("</table></section>");
        }

        if let Some(url) = s.open_attempt(now).and_then(|a| a.next_action_url.as_ref()) {
            body.push_str(&format!(
                r#"<section><p role="status">{}</p><p><a id="continue" href="{}">{}</a></p></section>"#,
                t(lang, "in_progress"),
                esc(&format!("{url}?v={}", url_encode(proof))),
                t(lang, "continue")
            ));
        }
        if s.status_at(now) == SessionStatus::Processing || s.open_attempt(now).is_some_and(|a| a.status == AttemptStatus::Pending) {
            body.push_str(&format!(r#"<section><p role="status" class="ok">{}</p></section>"#, t(lang, "in_progress")));
            let frame = self.frame(t(lang, "title"), Some(2));
            return self.html(status, html::page(&frame, &body));
        }
        if let Some(last) = s.payments.last().filter(|a| a.status == AttemptStatus::Failed) {
            body.push_str(&format!(
                r#"<div class="alert" role="alert" id="payment-error"><strong>{}</strong>: {} {}: {}</div>"#,
                t(lang, "declined"),
                failure(lang, last.failure_code.as_deref().unwrap_or("")),
                t(lang, "attempts_left"),
                s.attempts_remaining
            ));
        }
        if !errors.is_empty() {
            body.push_str(&format!(r#"<div class="alert" role="alert">{}</div>"#, t(lang, "fix_fields")));
        }

        let err_for = |field: &str| errors.iter().find(|e| e.field == field).map(|e| e.message.clone());
        // A first payment saves the card its mandate charges: only cards are offered.
        let first_in_series = s.spec.session_type == SessionType::FirstInSeries;
        for m in s.spec.payment_methods.iter().filter(|m| !first_in_series || **m == PaymentMethodKind::Card) {
            match m {
                PaymentMethodKind::Card => {
                    if s.spec.show_saved_payment_methods {
                        let saved = payments::offered_methods(self.cx, s).await;
                        if !saved.is_empty() {
                            body.push_str(&format!(
                                r#"<section aria-labelledby="saved-h"><h2 id="saved-h">{}</h2>"#,
                                t(lang, "saved_cards")
                            ));
                            for pm in saved {
                                body.push_str(&format!(
                                    r#"<form method="post" action="{action}">{hidden}<input type="hidden" name="saved_method" value="{id}"><p>{brand} •••• {last4} ({m:02}/{y})</p><button type="submit">{pay}</button></form>"#,
                                    action = self.page_url("/card"),
                                    id = esc(&pm.id),
                                    brand = esc(&pm.card.brand),
                                    last4 = esc(&pm.card.last4),
                                    m = pm.card.exp_month,
                                    y = pm.card.exp_year % 100,
                                    pay = t(lang, "pay_saved"),
                                ));
                            }
                            body.push_str("</section>");
                        }
                    }
                    let field = |id: &str, label: &str, mode: &str, ac: &str, extra: &str| {
                        let err = err_for(id);
                        format!(
                            r#"<label for="{id}">{label}</label><input type="text" id="{id}" name="{id}" inputmode="{mode}" autocomplete="{ac}" required {extra}{inv}>{msg}"#,
                            inv =
                                if err.is_some() { format!(r#" aria-invalid="true" aria-describedby="{id}-err""#) } else { String::new() },
                            msg = err.map(|m| format!(r#"<p class="err" id="{id}-err">{}</p>"#, esc(&m))).unwrap_or_default(),
                        )
                    };
                    let save = match s.spec.save_payment_method {
                        Some(SavePaymentMethod::Prompt) => format!(
                            r#"<p><input type="checkbox" id="save" name="save" value="on"> <label for="save" style="display:inline">{}</label></p>"#,
                            t(lang, "save_card")
                        ),
                        _ => String::new(),
                    };
                    let save = if first_in_series { format!("{save}{}", self.mandate_terms_html()) } else { save };
                    body.push_str(&format!(
                        r#"<section aria-labelledby="card-h"><h2 id="card-h">{title}</h2><form method="post" action="{action}" id="card-form" novalidate>{hidden}{number}{expiry}{cvc}{save}<button type="submit" id="pay-card">{pay} {amount}</button></form></section>"#,
                        title = t(lang, "card"),
                        action = self.page_url("/card"),
                        number = field("card_number", t(lang, "card_number"), "numeric", "cc-number", r#"maxlength="23""#),
                        expiry = field("expiry", t(lang, "expiry"), "numeric", "cc-exp", r#"maxlength="7" placeholder="MM/YY""#),
                        cvc = field("cvc", t(lang, "cvc"), "numeric", "cc-csc", r#"maxlength="4""#),
                        pay = t(lang, "pay"),
                        amount = esc(&money(s.spec.amount.minor(), s.spec.currency.code(), lang)),
                    ));
                }
                PaymentMethodKind::Ewallet | PaymentMethodKind::BankTransfer => {
                    let (title, button, value) = if *m == PaymentMethodKind::Ewallet {
                        (t(lang, "ewallet"), t(lang, "pay_ewallet"), "ewallet")
                    } else {
                        (t(lang, "bank_transfer"), t(lang, "pay_bank"), "bank_transfer")
                    };
                    body.push_str(&format!(
                        r#"<section><h2>{title}</h2><form method="post" action="{action}">{hidden}<input type="hidden" name="method" value="{value}"><button type="submit" id="start-{value}">{button}</button></form></section>"#,
                        action = self.page_url("/start"),
                    ));
                }
                PaymentMethodKind::VirtualAccount => {
                    if let Some(va) = &s.instructions.virtual_account {
                        body.push_str(&format!(
                            r#"<section><h2>{}</h2><p>{}</p><p>{}<br><code id="va-number">{}</code></p></section>"#,
                            t(lang, "virtual_account"),
                            t(lang, "va_hint"),
                            esc(&va.bank_name),
                            esc(&va.account_number)
                        ));
                    }
                }
                PaymentMethodKind::Qr => {
                    if let Some(qr) = &s.instructions.qr {
                        let svg = qr_svg(&qr.payload);
                        body.push_str(&format!(
                            r#"<section><h2>{}</h2><p>{}</p><img id="qr-image" alt="QR code {}" width="200" height="200" src="data:image/svg+xml;base64,{}"><p><code id="qr-payload">{}</code></p></section>"#,
                            t(lang, "qr"),
                            t(lang, "qr_hint"),
                            esc(&qr.payload_id),
                            svg,
                            esc(&qr.payload_id)
                        ));
                    }
                }
            }
        }
        if let Some(cancel) = &s.spec.cancel_url {
            body.push_str(&format!(r#"<p><a href="{}" id="cancel">{}</a></p>"#, esc(cancel), t(lang, "cancel")));
        }
        // Enhancement only: the page works without it.
        body.push_str(&format!(
            r#"<script nonce="{nonce}">
(function(){{var e=document.getElementById('expires'),c=document.getElementById('countdown');
if(e&&c){{var end=Date.parse(e.getAttribute('datetime'));var tick=function(){{var s=Math.max(0,Math.round((end-Date.now())/1000));c.textContent='('+Math.floor(s/60)+':'+('0'+s%60).slice(-2)+')';}};tick();setInterval(tick,1000);}}
var n=document.getElementById('card_number');if(n){{n.addEventListener('input',function(){{var d=n.value.replace(/\D/g,'').slice(0,19);n.value=d.replace(/(.{{4}})/g,'$1 ').trim();}});}}}})();
</script>"#,
            nonce = self.nonce
        ));
        let frame = self.frame(t(lang, "title"), None);
        self.html(status, html::page(&frame, &body))
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
                Err(errors) => return self.payment_page(&proof, &errors, StatusCode::UNPROCESSABLE_ENTITY).await,
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
        let Some(proof) = query_param(self.call, "v").filter(|p| security::proof_ok(&self.cx.keys, &self.session, Some(p), self.now()))
        else {
            return self.redirect(&self.page_url(""));
        };
        let Some(attempt) = self.attempt() else { return self.back_to_page(&proof) };
        let lang = self.lang;
        let csrf = security::csrf_token(&self.cx.keys, &self.session);
        let action = self.page_url(&format!("/challenge/{}", attempt.id));
        let hidden = format!(r#"<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="v" value="{}">"#, esc(&proof));
        let title = match attempt.method {
            PaymentMethodKind::Card => t(lang, "challenge_3ds"),
            PaymentMethodKind::Ewallet => t(lang, "challenge_wallet"),
            _ => t(lang, "challenge_bank"),
        };
        let amount = esc(&money(attempt.amount, self.session.spec.currency.code(), lang));
        let inner = match (attempt.method, attempt.status) {
            (PaymentMethodKind::BankTransfer, AttemptStatus::Pending) => format!(
                r#"<p role="status">{}</p><form method="post" action="{action}">{hidden}<button type="submit" name="decision" value="settle" id="settle">{}</button></form>"#,
                t(lang, "bank_submitted"),
                t(lang, "settle_now")
            ),
            (_, AttemptStatus::RequiresAction) => {
                let bank = if attempt.method == PaymentMethodKind::BankTransfer {
                    format!(
                        r#"<label for="bank">{}</label><select id="bank" name="bank"><option>Sandbox Sparkasse</option><option>Sandbox Credit Union</option></select>"#,
                        t(lang, "bank_pick")
                    )
                } else {
                    String::new()
                };
                format!(
                    r#"<p class="amount">{amount}</p><form method="post" action="{action}">{hidden}{bank}<button type="submit" name="decision" value="approve" id="approve">{}</button><button type="submit" name="decision" value="deny" id="deny" class="secondary">{}</button></form>"#,
                    t(lang, "approve"),
                    t(lang, "deny")
                )
            }
            _ => return self.back_to_page(&proof),
        };
        let body = format!(r#"<section aria-labelledby="ch-h"><h2 id="ch-h">{title}</h2>{inner}</section>"#);
        let frame = self.frame(title, None);
        self.html(StatusCode::OK, html::page(&frame, &body))
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

/// The QR image as base64 SVG.
fn qr_svg(payload: &str) -> String {
    use base64::Engine;
    let svg = qrcode::QrCode::new(payload.as_bytes())
        .map(|code| code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(200, 200).build())
        .unwrap_or_default();
    base64::engine::general_purpose::STANDARD.encode(svg)
}
