//! Page texts in English and German, chosen by the session's `locale` (unknown → English).

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    De,
}

impl Lang {
    pub fn from_locale(locale: &str) -> Lang {
        if locale == "de" { Lang::De } else { Lang::En }
    }
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::De => "de",
        }
    }

    /// The text of `key` in this language (templates call it as `f.lang.t("key")`).
    pub fn t(self, key: &str) -> &'static str {
        t(self, key)
    }
}

const MONTHS_EN: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const MONTHS_DE: [&str; 12] =
    ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober", "November", "Dezember"];

/// A calendar date as the customer reads it: `2 December 2026` / `2. Dezember 2026`.
pub fn date(lang: Lang, d: chrono::NaiveDate) -> String {
    use chrono::Datelike;
    let month = d.month0() as usize;
    match lang {
        Lang::En => format!("{} {} {}", d.day(), MONTHS_EN[month], d.year()),
        Lang::De => format!("{}. {} {}", d.day(), MONTHS_DE[month], d.year()),
    }
}

/// A moment in UTC: `2 December 2026, 04:14 UTC` / `2. Dezember 2026, 04:14 UTC`.
pub fn date_time(lang: Lang, t: chrono::DateTime<chrono::Utc>) -> String {
    format!("{}, {} UTC", date(lang, t.date_naive()), t.format("%H:%M"))
}

/// How long until `end`, rounded up to whole minutes, hours or days: `15 minutes`.
pub fn time_left(lang: Lang, now: chrono::DateTime<chrono::Utc>, end: chrono::DateTime<chrono::Utc>) -> String {
    let minutes = ((end - now).num_seconds().max(0) + 59) / 60;
    let (n, en, de) = match minutes {
        m if m < 120 => (m, ("minute", "minutes"), ("Minute", "Minuten")),
        m if m < 48 * 60 => ((m + 59) / 60, ("hour", "hours"), ("Stunde", "Stunden")),
        m => ((m + 24 * 60 - 1) / (24 * 60), ("day", "days"), ("Tag", "Tage")),
    };
    match lang {
        Lang::En => format!("{n} {}", if n == 1 { en.0 } else { en.1 }),
        Lang::De => format!("{n} {}", if n == 1 { de.0 } else { de.1 }),
    }
}

/// A card form error as a sentence, by field and code (the API's texts are for developers).
pub fn field_error(lang: Lang, field: &str, code: paysession_domain::FieldCode) -> &'static str {
    use paysession_domain::FieldCode as C;
    let (en, de) = match (field, code) {
        ("card_number", C::Required) => ("Enter the card number.", "Geben Sie die Kartennummer ein."),
        ("card_number", C::InvalidChecksum) => {
            ("This card number is not valid. Check it for typos.", "Diese Kartennummer ist ungültig. Prüfen Sie sie auf Tippfehler.")
        }
        ("card_number", _) => ("A card number has 12 to 19 digits.", "Eine Kartennummer hat 12 bis 19 Ziffern."),
        ("expiry", C::TooSoon) => ("This card has expired.", "Diese Karte ist abgelaufen."),
        ("expiry", C::TooLate) => ("The expiry year is too far in the future.", "Das Ablaufjahr liegt zu weit in der Zukunft."),
        ("expiry", _) => ("Enter the expiry date as MM/YY.", "Geben Sie das Ablaufdatum als MM/JJ ein."),
        ("cvc", _) => ("Enter the 3 or 4 digit security code.", "Geben Sie die 3- oder 4-stellige Prüfnummer ein."),
        _ => ("Check this field.", "Prüfen Sie dieses Feld."),
    };
    match lang {
        Lang::En => en,
        Lang::De => de,
    }
}

/// The mandate terms a `first_in_series` page shows above the pay button: paying with them
/// shown is the customer's acceptance, recorded with the payment.
pub fn mandate_terms(
    lang: Lang,
    merchant: &str,
    amount: &str,
    max: Option<&str>,
    schedule: Option<&paysession_domain::model::Schedule>,
) -> String {
    use paysession_domain::model::Interval;
    let Some(s) = schedule else {
        return match (lang, max) {
            (Lang::En, None) => format!("By paying, you authorise {merchant} to charge this card later for future payments."),
            (Lang::En, Some(m)) => {
                format!("By paying, you authorise {merchant} to charge this card later for future payments of up to {m} each.")
            }
            (Lang::De, None) => {
                format!("Mit der Zahlung ermächtigen Sie {merchant}, diese Karte später für künftige Zahlungen zu belasten.")
            }
            (Lang::De, Some(m)) => {
                format!(
                    "Mit der Zahlung ermächtigen Sie {merchant}, diese Karte später für künftige Zahlungen von jeweils bis zu {m} zu belasten."
                )
            }
        };
    };
    let n = s.interval_count;
    let (one, many) = match (lang, s.interval) {
        (Lang::En, Interval::Day) => ("day", "days"),
        (Lang::En, Interval::Week) => ("week", "weeks"),
        (Lang::En, Interval::Month) => ("month", "months"),
        (Lang::En, Interval::Year) => ("year", "years"),
        (Lang::De, Interval::Day) => ("Tag", "Tage"),
        (Lang::De, Interval::Week) => ("Woche", "Wochen"),
        (Lang::De, Interval::Month) => ("Monat", "Monate"),
        (Lang::De, Interval::Year) => ("Jahr", "Jahre"),
    };
    let unit = if n == 1 { one } else { many };
    let every = if n == 1 { unit.to_string() } else { format!("{n} {unit}") };
    let start = s.start_date;
    match lang {
        Lang::En => {
            let mut out = format!("By paying, you authorise {merchant} to charge this card {amount} every {every}, first on {start}");
            if let Some(end) = s.end_date {
                out.push_str(&format!(", until {end}"));
            }
            if let Some(max) = s.max_charges {
                out.push_str(&format!(", at most {max} times"));
            }
            out.push('.');
            out
        }
        Lang::De => {
            let unit_de = if n == 1 {
                match s.interval {
                    Interval::Week => "jede Woche".to_string(),
                    _ => format!("jeden {unit}"),
                }
            } else {
                format!("alle {every}")
            };
            let mut out = format!(
                "Mit der Zahlung ermächtigen Sie {merchant}, diese Karte {unit_de} mit {amount} zu belasten, erstmals am {}",
                start.format("%d.%m.%Y")
            );
            if let Some(end) = s.end_date {
                out.push_str(&format!(", bis {}", end.format("%d.%m.%Y")));
            }
            if let Some(max) = s.max_charges {
                out.push_str(&format!(", höchstens {max}-mal"));
            }
            out.push('.');
            out
        }
    }
}

/// A message by key; a missing key is a bug caught by the unit test below.
pub fn t(lang: Lang, key: &str) -> &'static str {
    let (en, de) = match key {
        "title" => ("Payment", "Zahlung"),
        "secure" => ("Secure checkout", "Sichere Zahlung"),
        "test_mode" => ("Test mode: no real money moves.", "Testmodus: Es fließt kein echtes Geld."),
        "footer" => (
            "Card details go straight to the payment processor; this page never stores the card number or security code.",
            "Kartendaten gehen direkt an den Zahlungsdienstleister; diese Seite speichert weder Kartennummer noch Prüfnummer.",
        ),
        "order_summary" => ("Order summary", "Bestellübersicht"),
        "total" => ("Total", "Gesamt"),
        "pay_with" => ("Pay with", "Bezahlen mit"),
        "expires_label" => ("Time left to pay:", "Verbleibende Zeit:"),
        "expiry_placeholder" => ("MM/YY", "MM/JJ"),
        "or_new_card" => ("Or pay with a new card:", "Oder mit einer neuen Karte zahlen:"),
        "ewallet_hint" => ("You approve the payment in your e-wallet.", "Sie bestätigen die Zahlung in Ihrer E-Wallet."),
        "bank_hint" => ("You approve the transfer at your bank.", "Sie bestätigen die Überweisung bei Ihrer Bank."),
        "va_after" => (
            "This page shows the payment once the transfer arrives.",
            "Diese Seite zeigt die Zahlung, sobald die Überweisung eingegangen ist.",
        ),
        "qr_alt" => ("QR code for payment", "QR-Code für die Zahlung"),
        "challenge_hint" => {
            ("Sandbox: choose what the customer's bank or wallet answers.", "Sandbox: Wählen Sie, was Bank oder Wallet antworten.")
        }
        "receipt_thanks" => ("Thank you. Keep this page as your receipt.", "Vielen Dank. Bewahren Sie diese Seite als Beleg auf."),
        "paid_to" => ("Paid to", "Bezahlt an"),
        "paid_at" => ("Date", "Datum"),
        "paid_with" => ("Payment method", "Zahlungsart"),
        "reference" => ("Reference", "Referenz"),
        "refunded" => ("Refunded", "Erstattet"),
        "receipt_number" => ("Receipt number", "Belegnummer"),
        "attempts_left_n" => ("Attempts left:", "Verbleibende Versuche:"),
        "recipients" => ("Recipients", "Empfänger"),
        "due_date" => ("Funds due by", "Zahlungseingang bis"),
        "descriptor" => ("Statement shows", "Kontoauszug zeigt"),
        "card" => ("Card", "Karte"),
        "card_number" => ("Card number", "Kartennummer"),
        "expiry" => ("Expiry (MM/YY)", "Gültig bis"),
        "cvc" => ("Security code", "Prüfnummer"),
        "save_card" => ("Save this card for next time", "Karte für das nächste Mal speichern"),
        "saved_cards" => ("Saved cards", "Gespeicherte Karten"),
        "pay_saved" => ("Pay with this card", "Mit dieser Karte zahlen"),
        "pay" => ("Pay", "Bezahlen"),
        "ewallet" => ("E-wallet", "E-Wallet"),
        "pay_ewallet" => ("Continue to e-wallet", "Weiter zur E-Wallet"),
        "bank_transfer" => ("Bank transfer", "Banküberweisung"),
        "pay_bank" => ("Continue to your bank", "Weiter zu Ihrer Bank"),
        "virtual_account" => ("Virtual account", "Virtuelles Konto"),
        "va_hint" => ("Transfer exactly the amount due to this account:", "Überweisen Sie genau den Betrag auf dieses Konto:"),
        "qr" => ("QR code", "QR-Code"),
        "qr_hint" => ("Scan with your banking app.", "Mit Ihrer Banking-App scannen."),
        "cancel" => ("Cancel and return to the merchant", "Abbrechen und zurück zum Händler"),
        "in_progress" => ("A payment is in progress. This page refreshes.", "Eine Zahlung läuft. Diese Seite aktualisiert sich."),
        "continue" => ("Continue the payment", "Zahlung fortsetzen"),
        "succeeded" => ("Payment received", "Zahlung erhalten"),
        "failed" => ("The payment failed.", "Die Zahlung ist fehlgeschlagen."),
        "cancelled" => ("This payment was cancelled.", "Diese Zahlung wurde storniert."),
        "expired" => ("This payment link has expired.", "Dieser Zahlungslink ist abgelaufen."),
        "not_found" => ("This payment link does not exist.", "Diesen Zahlungslink gibt es nicht."),
        "not_ready" => ("This payment is not open yet. Try again later.", "Diese Zahlung ist noch nicht freigegeben."),
        "return" => ("Return to the merchant", "Zurück zum Händler"),
        "otp_title" => ("Confirm it is you", "Bestätigen Sie, dass Sie es sind"),
        "otp_sent" => ("We sent a 6-digit code to", "Wir haben einen 6-stelligen Code gesendet an"),
        "otp_code" => ("6-digit code", "6-stelliger Code"),
        "otp_verify" => ("Verify", "Bestätigen"),
        "otp_resend" => ("Send a new code", "Neuen Code senden"),
        "otp_wrong" => ("That code is not right.", "Dieser Code ist nicht richtig."),
        "otp_locked" => (
            "Too many wrong codes were entered, so this payment can no longer be confirmed here. Contact the merchant for a new payment link.",
            "Es wurden zu viele falsche Codes eingegeben, daher kann diese Zahlung hier nicht mehr bestätigt werden. Bitten Sie den Händler um einen neuen Zahlungslink.",
        ),
        "otp_exhausted" => (
            "No more codes can be sent for this payment. Contact the merchant for a new payment link.",
            "Für diese Zahlung können keine weiteren Codes gesendet werden. Bitten Sie den Händler um einen neuen Zahlungslink.",
        ),
        "otp_resend_limit" => (
            "No more new codes can be sent. Enter the last code you received.",
            "Es können keine neuen Codes mehr gesendet werden. Geben Sie den zuletzt erhaltenen Code ein.",
        ),
        "otp_cooldown" => (
            "A code was sent moments ago. Wait 30 seconds before asking for another.",
            "Gerade wurde ein Code gesendet. Warten Sie 30 Sekunden, bevor Sie einen neuen anfordern.",
        ),
        "otp_no_contact_sandbox" => (
            "No email address or phone number is on file for this payment, so no code could be sent to you. In the sandbox, read the code from GET /sandbox/otp.",
            "Für diese Zahlung ist keine E-Mail-Adresse oder Telefonnummer hinterlegt, daher konnte kein Code gesendet werden. In der Sandbox steht der Code unter GET /sandbox/otp.",
        ),
        "otp_expired" => ("The code has expired. Request a new one.", "Der Code ist abgelaufen. Fordern Sie einen neuen an."),
        "otp_unavailable" => (
            "We cannot confirm it is you: no email address or phone number is on file for this payment. Ask the merchant for a new payment link that includes your contact details.",
            "Wir können Sie nicht bestätigen: Für diese Zahlung ist keine E-Mail-Adresse oder Telefonnummer hinterlegt. Bitten Sie den Händler um einen neuen Zahlungslink mit Ihren Kontaktdaten.",
        ),
        "challenge_3ds" => ("Card authentication (3-D Secure, sandbox)", "Kartenauthentifizierung (3-D Secure, Sandbox)"),
        "challenge_wallet" => ("Sandbox e-wallet", "Sandbox-E-Wallet"),
        "challenge_bank" => ("Sandbox bank", "Sandbox-Bank"),
        "approve" => ("Approve", "Genehmigen"),
        "deny" => ("Decline", "Ablehnen"),
        "bank_pick" => ("Your bank", "Ihre Bank"),
        "bank_submitted" => ("Transfer submitted. It settles shortly.", "Überweisung übermittelt. Sie wird in Kürze gebucht."),
        "settle_now" => ("Settle now (sandbox)", "Jetzt buchen (Sandbox)"),
        "forbidden" => {
            ("This form has expired. Reload the page and try again.", "Dieses Formular ist abgelaufen. Laden Sie die Seite neu.")
        }
        "fix_fields" => ("Please check the highlighted fields.", "Bitte prüfen Sie die markierten Felder."),
        _ => ("", ""),
    };
    match lang {
        Lang::En => en,
        Lang::De => de,
    }
}

/// Failure codes as the customer reads them.
pub fn failure(lang: Lang, code: &str) -> &'static str {
    match (lang, code) {
        (Lang::En, "card_declined") => "Your card was declined. Try another card.",
        (Lang::De, "card_declined") => "Ihre Karte wurde abgelehnt. Versuchen Sie eine andere Karte.",
        (Lang::En, "insufficient_funds") => "Your card has insufficient funds.",
        (Lang::De, "insufficient_funds") => "Ihre Karte ist nicht ausreichend gedeckt.",
        (Lang::En, "authentication_failed") => "Card authentication failed.",
        (Lang::De, "authentication_failed") => "Die Kartenauthentifizierung ist fehlgeschlagen.",
        (Lang::En, _) => "The payment could not be completed. Try again.",
        (Lang::De, _) => "Die Zahlung konnte nicht abgeschlossen werden. Versuchen Sie es erneut.",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_both_languages() {
        let sources = [
            include_str!("mod.rs"),
            include_str!("../../templates/page/base.html"),
            include_str!("../../templates/page/message.html"),
            include_str!("../../templates/page/otp.html"),
            include_str!("../../templates/page/pay.html"),
            include_str!("../../templates/page/challenge.html"),
            include_str!("../../templates/page/receipt.html"),
        ];
        let mut seen = 0;
        for source in sources {
            for marker in ["t(lang, \"", "lang.t(\"", "t(self.lang, \""] {
                for chunk in source.split(marker).skip(1) {
                    let key = &chunk[..chunk.find('"').unwrap()];
                    assert!(!t(Lang::En, key).is_empty() && !t(Lang::De, key).is_empty(), "missing text for {key}");
                    seen += 1;
                }
            }
        }
        assert!(seen > 40, "the scan found the keys ({seen})");
    }

    #[test]
    fn dates_and_durations_per_locale() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2026, 12, 2, 4, 14, 0).unwrap();
        assert_eq!(date_time(Lang::En, t), "2 December 2026, 04:14 UTC");
        assert_eq!(date_time(Lang::De, t), "2. Dezember 2026, 04:14 UTC");
        let now = t - chrono::Duration::seconds(15 * 60 - 5);
        assert_eq!(time_left(Lang::En, now, t), "15 minutes");
        assert_eq!(time_left(Lang::De, now, t), "15 Minuten");
        assert_eq!(time_left(Lang::En, t - chrono::Duration::hours(5), t), "5 hours");
        assert_eq!(time_left(Lang::De, t - chrono::Duration::days(3), t), "3 Tage");
        assert_eq!(time_left(Lang::En, t - chrono::Duration::seconds(30), t), "1 minute");
    }

    #[test]
    fn card_errors_are_sentences() {
        use paysession_domain::FieldCode as C;
        for lang in [Lang::En, Lang::De] {
            for (field, code) in
                [("card_number", C::Required), ("card_number", C::InvalidChecksum), ("expiry", C::TooSoon), ("cvc", C::InvalidFormat)]
            {
                let text = field_error(lang, field, code);
                assert!(text.starts_with(|c: char| c.is_uppercase()) && text.ends_with('.'), "{text}");
            }
        }
    }
}
