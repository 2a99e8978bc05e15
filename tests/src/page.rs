//! A tiny browser stand-in for HTTP-level page tests: follows the page's forms the way a
//! customer's browser would, without JavaScript.

use reqwest::redirect::Policy;
use serde_json::Value;

use crate::Server;

pub struct Customer {
    pub http: reqwest::Client,
    pub url: String,
    pub base: String,
    pub proof: String,
    pub csrf: String,
}

pub struct PageResp {
    pub status: u16,
    pub location: Option<String>,
    pub csp: Option<String>,
    pub body: String,
}

pub fn attr(body: &str, needle: &str) -> Option<String> {
    let start = body.find(needle)? + needle.len();
    Some(body[start..start + body[start..].find('"')?].to_string())
}

impl Customer {
    pub fn new(server: &Server, session: &Value) -> Customer {
        Customer {
            http: reqwest::Client::builder().redirect(Policy::none()).build().unwrap(),
            url: session["url"].as_str().unwrap().to_string(),
            base: server.base.clone(),
            proof: String::new(),
            csrf: String::new(),
        }
    }

    pub fn path(&self) -> String {
        self.url.trim_start_matches(&self.base).to_string()
    }

    pub async fn get(&self, url: &str, headers: &[(&str, &str)]) -> PageResp {
        let mut rb = self.http.get(url);
        for (k, v) in headers {
            rb = rb.header(*k, *v);
        }
        let r = rb.send().await.unwrap();
        PageResp {
            status: r.status().as_u16(),
            location: r.headers().get("location").map(|v| v.to_str().unwrap().to_string()),
            csp: r.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string()),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> PageResp {
        let mut form: Vec<(&str, &str)> = vec![("csrf", &self.csrf), ("v", &self.proof)];
        form.extend_from_slice(fields);
        let r = self.http.post(format!("{}{path}", self.base)).form(&form).send().await.unwrap();
        PageResp {
            status: r.status().as_u16(),
            location: r.headers().get("location").map(|v| v.to_str().unwrap().to_string()),
            csp: r.headers().get("content-security-policy").map(|v| v.to_str().unwrap().to_string()),
            body: r.text().await.unwrap(),
        }
    }

    /// Opens the page as if launched from `origin` (an allowed domain skips the code).
    pub async fn open_from(&mut self, origin: &str) -> PageResp {
        let page = self.get(&self.url.clone(), &[("referer", &format!("{origin}/checkout"))]).await;
        self.read_form(&page);
        page
    }

    pub fn read_form(&mut self, page: &PageResp) {
        if let Some(c) = attr(&page.body, r#"name="csrf" value=""#) {
            self.csrf = c;
        }
        if let Some(v) = attr(&page.body, r#"name="v" value=""#) {
            self.proof = v;
        }
    }

    /// Follows a relative redirect on the page's own origin.
    pub async fn follow(&mut self, resp: &PageResp) -> PageResp {
        let loc = resp.location.clone().expect("a redirect");
        if let Some(v) = loc.split("v=").nth(1) {
            self.proof = crate::decode(v);
        }
        let page = self.get(&format!("{}{loc}", self.base), &[]).await;
        self.read_form(&page);
        page
    }

    pub async fn pay_card(&self, number: &str) -> PageResp {
        self.post(&format!("{}/card", self.path()), &[("card_number", number), ("expiry", "12/30"), ("cvc", "123")]).await
    }
}
