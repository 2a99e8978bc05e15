//! W3C trace context (`traceparent`) of a request: the caller's trace continued, or AWS
//! X-Ray's root (`X-Amzn-Trace-Id`, which API Gateway adds) read as one, or a new trace.
//! Hand-written rather than taken from `opentelemetry`: the format is one line of fixed-width
//! hex (W3C Trace Context, section 3.2), and the SDK would add its runtime to every bootstrap;
//! the tests below hold it to the specification's examples and rules.

use paysession_app::ids::random_hex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// 32 lowercase hex digits, never all zero.
    pub trace_id: String,
    /// This hop's own span: 16 lowercase hex digits.
    pub span_id: String,
    /// The caller's span, when the trace came with the request.
    pub parent_id: Option<String>,
    pub sampled: bool,
}

impl TraceContext {
    /// A trace of its own (no caller, or one whose headers could not be read).
    pub fn start() -> Self {
        TraceContext { trace_id: random_hex::<16>(), span_id: random_hex::<8>(), parent_id: None, sampled: true }
    }

    /// The caller's `traceparent` if it is valid, else the X-Ray root, else a new trace.
    pub fn continue_from(traceparent: Option<&str>, amzn_trace_id: Option<&str>) -> Self {
        if let Some((trace_id, parent, sampled)) = traceparent.and_then(parse_traceparent) {
            return TraceContext { trace_id, span_id: random_hex::<8>(), parent_id: Some(parent), sampled };
        }
        if let Some((trace_id, parent, sampled)) = amzn_trace_id.and_then(parse_xray) {
            return TraceContext { trace_id, span_id: random_hex::<8>(), parent_id: parent, sampled };
        }
        Self::start()
    }

    /// The `traceparent` header a call made from this hop carries.
    pub fn traceparent(&self) -> String {
        format!("00-{}-{}-{}", self.trace_id, self.span_id, if self.sampled { "01" } else { "00" })
    }
}

fn is_lower_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn all_zero(s: &str) -> bool {
    s.bytes().all(|b| b == b'0')
}

/// `version-traceid-parentid-flags`. Version `ff` is invalid; a later version than `00` may
/// carry more fields after the flags, which are ignored (section 4.3).
fn parse_traceparent(header: &str) -> Option<(String, String, bool)> {
    let header = header.trim();
    let mut parts = header.split('-');
    let (version, trace_id, parent, flags) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if !is_lower_hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
        return None;
    }
    if !is_lower_hex(trace_id, 32) || all_zero(trace_id) || !is_lower_hex(parent, 16) || all_zero(parent) || !is_lower_hex(flags, 2) {
        return None;
    }
    let sampled = u8::from_str_radix(flags, 16).ok()? & 1 == 1;
    Some((trace_id.to_string(), parent.to_string(), sampled))
}

/// `Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=0|1`: the root's 32 hex digits are
/// the W3C trace id (X-Ray's own mapping).
fn parse_xray(header: &str) -> Option<(String, Option<String>, bool)> {
    let mut root = None;
    let mut parent = None;
    let mut sampled = true;
    for part in header.split(';') {
        match part.trim().split_once('=') {
            Some(("Root", v)) => {
                let mut f = v.split('-');
                let (one, epoch, rest) = (f.next()?, f.next()?, f.next()?);
                let id = format!("{epoch}{rest}").to_ascii_lowercase();
                (one == "1" && f.next().is_none() && is_lower_hex(&id, 32) && !all_zero(&id)).then_some(())?;
                root = Some(id);
            }
            Some(("Parent", v)) if is_lower_hex(&v.to_ascii_lowercase(), 16) => parent = Some(v.to_ascii_lowercase()),
            Some(("Sampled", "0")) => sampled = false,
            _ => {}
        }
    }
    Some((root?, parent, sampled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span() {
        // The example of W3C Trace Context, section 3.2.2.
        let t = TraceContext::continue_from(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), None);
        assert_eq!(t.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.as_deref(), Some("00f067aa0ba902b7"));
        assert!(t.sampled && t.span_id != "00f067aa0ba902b7" && is_lower_hex(&t.span_id, 16));
        assert_eq!(t.traceparent(), format!("00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01", t.span_id));
        let unsampled = TraceContext::continue_from(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"), None);
        assert!(!unsampled.sampled && unsampled.traceparent().ends_with("-00"));
        // A later version may append fields; version 00 may not.
        let later =
            TraceContext::continue_from(Some("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds"), None);
        assert_eq!(later.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn an_invalid_traceparent_starts_a_new_trace() {
        for bad in [
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "",
        ] {
            let t = TraceContext::continue_from(Some(bad), None);
            assert!(t.parent_id.is_none() && t.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736", "{bad:?} was accepted");
            assert!(is_lower_hex(&t.trace_id, 32) && !all_zero(&t.trace_id));
        }
    }

    #[test]
    fn an_xray_root_is_read_as_the_trace_id() {
        // The example of the X-Ray developer guide's tracing header.
        let t = TraceContext::continue_from(None, Some("Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"));
        assert_eq!(t.trace_id, "5759e988bd862e3fe1be46a994272793");
        assert_eq!(t.parent_id.as_deref(), Some("53995c3f42cd8ad8"));
        let root_only = TraceContext::continue_from(Some("garbage"), Some("Root=1-5759e988-bd862e3fe1be46a994272793"));
        assert_eq!((root_only.trace_id.as_str(), root_only.parent_id), ("5759e988bd862e3fe1be46a994272793", None));
        assert_ne!(
            TraceContext::continue_from(None, Some("Root=2-5759e988-bd862e3fe1be46a994272793")).trace_id,
            "5759e988bd862e3fe1be46a994272793"
        );
    }
}
