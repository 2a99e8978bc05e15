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
    let problem_enum: BTreeSet<&str> = doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
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

fn template() -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(root().join("template.yaml")).unwrap()).unwrap()
}

fn resources_of_type<'a>(t: &'a serde_yaml::Value, kind: &str) -> Vec<(&'a str, &'a serde_yaml::Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str() == Some(kind))
        .map(|(k, r)| (k.as_str().unwrap(), r))
        .collect()
}

/// A value as YAML text (intrinsic functions stay tags: `!GetAtt X.Arn`).
fn yaml(v: &serde_yaml::Value) -> String {
    serde_yaml::to_string(v).unwrap().trim().to_string()
}

fn strs(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence().map(|s| s.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default()
}

#[test]
fn template_declares_every_routed_function() {
    let t = template();
    let functions = resources_of_type(&t, "AWS::Serverless::Function");
    let packages_routed: BTreeSet<&str> = table().iter().filter_map(|r| r.function).collect();
    let event_packages: BTreeSet<&str> = paysession_runtime::EVENT_FUNCTIONS.into_iter().collect();
    assert_eq!(functions.len(), packages_routed.len() + event_packages.len(), "one function resource per functions/ package");
    for r in table().iter().filter(|r| r.function.is_some()) {
        let pkg = r.function.unwrap();
        let (_, f) = functions
            .iter()
            .find(|(_, f)| f["Properties"]["CodeUri"].as_str() == Some(&format!("target/lambda/{pkg}/")))
            .unwrap_or_else(|| panic!("template.yaml has no function for {pkg}"));
        let events = f["Properties"]["Events"].as_mapping().unwrap();
        let routed = events
            .values()
            .any(|e| e["Properties"]["Path"].as_str() == Some(r.path) && e["Properties"]["Method"].as_str() == Some(r.method.as_str()));
        assert!(routed, "{pkg} has no event for {} {}", r.method, r.path);
    }
    let packages: BTreeSet<String> =
        std::fs::read_dir(root().join("functions")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    let declared: BTreeSet<String> = packages_routed.iter().chain(&event_packages).map(|s| s.to_string()).collect();
    assert_eq!(packages, declared, "functions/ packages vs route table and event functions");
}

/// Every function logs as `lambda.rs` expects Lambda to configure it: JSON lines, the
/// application level from `LoggingConfig` (not a RUST_LOG a function could drift from).
#[test]
fn template_configures_every_functions_logging() {
    let t = template();
    let logging = &t["Globals"]["Function"]["LoggingConfig"];
    assert_eq!(logging["LogFormat"].as_str(), Some("JSON"), "{logging:?}");
    assert!(["WARN", "INFO", "ERROR"].contains(&logging["ApplicationLogLevel"].as_str().unwrap_or_default()), "{logging:?}");
    assert!(t["Globals"]["Function"]["Environment"]["Variables"].get("RUST_LOG").is_none(), "AWS_LAMBDA_LOG_LEVEL sets the level");
    for (name, f) in resources_of_type(&t, "AWS::Serverless::Function") {
        let own = &f["Properties"]["LoggingConfig"];
        assert!(own.is_null() || own["LogFormat"].as_str() == Some("JSON"), "{name} logs in another format: {own:?}");
        assert!(f["Properties"]["Environment"]["Variables"].get("RUST_LOG").is_none(), "{name} sets RUST_LOG");
    }
}

fn function<'a>(t: &'a serde_yaml::Value, package: &str) -> &'a serde_yaml::Value {
    resources_of_type(t, "AWS::Serverless::Function")
        .into_iter()
        .find(|(_, f)| f["Properties"]["CodeUri"].as_str() == Some(&format!("target/lambda/{package}/")))
        .unwrap_or_else(|| panic!("template.yaml has no function for {package}"))
        .1
}

#[test]
fn template_wires_the_event_functions() {
    let t = template();
    let consumer = function(&t, "stream-consumer");
    let stream =
        consumer["Properties"]["Events"].as_mapping().unwrap().values().find(|e| e["Type"] == "DynamoDB").expect("a stream event source");
    assert_eq!(strs(&stream["Properties"]["FunctionResponseTypes"]), ["ReportBatchItemFailures"]);
    let patterns: Vec<serde_json::Value> = stream["Properties"]["FilterCriteria"]["Filters"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|f| serde_json::from_str(f["Pattern"].as_str().unwrap()).unwrap())
        .collect();
    let expiry = patterns.iter().find(|p| p["eventName"][0] == "REMOVE").expect("an expiry filter");
    assert_eq!(expiry["userIdentity"]["principalId"][0], paysession_aws::stream::TTL_PRINCIPAL);
    assert_eq!(expiry["dynamodb"]["Keys"]["SK"]["S"][0], paysession_aws::keys::EXPIRY_SK);
    let outbox = patterns.iter().find(|p| p["eventName"][0] == "INSERT").expect("an outbox filter");
    assert_eq!(outbox["dynamodb"]["Keys"]["SK"]["S"][0]["prefix"], paysession_aws::keys::EVENT_SK_PREFIX);

    let dispatcher = function(&t, "webhook-dispatcher");
    let sqs = dispatcher["Properties"]["Events"].as_mapping().unwrap().values().find(|e| e["Type"] == "SQS").expect("an SQS event source");
    assert_eq!(strs(&sqs["Properties"]["FunctionResponseTypes"]), ["ReportBatchItemFailures"]);
    let timeout = dispatcher["Properties"]["Timeout"].as_u64().unwrap();
    assert!(timeout > paysession_domain::webhook::ATTEMPT_TIMEOUT_SECONDS, "an attempt must fit in one invocation");
    let queue = &t["Resources"]["WebhookQueue"]["Properties"];
    assert!(queue["VisibilityTimeout"].as_u64().unwrap() >= 6 * timeout, "visibility ≥ 6× the function timeout");
    assert!(!queue["RedrivePolicy"]["deadLetterTargetArn"].is_null(), "the queue redrives to a dead-letter queue");
    let alarm = &t["Resources"]["WebhookDeadLetterAlarm"]["Properties"];
    assert_eq!(alarm["MetricName"].as_str(), Some("ApproximateNumberOfMessagesVisible"));

    // Recurring charges: written mandates reach the consumer, which may manage schedules in
    // the stack's group and pass only the scheduler's role, which may invoke only the
    // recurring-charge function; what never succeeds is dead-lettered and alarmed.
    let mandates =
        patterns.iter().find(|p| p["dynamodb"]["Keys"]["SK"]["S"][0] == paysession_aws::keys::MANDATE_SK).expect("a mandate filter");
    assert_eq!(mandates["eventName"], serde_json::json!(["INSERT", "MODIFY"]));
    let env = &consumer["Properties"]["Environment"]["Variables"];
    for var in paysession_aws::scheduler::ScheduleTarget::ENV {
        assert!(!env[var].is_null(), "stream-consumer lacks {var}");
    }
    let statements: Vec<&serde_yaml::Value> = consumer["Properties"]["Policies"][0]["Statement"].as_sequence().unwrap().iter().collect();
    let pass = statements.iter().find(|s| strs(&s["Action"]) == ["iam:PassRole"]).expect("iam:PassRole for the scheduler role");
    assert_eq!(yaml(&pass["Resource"]), "!GetAtt SchedulerRole.Arn");
    assert_eq!(pass["Condition"]["StringEquals"]["iam:PassedToService"].as_str(), Some("scheduler.amazonaws.com"));
    let role = &t["Resources"]["SchedulerRole"]["Properties"];
    let trust = &role["AssumeRolePolicyDocument"]["Statement"][0];
    assert_eq!(trust["Principal"]["Service"].as_str(), Some("scheduler.amazonaws.com"));
    let allowed: Vec<(Vec<String>, &serde_yaml::Value)> = role["Policies"][0]["PolicyDocument"]["Statement"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|s| (strs(&s["Action"]), &s["Resource"]))
        .collect();
    assert_eq!(allowed.len(), 2, "invoke the target, dead-letter: nothing else");
    assert_eq!(allowed[0].0, ["lambda:InvokeFunction"]);
    let targets: Vec<String> = allowed[0].1.as_sequence().unwrap().iter().map(yaml).collect();
    assert_eq!(targets, ["!GetAtt RecurringChargeFunction.Arn", "!GetAtt ProcessorSyncFunction.Arn"]);
    assert_eq!(allowed[1].0, ["sqs:SendMessage"]);
    let _ = function(&t, "recurring-charge");
    let _ = function(&t, "processor-sync");
    // Which records reach it: `the_stream_filters_pass_what_the_consumer_acts_on`.

    // The optional bus: configured by a parameter, put on by that bus's ARN only.
    assert_eq!(yaml(&env[paysession_aws::bus::ENV]), "!Ref EventBusName");
    assert_eq!(t["Parameters"]["EventBusName"]["Default"].as_str(), Some(""));
    let put = statements.iter().find(|s| strs(&s["Action"]) == ["events:PutEvents"]).expect("events:PutEvents for the bus");
    assert!(yaml(&put["Resource"]).contains(":event-bus/${EventBusName}"), "only the configured bus: {}", yaml(&put["Resource"]));
    assert_eq!(statements.iter().filter(|s| strs(&s["Action"]).iter().any(|a| a.starts_with("events:"))).count(), 1);
    let alarm = &t["Resources"]["ScheduleDeadLetterAlarm"]["Properties"];
    assert_eq!(yaml(&alarm["Dimensions"][0]["Value"]), "!GetAtt ScheduleDeadLetterQueue.QueueName");
}

#[test]
fn template_policies_are_least_privilege() {
    let t = template();
    for (name, f) in resources_of_type(&t, "AWS::Serverless::Function") {
        let policies = f["Properties"]["Policies"].as_sequence().unwrap_or_else(|| panic!("{name} has no policy"));
        for p in policies {
            assert!(p.is_mapping(), "{name}: inline statements only, no managed or template policies");
            for st in p["Statement"].as_sequence().unwrap() {
                for action in strs(&st["Action"]) {
                    assert!(!action.contains('*'), "{name}: wildcard action {action}");
                    assert!(
                        !["dynamodb:Scan", "dynamodb:DeleteTable", "dynamodb:BatchWriteItem"].contains(&action.as_str()),
                        "{name}: {action}"
                    );
                }
                assert_ne!(st["Resource"].as_str(), Some("*"), "{name}: wildcard resource");
            }
        }
    }
}

/// (index name, key schema, projection)
type IndexShape = (String, Vec<(String, String)>, String);

/// The table in template.yaml is the one `paysession-admin init` creates.
#[test]
fn template_table_matches_the_code() {
    use paysession_aws::{keys, table};
    let t = template();
    let tables = resources_of_type(&t, "AWS::DynamoDB::Table");
    assert_eq!(tables.len(), 1, "single-table design");
    let p = &tables[0].1["Properties"];
    assert_eq!(p["BillingMode"].as_str(), Some("PAY_PER_REQUEST"));
    let attrs: BTreeSet<(String, String)> = p["AttributeDefinitions"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| (a["AttributeName"].as_str().unwrap().into(), a["AttributeType"].as_str().unwrap().into()))
        .collect();
    let expected: BTreeSet<(String, String)> = table::KEY_ATTRIBUTES.iter().map(|a| (a.to_string(), "S".to_string())).collect();
    assert_eq!(attrs, expected);
    let key = |v: &serde_yaml::Value| -> Vec<(String, String)> {
        v.as_sequence()
            .unwrap()
            .iter()
            .map(|k| (k["AttributeName"].as_str().unwrap().into(), k["KeyType"].as_str().unwrap().into()))
            .collect()
    };
    assert_eq!(key(&p["KeySchema"]), [(keys::PK.to_string(), "HASH".to_string()), (keys::SK.to_string(), "RANGE".to_string())]);
    let gsis: Vec<IndexShape> = p["GlobalSecondaryIndexes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|g| {
            (g["IndexName"].as_str().unwrap().into(), key(&g["KeySchema"]), g["Projection"]["ProjectionType"].as_str().unwrap().into())
        })
        .collect();
    let (keys_only, keys_only_pk) = table::KEYS_ONLY_INDEX;
    let expected: Vec<IndexShape> = table::INDEXES
        .iter()
        .map(|(n, pk, sk)| (n.to_string(), vec![(pk.to_string(), "HASH".into()), (sk.to_string(), "RANGE".into())], "ALL".into()))
        .chain([(keys_only.to_string(), vec![(keys_only_pk.to_string(), "HASH".into())], "KEYS_ONLY".into())])
        .collect();
    assert_eq!(gsis, expected);
    assert_eq!(p["TimeToLiveSpecification"]["AttributeName"].as_str(), Some(keys::TTL));
    assert_eq!(p["TimeToLiveSpecification"]["Enabled"].as_bool(), Some(true));
    assert_eq!(p["StreamSpecification"]["StreamViewType"].as_str(), Some("NEW_AND_OLD_IMAGES"));
    assert_eq!(p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(), Some(true));
}

/// The "Where each rule lives" table of docs/ARCHITECTURE.md: every file exists and defines
/// the item the table names, so a newcomer following it lands on the rule.
#[test]
fn architecture_rule_table_points_at_real_definitions() {
    let doc = std::fs::read_to_string(root().join("docs/ARCHITECTURE.md")).unwrap();
    let section = doc.split("## Where each rule lives").nth(1).expect("the section exists");
    let section = section.split("\n## ").next().unwrap();
    let mut rows = 0;
    for line in section.lines().filter(|l| l.starts_with("| ") && l.contains('`')) {
        let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
        let [rule, file, item] = cells[..] else { panic!("row must have three cells: {line}") };
        let (file, item) = (file.trim_matches('`'), item.trim_matches('`'));
        let text = std::fs::read_to_string(root().join(file)).unwrap_or_else(|e| panic!("{rule}: {file}: {e}"));
        let defines = ["fn ", "const ", "static ", "struct ", "enum ", "trait ", "type ", "EXISTS "]
            .iter()
            .any(|kw| text.contains(&format!("{kw}{item}")))
            || text.lines().map(str::trim_start).any(|l| [",", " {", "(", " =>"].iter().any(|end| l.starts_with(&format!("{item}{end}"))));
        assert!(defines, "{rule}: {file} does not define `{item}`");
        rows += 1;
    }
    assert!(rows >= 11, "the table lists at least the eleven rules the issue named, found {rows}");
    for named in [
        "amount bounds",
        "currency exponents",
        "reference uniqueness",
        "idempotency replay",
        "lifecycle table",
        "strict / loose expiry",
        "OTP",
        "CSP",
        "webhook retry schedule",
        "SSRF",
        "access-token lifetime",
    ] {
        assert!(section.contains(named), "the table has no row for {named}");
    }
}

/// No import circles between the top-level modules of any crate: `use crate::x` (outside
/// comments and test modules) is an arrow, and the arrows form no cycle.
#[test]
fn no_module_imports_another_that_imports_it_back() {
    fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                rust_files(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let crates = ["shared/domain", "shared/app", "shared/http", "shared/embedded", "shared/aws", "shared/outbound", "shared/runtime"];
    for krate in crates.into_iter().chain(["infra/local", "infra/admin"]) {
        let src = root().join(krate).join("src");
        let mut files = Vec::new();
        rust_files(&src, &mut files);
        let mut edges: std::collections::BTreeMap<String, BTreeSet<String>> = Default::default();
        for f in files {
            let rel = f.strip_prefix(&src).unwrap();
            let module = rel.iter().next().unwrap().to_string_lossy().trim_end_matches(".rs").to_string();
            if module == "lib" || module == "main" {
                continue;
            }
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for part in line.split("crate::").skip(1) {
                    let target: String = part.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
                    if !target.is_empty() && target != module {
                        edges.entry(module.clone()).or_default().insert(target);
                    }
                }
            }
        }
        for (from, tos) in &edges {
            for to in tos {
                // Is `from` reachable from `to`?
                let mut seen = BTreeSet::new();
                let mut stack = vec![to.clone()];
                while let Some(m) = stack.pop() {
                    for next in edges.get(&m).into_iter().flatten() {
                        if seen.insert(next.clone()) {
                            stack.push(next.clone());
                        }
                    }
                }
                assert!(!seen.contains(from), "{krate}: {from} imports {to}, which imports {from} back");
            }
        }
    }
}

/// The stream consumer's filters (template.yaml) let through exactly the records it acts
/// on, within Lambda's default quota of five filters per event source mapping.
#[test]
fn the_stream_filters_pass_what_the_consumer_acts_on() {
    use paysession_tests::aws::{passes, stream_filters};
    let filters = stream_filters();
    assert!(filters.len() <= 5, "{} filters: Lambda's default quota is 5", filters.len());
    let ttl = serde_json::json!({"type": "Service", "principalId": paysession_aws::stream::TTL_PRINCIPAL});
    let record = |name: &str, sk: &str, new: serde_json::Value, old: serde_json::Value, identity: Option<&serde_json::Value>| {
        let mut r = serde_json::json!({"eventName": name, "dynamodb": {"Keys": {"PK": {"S": "MER#m#SES#k"}, "SK": {"S": sk}}, "NewImage": new, "OldImage": old}});
        if let Some(i) = identity {
            r["userIdentity"] = i.clone();
        }
        r
    };
    let (none, due) = (serde_json::json!({}), serde_json::json!({"sync_ms": {"N": "1"}}));
    let cases = [
        ("an event", record("INSERT", "EVT#0000000001#000", none.clone(), none.clone(), None), true),
        ("an event rewritten", record("MODIFY", "EVT#0000000001#000", none.clone(), none.clone(), None), false),
        ("a delivery", record("INSERT", "DLV", none.clone(), none.clone(), None), false),
        ("a session owing a sync", record("MODIFY", "SESSION", due.clone(), none.clone(), None), true),
        ("a session created owing one", record("INSERT", "SESSION", due.clone(), none.clone(), None), true),
        ("a session answering its sync", record("MODIFY", "SESSION", none.clone(), due.clone(), None), true),
        ("a session owing none", record("MODIFY", "SESSION", none.clone(), none.clone(), None), false),
        ("a refund owing a sync", record("INSERT", "RE#re_1", due.clone(), none.clone(), None), true),
        ("a refund answering its sync", record("MODIFY", "RE#re_1", none.clone(), due.clone(), None), true),
        ("a refund owing none", record("MODIFY", "RE#re_1", none.clone(), none.clone(), None), false),
        ("an expiry deleted by TTL", record("REMOVE", "EXPIRY", none.clone(), none.clone(), Some(&ttl)), true),
        ("an expiry deleted by hand", record("REMOVE", "EXPIRY", none.clone(), none.clone(), None), false),
        ("an authorisation deleted by TTL", record("REMOVE", "AUTH#pay_1", none.clone(), none.clone(), Some(&ttl)), true),
        ("a mandate written", record("INSERT", "MANDATE", none.clone(), none.clone(), None), true),
        ("an idempotency record", record("INSERT", "IDEM", none.clone(), none.clone(), None), false),
    ];
    for (what, r, expected) in cases {
        assert_eq!(passes(filters, &r), expected, "{what}");
    }
}
