//! HTML building blocks: escaping, the page frame (with CSP nonce), money display.

use paysession_domain::money::Currency;

use super::i18n::Lang;

pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Minor units as the customer reads them: `€10.50` (en), `10,50 €` (de), `¥1,050`.
pub fn money(minor: i64, currency: &str, lang: Lang) -> String {
    let Some(cur) = Currency::parse(currency) else { return format!("{minor} {currency}") };
    let plain = cur.format_minor(minor);
    let (int, frac) = plain.split_once('.').map_or((plain.as_str(), None), |(i, f)| (i, Some(f)));
    let (group, decimal) = match lang {
        Lang::En => (',', '.'),
        Lang::De => ('.', ','),
    };
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 && c != '-' {
            grouped.push(group);
        }
        grouped.push(c);
    }
    let number = match frac {
        Some(f) => format!("{grouped}{decimal}{f}"),
        None => grouped,
    };
    let symbol = match currency {
        "EUR" => Some("€"),
        "USD" => Some("$"),
        "GBP" => Some("£"),
        "JPY" => Some("¥"),
        _ => None,
    };
    match (symbol, lang) {
        (Some(s), Lang::En) => format!("{s}{number}"),
        (Some(s), Lang::De) => format!("{number} {s}"),
        (None, _) => format!("{number} {currency}"),
    }
}

/// A brand colour we trust in CSS: `#rrggbb` only (it came through admin validation).
fn brand(color: &str) -> &str {
    if color.len() == 7 && color.starts_with('#') && color[1..].bytes().all(|b| b.is_ascii_hexdigit()) { color } else { "#635bff" }
}

/// Picks black or white text for the brand colour so contrast stays ≥ 4.5:1.
fn on_brand(color: &str) -> &'static str {
    let c = brand(color);
    let ch = |i: usize| u8::from_str_radix(&c[i..i + 2], 16).unwrap_or(0) as f64 / 255.0;
    let lin = |v: f64| if v <= 0.03928 { v / 12.92 } else { ((v + 0.055) / 1.055).powf(2.4) };
    let lum = 0.2126 * lin(ch(1)) + 0.7152 * lin(ch(3)) + 0.0722 * lin(ch(5));
    if (lum + 0.05) / 0.05 >= 4.5 { "#000000" } else { "#ffffff" }
}

pub struct Frame<'a> {
    pub lang: Lang,
    pub nonce: &'a str,
    pub merchant: &'a str,
    pub brand_color: &'a str,
    pub title: &'a str,
    /// Seconds until a meta refresh, for pages waiting on an outcome.
    pub refresh: Option<u32>,
}

pub fn page(f: &Frame<'_>, body: &str) -> String {
    let color = brand(f.brand_color);
    let refresh = f.refresh.map(|s| format!(r#"<meta http-equiv="refresh" content="{s}">"#)).unwrap_or_default();
    format!(
        r##"<!doctype html>
<html lang="{lang}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
{refresh}
<title>{title} – {merchant}</title>
<style nonce="{nonce}">
*{{box-sizing:border-box}}
body{{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1a1a1a;background:#f6f7f9}}
header{{background:{color};color:{on};padding:16px}}
header h1{{margin:0;font-size:1.1rem}}
main{{max-width:480px;margin:0 auto;padding:16px}}
section{{background:#fff;border:1px solid #d9dce1;border-radius:8px;padding:16px;margin:0 0 16px}}
h2{{font-size:1rem;margin:0 0 8px}}
.amount{{font-size:1.8rem;font-weight:700;margin:0}}
label{{display:block;font-weight:600;margin:8px 0 4px}}
input[type=text],input[type=tel]{{width:100%;padding:12px;font-size:1rem;border:1px solid #767676;border-radius:6px}}
input[aria-invalid=true]{{border:2px solid #b00020}}
.err{{color:#b00020;margin:4px 0}}
button{{width:100%;padding:12px;margin-top:12px;font-size:1rem;font-weight:600;border:0;border-radius:6px;background:{color};color:{on};cursor:pointer}}
button.secondary{{background:#fff;color:#1a1a1a;border:1px solid #767676}}
button:focus-visible,input:focus-visible,a:focus-visible{{outline:3px solid #1a73e8;outline-offset:2px}}
.alert{{border-left:4px solid #b00020;background:#fdecee;padding:12px;border-radius:4px}}
.ok{{border-left:4px solid #1e7e34;background:#e9f6ec;padding:12px;border-radius:4px}}
table{{width:100%;border-collapse:collapse}} td{{padding:4px 0}} td.num{{text-align:right}}
.muted{{color:#555}} code{{font-size:1.1rem;word-break:break-all}}
a{{color:#0b57d0}}
</style>
</head>
<body>
<header><h1>{merchant}</h1></header>
<main id="main">
{body}
</main>
</body>
</html>
"##,
        lang = f.lang.code(),
        title = esc(f.title),
        merchant = esc(f.merchant),
        nonce = f.nonce,
        color = color,
        on = on_brand(color),
    )
}

/// A message page (status, errors) in the same frame.
pub fn message(f: &Frame<'_>, class: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let link = link.map(|(href, label)| format!(r#"<p><a href="{}">{}</a></p>"#, esc(href), esc(label))).unwrap_or_default();
    page(f, &format!(r#"<section><p class="{class}" role="status">{}</p>{link}</section>"#, esc(text)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_formats() {
        assert_eq!(money(123456, "EUR", Lang::En), "€1,234.56");
        assert_eq!(money(123456, "EUR", Lang::De), "1.234,56 €");
        assert_eq!(money(1050, "JPY", Lang::En), "¥1,050");
        assert_eq!(money(1050, "KWD", Lang::En), "1.050 KWD");
    }

    #[test]
    fn escaping_and_contrast() {
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
        assert_eq!(on_brand("#ffff00"), "#000000");
        assert_eq!(on_brand("#635bff"), "#ffffff");
        assert_eq!(brand("red;}body{display:none"), "#635bff");
    }
}
