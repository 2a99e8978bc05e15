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
        "pay_to" => ("Pay to", "Zahlung an"),
        "amount_due" => ("Amount due", "Zu zahlen"),
        "items" => ("Items", "Positionen"),
        "recipients" => ("Recipients", "Empfänger"),
        "due_date" => ("Funds due by", "Zahlungseingang bis"),
        "descriptor" => ("Statement shows", "Kontoauszug zeigt"),
        "expires_in" => ("This page expires at", "Diese Seite läuft ab um"),
        "card" => ("Card", "Karte"),
        "card_number" => ("Card number", "Kartennummer"),
        "expiry" => ("Expiry (MM/YY)", "Gültig bis (MM/JJ)"),
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
        "declined" => ("The payment was declined", "Die Zahlung wurde abgelehnt"),
        "attempts_left" => ("Attempts left", "Verbleibende Versuche"),
        "in_progress" => ("A payment is in progress. This page refreshes.", "Eine Zahlung läuft. Diese Seite aktualisiert sich."),
        "continue" => ("Continue the payment", "Zahlung fortsetzen"),
        "succeeded" => ("Payment received. Thank you.", "Zahlung erhalten. Vielen Dank."),
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
            "We cannot verify you: no email or phone is on file. Contact the merchant.",
            "Keine E-Mail oder Telefonnummer hinterlegt. Wenden Sie sich an den Händler.",
        ),
        "challenge_3ds" => ("Card authentication (3-D Secure, sandbox)", "Kartenauthentifizierung (3-D Secure, Sandbox)"),
        "challenge_wallet" => ("Sandbox e-wallet", "Sandbox-E-Wallet"),
        "challenge_bank" => ("Sandbox bank", "Sandbox-Bank"),
        "approve" => ("Approve", "Genehmigen"),
        "deny" => ("Decline", "Ablehnen"),
        "bank_pick" => ("Your bank", "Ihre Bank"),
        "bank_submitted" => ("Transfer submitted. It settles shortly.", "Überweisung übermittelt. Sie wird in Kürze gebucht."),
        "settle_now" => ("Settle now (sandbox)", "Jetzt buchen (Sandbox)"),
        "busy" => ("Another payment for this link is in progress.", "Für diesen Link läuft bereits eine Zahlung."),
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
        let keys = include_str!("mod.rs").split("t(lang, \"").skip(1).chain(include_str!("html.rs").split("t(lang, \"").skip(1));
        for chunk in keys {
            let key = &chunk[..chunk.find('"').unwrap()];
            assert!(!t(Lang::En, key).is_empty() && !t(Lang::De, key).is_empty(), "missing text for {key}");
        }
    }
}
