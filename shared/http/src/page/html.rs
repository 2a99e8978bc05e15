//! Money as the customer reads it (markup lives in the askama templates, see `view`).

use paysession_domain::money::Currency;

use super::i18n::Lang;

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
}
