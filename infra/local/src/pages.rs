//! Pages only the local server has: the start page at `/` and the demo shop's success and
//! cancel pages, where the README walk-through ends. Rendered through askama templates
//! (`infra/local/templates/`), so every value is escaped.

use askama::Template;
use bytes::Bytes;
use http_body_util::Full;

use crate::local::Local;

/// The sandbox inputs, as the README's table lists them.
const CARDS: [(&str, &str); 10] = [
    ("4242 4242 4242 4242", "succeeds (any future expiry, any CVC)"),
    ("4000 0000 0000 0002", "declined (card_declined)"),
    ("4000 0000 0000 9995", "declined (insufficient_funds)"),
    ("4000 0000 0000 0119", "declined (processing_error)"),
    ("4000 0027 6000 3184", "3-D Secure challenge: approve succeeds, deny fails"),
    ("4000 0000 0000 0341", "succeeds and can be saved; later off-session charges decline"),
    ("other Luhn-valid numbers / non-Luhn", "succeed / a field error on the page"),
    ("e-wallet, bank transfer", "sandbox provider pages: approve or decline; the bank then offers \"Settle now\""),
    ("virtual account", "POST /sandbox/virtual_accounts/<number>/deposits {\"amount\": …}"),
    ("QR", "POST /sandbox/qr/<payload_id>/pay"),
];

/// README sections the start page links to: (what, the heading's anchor).
const TOPICS: [(&str, &str); 8] = [
    ("Walk-through with curl: token, create, read, find by reference, cancel, events", "walk-through-with-curl"),
    ("Paying on the hosted page: the one-time code, allowed domains, the sandbox inputs", "paying-on-the-hosted-page"),
    ("Mandates and off-session charges", "mandates-and-off-session-charges"),
    ("A subscription: scheduled charges on the test clock", "a-subscription-scheduled-charges-on-the-test-clock"),
    ("Webhooks: endpoints, signatures (Standard Webhooks), verifying them, retries", "webhooks"),
    ("Signed requests (RFC 9421 / draft-cavage)", "signed-requests"),
    ("Operators: paysession-admin", "operators-paysession-admin"),
    ("Deploying to AWS with SAM (template.yaml)", "deploying-aws"),
];

#[derive(Template)]
#[template(path = "landing.html")]
struct Landing<'a> {
    nonce: &'a str,
    base: &'a str,
    client_id: &'a str,
    /// Shown only while the server listens on loopback alone.
    client_secret: Option<&'a str>,
    cards: &'a [(&'a str, &'a str)],
    topics: &'a [(&'a str, &'a str)],
}

#[derive(Template)]
#[template(path = "readme.html")]
struct Readme<'a> {
    nonce: &'a str,
    /// The README rendered by pulldown-cmark from the text compiled in (`readme.rs`).
    html: &'a str,
}

struct Shown {
    id: String,
    status: String,
    amount: String,
    reference: String,
}

#[derive(Template)]
#[template(path = "demo.html")]
struct Demo<'a> {
    nonce: &'a str,
    base: &'a str,
    /// `success` or `cancel`.
    page: &'a str,
    heading: &'a str,
    session: Option<Shown>,
    state: Option<String>,
    missing: String,
}

/// The demo merchant the pages belong to and where the server is reached.
#[derive(Clone)]
pub struct Site {
    pub base_url: String,
    pub demo_merchant_id: String,
    pub demo_client_id: String,
    /// The demo secret, when the server listens on loopback only (no one else can read
    /// the start page); else the start page points at the printed one.
    pub demo_client_secret: Option<String>,
}

/// Serves `/`, `/readme`, `/demo/success` and `/demo/cancel` (GET); `None` for every other
/// request.
pub async fn serve(
    deps: &Local,
    site: &Site,
    method: &http::Method,
    path: &str,
    query: Option<&str>,
) -> Option<hyper::Response<Full<Bytes>>> {
    if method != http::Method::GET {
        return None;
    }
    enum Page {
        Landing,
        Readme,
        /// `success` or `cancel`.
        Demo(&'static str),
    }
    let page = match path {
        "/" => Page::Landing,
        "/readme" => Page::Readme,
        "/demo/success" => Page::Demo("success"),
        "/demo/cancel" => Page::Demo("cancel"),
        _ => return None,
    };
    // Drawn only for these pages: every API GET passes through here, and a nonce is an OS
    // random read.
    let nonce = paysession_http::page::security::nonce();
    let (status, html) = match page {
        Page::Readme => (200, Readme { nonce: &nonce, html: &crate::readme::HTML }.render()),
        Page::Landing => {
            let page = Landing {
                nonce: &nonce,
                base: &site.base_url,
                client_id: &site.demo_client_id,
                client_secret: site.demo_client_secret.as_deref(),
                cards: &CARDS,
                topics: &TOPICS,
            };
            (200, page.render())
        }
        Page::Demo(page) => {
            let (status, demo) = demo(deps, site, page, &nonce, query).await;
            (status, demo.render())
        }
    };
    let body = html.unwrap_or_else(|e| {
        tracing::error!(error = %e, "local page template failed");
        "<!doctype html><title>Error</title><p>Something went wrong.</p>".into()
    });
    let resp = hyper::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(
            "content-security-policy",
            format!("default-src 'none'; style-src 'nonce-{nonce}'; form-action 'none'; frame-ancestors 'none'"),
        )
        .header(http::header::CACHE_CONTROL, "no-store")
        .header("x-content-type-options", "nosniff")
        .body(Full::new(Bytes::from(body)))
        .expect("static parts");
    Some(resp)
}

async fn demo<'a>(deps: &Local, site: &'a Site, page: &'a str, nonce: &'a str, query: Option<&str>) -> (u16, Demo<'a>) {
    let param = |name: &str| paysession_http::request::query_value(query, name);
    let mut out = Demo {
        nonce,
        base: &site.base_url,
        page,
        heading: if page == "success" { "Thank you for your order" } else { "You left the payment page" },
        session: None,
        state: param("state"),
        missing: String::new(),
    };
    let Some(id) = param("session_id").filter(|id| !id.is_empty()) else {
        out.missing = "No session_id in the address: the hosted page adds it when it sends the customer here.".into();
        return (200, out);
    };
    let core = &deps.app.core;
    match core.store.get_session(&site.demo_merchant_id, &id).await {
        Ok(Some(s)) => {
            let now = core.at_merchant(&s.merchant_id).await.map(|cx| cx.clock.now()).unwrap_or_else(|_| core.clock.now());
            out.session = Some(Shown {
                status: s.status_at(now).as_str().to_string(),
                amount: format!("{} {}", s.spec.currency.format_minor(s.spec.amount.minor()), s.spec.currency.code()),
                reference: s.spec.reference.clone(),
                id: s.id,
            });
            (200, out)
        }
        Ok(None) => {
            out.missing = format!("The demo merchant has no session {id}.");
            (404, out)
        }
        Err(e) => {
            tracing::error!(error = %e, "demo page lookup failed");
            out.missing = "The store did not answer. Reload the page.".into();
            (503, out)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_linked_readme_section_exists() {
        for (what, anchor) in super::TOPICS {
            assert!(crate::readme::has_section(anchor), "{what}: the README has no heading #{anchor}");
        }
    }
}
