//! Reading requests: body limits, content types, JSON, query strings, request ids.

use http::header;
use lambda_http::{Body, Request, RequestExt};
use paysession_domain::errors::{Errors, FieldCode};
use serde_json::Value;

use crate::problem::ApiError;

pub const MAX_BODY: usize = 64 * 1024;

/// The peer address of a request to the local server, set by its accept loop (API
/// Gateway's is in the request context).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub std::net::IpAddr);

/// One request as a handler sees it.
pub struct Call<'a> {
    pub req: &'a Request,
    pub params: Vec<(&'static str, String)>,
    pub request_id: String,
}

impl Call<'_> {
    pub fn param(&self, name: &str) -> &str {
        self.params.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str()).unwrap_or("")
    }

    pub fn body_bytes(&self) -> &[u8] {
        body_bytes(self.req.body())
    }

    /// The address the request came from as the platform saw it: never a header the client
    /// sets, so it can key rate limits.
    pub fn client_ip(&self) -> Option<String> {
        if let Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) = self.req.request_context_ref() {
            return ctx.http.source_ip.clone();
        }
        self.req.extensions().get::<ClientAddr>().map(|a| a.0.to_string())
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.req.headers().get(name).and_then(|v| v.to_str().ok())
    }

    /// The JSON object body of a POST. An empty body reads as `{}` when `empty_ok`.
    pub fn json_body(&self, empty_ok: bool) -> Result<Value, ApiError> {
        let bytes = self.body_bytes();
        if bytes.iter().all(u8::is_ascii_whitespace) && empty_ok {
            return Ok(Value::Object(Default::default()));
        }
        let ct = self.header(header::CONTENT_TYPE.as_str()).unwrap_or("");
        let mime = ct.split(';').next().unwrap_or("").trim();
        if !mime.eq_ignore_ascii_case("application/json") {
            return Err(ApiError::UnsupportedMediaType("application/json"));
        }
        let body =
            paysession_domain::json::parse_strict(bytes).map_err(|e| ApiError::MalformedRequest(format!("body is not valid JSON: {e}")))?;
        let mut e = Errors::new();
        paysession_domain::json::control_characters(&body, "", &mut e);
        if e.is_empty() { Ok(body) } else { Err(ApiError::Validation(e.into_vec())) }
    }

    /// Query parameters, percent-decoded. Repeated or unknown names are recorded in
    /// `errors` beside whatever the caller finds wrong with the values.
    /// A POST body that carries no fields: empty or `{}`; anything else is reported.
    pub fn empty_object_body(&self) -> Result<(), ApiError> {
        let body = self.json_body(true)?;
        let mut e = Errors::new();
        if let Some(r) = paysession_domain::json::ObjectReader::new(&body, "", &mut e) {
            r.finish(&mut e);
        }
        if e.is_empty() { Ok(()) } else { Err(ApiError::Validation(e.into_vec())) }
    }

    pub fn query(&self, known: &[&'static str], errors: &mut Errors) -> Result<Vec<(String, String)>, ApiError> {
        let raw = self.req.uri().query().unwrap_or("");
        let mut out: Vec<(String, String)> = Vec::new();
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (Some(k), Some(v)) = (percent_decode(k), percent_decode(v)) else {
                return Err(ApiError::MalformedRequest("query string is not valid percent-encoded UTF-8".into()));
            };
            if !known.contains(&k.as_str()) {
                errors.add(k.clone(), FieldCode::UnknownField, "is not a recognised query parameter");
            } else if out.iter().any(|(name, _)| *name == k) {
                errors.add(k.clone(), FieldCode::Duplicate, "is given more than once");
            }
            out.push((k, v));
        }
        Ok(out)
    }
}

pub fn body_bytes(body: &Body) -> &[u8] {
    match body {
        Body::Empty => &[],
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// `application/x-www-form-urlencoded` and query strings: `+` is a space.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok().filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b'%' => return None,
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// The first decodable value of `name` in a query string.
pub fn query_value(query: Option<&str>, name: &str) -> Option<String> {
    query?.split('&').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        (k == name).then(|| percent_decode(v)).flatten()
    })
}

pub fn parse_form(body: &[u8]) -> Option<Vec<(String, String)>> {
    let s = std::str::from_utf8(body).ok()?;
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Some((percent_decode(k)?, percent_decode(v)?))
        })
        .collect()
}

/// The caller's `x-request-id` when it is a sane token, else a fresh UUID.
pub fn request_id(req: &Request) -> String {
    req.headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b)))
        .map(str::to_string)
        .or_else(|| gateway_request_id(req))
        .unwrap_or_else(paysession_app::ids::new_uuid)
}

/// API Gateway's id of the request, which its access log (template.yaml) writes: the
/// function's log lines and the `x-request-id` answer then name the same request.
fn gateway_request_id(req: &Request) -> Option<String> {
    match req.request_context_ref() {
        Some(lambda_http::request::RequestContext::ApiGatewayV2(ctx)) => ctx.request_id.clone().filter(|id| !id.is_empty()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_named_by_its_header_else_by_api_gateway() {
        let event = |headers: &str| {
            lambda_http::request::from_str(&format!(
                r#"{{"version":"2.0","routeKey":"GET /health","rawPath":"/health","rawQueryString":"","headers":{{{headers}}},
                "requestContext":{{"accountId":"1","apiId":"a","domainName":"d","domainPrefix":"d","http":{{"method":"GET","path":"/health","protocol":"HTTP/1.1","sourceIp":"192.0.2.1","userAgent":"t"}},
                "requestId":"Kx1_gw-id=","routeKey":"GET /health","stage":"$default","time":"04/Dec/2026:19:00:00 +0000","timeEpoch":1796410800000}},"isBase64Encoded":false}}"#
            ))
            .unwrap()
        };
        assert_eq!(request_id(&event("")), "Kx1_gw-id=");
        assert_eq!(request_id(&event(r#""x-request-id":"mine-1""#)), "mine-1");
        assert_eq!(request_id(&event(r#""x-request-id":"not valid""#)), "Kx1_gw-id=");
        let local = Request::new(lambda_http::Body::Empty);
        assert_eq!(request_id(&local).len(), 36, "a fresh UUID where no gateway named the request");
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("a%20b+c").as_deref(), Some("a b c"));
        assert_eq!(percent_decode("%e2%82%ac").as_deref(), Some("€"));
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%4"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%+1"), None);
        assert_eq!(parse_form(b"grant_type=client_credentials&scope=a+b").unwrap()[1], ("scope".into(), "a b".into()));
    }
}
