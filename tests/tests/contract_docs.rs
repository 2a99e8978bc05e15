//! The route table, the OpenAPI document, template.yaml and functions/ must agree.

use std::collections::BTreeSet;
use std::path::Path;

use paysession_http::problem::ApiError;
use paysession_http::routes::table;
use serde_json::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn openapi() -> Value {
    serde_json::from_str(&std::fs::read_to_string(root().join("docs/openapi.json")).unwrap()).unwrap()
}

#[test]
fn openapi_lists_exactly_the_routes() {
    let doc = openapi();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for method in ops.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let routed: BTreeSet<(String, String)> = table().iter().map(|r| (r.method.to_string(), r.path.to_string())).collect();
    assert_eq!(documented, routed);
}

#[test]
fn openapi_lists_every_error_code() {
    let doc = openapi();
    let listed: BTreeSet<&str> = doc["x-error-codes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let problem_enum: BTreeSet<&str> =
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let codes: BTreeSet<&str> = ApiError::CODES.iter().copied().collect();
    assert_eq!(listed, codes);
    assert_eq!(problem_enum, codes);
    let field_listed: BTreeSet<&str> = doc["x-field-error-codes"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    let field_codes: BTreeSet<&str> = paysession_domain::FieldCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(field_listed, field_codes);
}

#[tokio::test]
async fn served_document_is_the_committed_one() {
    let s = paysession_tests::Server::start().await;
    let served = s.http.get(s.url("/openapi.json")).send().await.unwrap().text().await.unwrap();
    assert_eq!(served, std::fs::read_to_string(root().join("docs/openapi.json")).unwrap());
}

/// Splits template.yaml into its function resources (text between `  XFunction:` lines).
fn function_blocks(template: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in template.lines() {
        let is_resource = line.starts_with("  ") && !line.starts_with("   ") && line.trim_end().ends_with(':');
        if is_resource || line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            blocks.extend(current.take());
            if is_resource && line.trim().ends_with("Function:") {
                current = Some(String::new());
            }
        }
        if let Some(b) = current.as_mut() {
            b.push_str(line);
            b.push('\n');
        }
    }
    blocks.extend(current);
    blocks.retain(|b| b.contains("Type: AWS::Serverless::Function\n"));
    blocks
}

#[test]
fn template_declares_one_function_per_route() {
    let template = std::fs::read_to_string(root().join("template.yaml")).unwrap();
    let blocks = function_blocks(&template);
    let with_function: Vec<_> = table().iter().filter(|r| r.function.is_some()).collect();
    assert_eq!(blocks.len(), with_function.len(), "function resources vs routes with a function");
    for r in &with_function {
        let pkg = r.function.unwrap();
        let block = blocks
            .iter()
            .find(|b| b.contains(&format!("CodeUri: target/lambda/{pkg}/")))
            .unwrap_or_else(|| panic!("template.yaml has no function for {pkg}"));
        assert!(block.contains(&format!("Path: {}\n", r.path)), "{pkg}: path {}", r.path);
        assert!(block.contains(&format!("Method: {}\n", r.method)), "{pkg}: method {}", r.method);
    }
    let packages: BTreeSet<String> = std::fs::read_dir(root().join("functions"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    let routed: BTreeSet<String> = with_function.iter().map(|r| r.function.unwrap().to_string()).collect();
    assert_eq!(packages, routed, "functions/ packages vs route table");
}
