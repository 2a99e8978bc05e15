//! Value types of a payment session, shared by the parser and the stored record.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name { $(#[serde(rename = $text)] $variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str { match self { $($name::$variant => $text),+ } }
            pub fn parse(s: &str) -> Option<Self> { Self::ALL.iter().copied().find(|v| v.as_str() == s) }
            /// The accepted values, for error messages.
            pub fn expected() -> String { Self::ALL.iter().map(|v| v.as_str()).collect::<Vec<_>>().join(", ") }
        }
    };
}

string_enum!(SessionType { OneTime = "one_time", FirstInSeries = "first_in_series", NextInSeries = "next_in_series" });
string_enum!(Purpose {
    PropertyPurchase = "property_purchase", PropertyRental = "property_rental", Tuition = "tuition",
    Invoice = "invoice", Goods = "goods", Services = "services", Travel = "travel",
    FamilySupport = "family_support", Salary = "salary", Other = "other",
});
string_enum!(ItemType {
    Property = "property", Invoice = "invoice", Booking = "booking", ServiceFee = "service_fee",
    Product = "product", Other = "other",
});
string_enum!(PaymentMethodKind {
    Card = "card", Ewallet = "ewallet", VirtualAccount = "virtual_account", Qr = "qr",
    BankTransfer = "bank_transfer",
});
string_enum!(Mode { Redirect = "redirect", Api = "api" });
string_enum!(SavePaymentMethod { Never = "never", Prompt = "prompt", Always = "always" });
string_enum!(MandateType { OnDemand = "on_demand", Scheduled = "scheduled" });
string_enum!(Interval { Day = "day", Week = "week", Month = "month", Year = "year" });
string_enum!(CancellationReason {
    RequestedByCustomer = "requested_by_customer", Duplicate = "duplicate", Abandoned = "abandoned",
    Fraudulent = "fraudulent",
});

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Customer {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    pub name: String,
    pub quantity: i64,
    pub unit_amount: i64,
    #[serde(rename = "type")]
    pub item_type: ItemType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecipientAccount {
    Iban { iban: String },
    Local { account_number: String, bank_code: String, country: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub name: String,
    pub amount: i64,
    pub currency: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    pub account: RecipientAccount,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    pub interval: Interval,
    pub interval_count: u32,
    pub start_date: chrono::NaiveDate,
    /// Time of day (UTC) of each occurrence, `"HH:MM"`; 09:00 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "hh_mm")]
    pub time: Option<chrono::NaiveTime>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end_date: Option<chrono::NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_charges: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MandateSpec {
    #[serde(rename = "type")]
    pub mandate_type: MandateType,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_amount: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule: Option<Schedule>,
}

/// One entry of `allowed_domains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedDomain {
    /// `https://host[:port]`, normalised to lower case.
    Origin(String),
    /// An Android package name or iOS bundle id, matched against the `app_id` parameter.
    AppId(String),
}

impl AllowedDomain {
    pub fn as_str(&self) -> &str {
        match self {
            AllowedDomain::Origin(s) | AllowedDomain::AppId(s) => s,
        }
    }

    /// A web origin (may frame the page and launch it); otherwise an app id.
    pub fn is_origin(&self) -> bool {
        matches!(self, AllowedDomain::Origin(_))
    }
}

// Stored and shown as the string the merchant gave: origins are the `https://` ones.
impl Serialize for AllowedDomain {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for AllowedDomain {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(if s.starts_with("https://") { AllowedDomain::Origin(s) } else { AllowedDomain::AppId(s) })
    }
}

/// `"HH:MM"` for an optional time of day.
mod hh_mm {
    use chrono::NaiveTime;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Option<NaiveTime>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&t.format("%H:%M").to_string()),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<NaiveTime>, D::Error> {
        Option::<String>::deserialize(d)?.map(|s| NaiveTime::parse_from_str(&s, "%H:%M").map_err(serde::de::Error::custom)).transpose()
    }
}
