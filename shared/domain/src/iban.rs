//! IBAN (ISO 13616): country, registry length and the mod-97 check digits.

use crate::reference_data::iban_length;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iban(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IbanError {
    Format,
    Country,
    Length,
    Checksum,
}

impl Iban {
    /// Accepts the electronic form with optional spaces (the print form), any case.
    pub fn parse(input: &str) -> Result<Iban, IbanError> {
        let compact: String = input.chars().filter(|c| *c != ' ').map(|c| c.to_ascii_uppercase()).collect();
        if compact.len() < 5 || !compact.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(IbanError::Format);
        }
        let (country, rest) = compact.split_at(2);
        if !country.chars().all(|c| c.is_ascii_uppercase()) || !rest[..2].chars().all(|c| c.is_ascii_digit()) {
            return Err(IbanError::Format);
        }
        let expected = iban_length(country).ok_or(IbanError::Country)?;
        if compact.len() != expected {
            return Err(IbanError::Length);
        }
        if mod97(&compact) != 1 {
            return Err(IbanError::Checksum);
        }
        Ok(Iban(compact))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Rearranged IBAN (first four characters moved to the end, letters as 10..35) mod 97,
/// computed digit by digit so no big integers are needed.
fn mod97(iban: &str) -> u32 {
    let rearranged = iban[4..].chars().chain(iban[..4].chars());
    let mut rem: u32 = 0;
    for c in rearranged {
        let v = c.to_digit(36).expect("alphanumeric checked");
        rem = if v >= 10 { (rem * 100 + v) % 97 } else { (rem * 10 + v) % 97 };
    }
    rem
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_valid() {
        for s in ["DE89 3704 0044 0532 0130 00", "GB82WEST12345698765432", "nl91abna0417164300", "FR1420041010050500013M02606"] {
            assert!(Iban::parse(s).is_ok(), "{s}");
        }
    }

    #[test]
    fn failures() {
        assert_eq!(Iban::parse("DE89370400440532013001"), Err(IbanError::Checksum));
        assert_eq!(Iban::parse("DE8937040044053201300"), Err(IbanError::Length));
        assert_eq!(Iban::parse("ZZ89370400440532013000"), Err(IbanError::Country));
        assert_eq!(Iban::parse("DE-9"), Err(IbanError::Format));
    }
}
