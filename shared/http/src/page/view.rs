//! What each page shows, rendered through compile-time askama templates
//! (`shared/http/templates/page/`): every value is HTML-escaped by the template engine, so
//! nothing here builds markup by hand.

use askama::Template;

use super::i18n::Lang;

/// Used when a merchant has none: the merchants' default, a neutral slate.
pub const NEUTRAL_BRAND: &str = paysession_app::merchants::DEFAULT_BRAND_COLOR;

/// A brand colour we trust in CSS: `#rrggbb` only (it came through admin validation).
pub fn brand(color: &str) -> &str {
    if color.len() == 7 && color.starts_with('#') && color[1..].bytes().all(|b| b.is_ascii_hexdigit()) { color } else { NEUTRAL_BRAND }
}

/// Black or white text on the brand colour, whichever keeps contrast ≥ 4.5:1 (WCAG).
pub fn on_brand(color: &str) -> &'static str {
    let c = brand(color);
    let ch = |i: usize| u8::from_str_radix(&c[i..i + 2], 16).unwrap_or(0) as f64 / 255.0;
    let lin = |v: f64| if v <= 0.03928 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) };
    let lum = 0.2126 * lin(ch(1)) + 0.7152 * lin(ch(3)) + 0.0722 * lin(ch(5));
    if (lum + 0.05) / 0.05 >= 4.5 { "#000000" } else { "#ffffff" }
}

/// The frame every page shares: language, CSP nonce, merchant and brand.
pub struct Frame<'a> {
    pub lang: Lang,
    pub nonce: &'a str,
    pub merchant: &'a str,
    pub initial: String,
    pub brand: &'a str,
    pub on_brand: &'static str,
    pub title: &'a str,
    /// Seconds until a meta refresh, for pages waiting on an outcome.
    pub refresh: Option<u32>,
    /// Sandbox deployments say so on every page.
    pub sandbox: bool,
}

impl<'a> Frame<'a> {
    pub fn new(lang: Lang, nonce: &'a str, merchant: &'a str, brand_color: &'a str, title: &'a str, sandbox: bool) -> Self {
        let brand = brand(brand_color);
        Frame {
            lang,
            nonce,
            merchant,
            initial: merchant.chars().find(|c| c.is_alphanumeric()).map(|c| c.to_uppercase().collect()).unwrap_or_default(),
            brand,
            on_brand: on_brand(brand),
            title,
            refresh: None,
            sandbox,
        }
    }
}

pub struct Link {
    pub href: String,
    pub label: &'static str,
}

#[derive(Template)]
#[template(path = "page/message.html")]
pub struct MessageView<'a> {
    pub f: Frame<'a>,
    /// `alert`, `ok` or `notice`: the box style.
    pub kind: &'static str,
    pub text: &'a str,
    pub link: Option<Link>,
}

#[derive(Template)]
#[template(path = "page/otp.html")]
pub struct OtpView<'a> {
    pub f: Frame<'a>,
    /// The masked address the code went to; `None` when none is on file.
    pub sent_to: Option<String>,
    pub error: Option<&'static str>,
    pub action: String,
    pub csrf: String,
}

#[derive(Template)]
#[template(path = "page/challenge.html")]
pub struct ChallengeView<'a> {
    pub f: Frame<'a>,
    pub action: String,
    pub csrf: String,
    pub proof: &'a str,
    pub amount: String,
    /// A bank transfer waiting to settle: one "settle now" button.
    pub settle: bool,
    pub pick_bank: bool,
}

#[derive(Template)]
#[template(path = "page/receipt.html")]
pub struct ReceiptView<'a> {
    pub f: Frame<'a>,
    pub amount: String,
    /// What the merchant has refunded of it, when anything.
    pub refunded: Option<String>,
    pub paid_at: Option<String>,
    pub method: Option<String>,
    pub reference: &'a str,
    pub session_id: &'a str,
    pub link: Option<Link>,
}

pub struct Line {
    pub name: String,
    pub quantity: i64,
    pub total: String,
}

pub struct Declined {
    pub reason: &'static str,
    pub attempts: String,
}

pub struct SavedCard {
    pub id: String,
    pub label: String,
}

pub struct CardForm {
    pub action: String,
    pub saved: Vec<SavedCard>,
    pub number_err: Option<&'static str>,
    pub expiry_err: Option<&'static str>,
    pub cvc_err: Option<&'static str>,
    /// The expiry typed before an error (never the number or the CVC).
    pub expiry: String,
    pub offer_save: bool,
    pub save_checked: bool,
    pub mandate_terms: Option<String>,
}

pub struct RedirectForm {
    pub action: String,
    pub hint: &'static str,
    pub button: &'static str,
}

pub struct VirtualAccount {
    pub bank_name: String,
    pub account_number: String,
}

pub struct Qr {
    pub payload_id: String,
    pub svg_base64: String,
}

/// One entry of the method chooser; exactly one of the bodies is set.
pub struct Method {
    pub key: &'static str,
    pub title: &'static str,
    pub open: bool,
    pub card: Option<CardForm>,
    pub redirect: Option<RedirectForm>,
    pub virtual_account: Option<VirtualAccount>,
    pub qr: Option<Qr>,
}

#[derive(Template)]
#[template(path = "page/pay.html")]
pub struct PayView<'a> {
    pub f: Frame<'a>,
    pub csrf: String,
    pub proof: &'a str,
    pub items: Vec<Line>,
    pub recipients: Vec<Line>,
    pub amount: String,
    pub due_date: Option<String>,
    pub descriptor: Option<&'a str>,
    pub expires_iso: String,
    pub expires_at: String,
    pub expires_in: String,
    pub continue_url: Option<String>,
    pub processing: bool,
    pub declined: Option<Declined>,
    pub has_errors: bool,
    pub methods: Vec<Method>,
    pub cancel_url: Option<String>,
}

/// Renders a template; a failure (a formatting error, never expected) is logged and shown
/// as a plain apology rather than a half page.
pub fn render(t: &impl Template) -> String {
    t.render().unwrap_or_else(|e| {
        tracing::error!(error = %e, "page template failed");
        "<!doctype html><title>Error</title><p>Something went wrong. Try again.</p>".into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn brand_colours_are_checked_and_readable() {
        assert_eq!(on_brand("#ffff00"), "#000000");
        assert_eq!(on_brand("#635bff"), "#ffffff");
        assert_eq!(on_brand(NEUTRAL_BRAND), "#ffffff");
        assert_eq!(brand("red;}body{display:none"), NEUTRAL_BRAND);
    }

    #[test]
    fn values_are_escaped_by_the_template() {
        let f = Frame::new(Lang::En, "n0nce", "<b>Shop</b>", "#000000", "Payment", false);
        let html = MessageView { f, kind: "alert", text: "a \"quoted\" <script>", link: None }.render().unwrap();
        assert!(html.contains("&#60;b&#62;Shop&#60;/b&#62;") && !html.contains("<b>"), "{html}");
        assert!(html.contains("a &#34;quoted&#34; &#60;script&#62;") && !html.contains("<script>"), "{html}");
        assert!(html.contains(r#"<style nonce="n0nce">"#));
    }
}
