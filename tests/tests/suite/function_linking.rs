//! What each Lambda function binary links. Every `functions/*/src/main.rs` names its one
//! handler, so the linker drops the others; this builds some functions as cargo builds them
//! (the debug profile: the linker discards unreferenced sections in every profile) and reads
//! their symbol tables with `nm`. Sizes of the release builds: `scripts/function-sizes`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const FUNCTIONS: [&str; 6] = ["session-get", "session-create", "hosted-page", "oauth-token", "stream-consumer", "webhook-dispatcher"];

/// Builds the functions' binaries and returns their paths by name.
fn build() -> HashMap<String, PathBuf> {
    paysession_tests::lambda_process::function_binaries(&FUNCTIONS)
}

/// Demangled names of the functions and data a binary defines.
fn symbols(binary: &Path) -> String {
    let out = Command::new("nm").args(["--demangle", "--defined-only"]).arg(binary).output().expect("nm (binutils) is installed");
    assert!(out.status.success(), "nm failed on {}", binary.display());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_links(symbols: &HashMap<&str, String>, function: &str, needle: &str, expected: bool) {
    let found = symbols[function].contains(needle);
    assert_eq!(found, expected, "{function} {} `{needle}`", if expected { "must link" } else { "must not link" });
}

#[test]
fn each_function_links_only_its_own_handler() {
    let paths = build();
    let symbols: HashMap<&str, String> = FUNCTIONS.iter().map(|f| (*f, symbols(&paths[*f]))).collect();

    const PAGE: &str = "paysession_http::page::";
    const OAUTH: &str = "paysession_http::handlers::oauth::";
    const ARGON2: &str = "argon2::";
    const CREATE_RULES: &str = "paysession_domain::create::parse_create_session";
    const CREATE_WRITE: &str = "<paysession_aws::store::DynamoStore as paysession_app::ports::SessionStore>::create_session";

    // Positive controls: the check sees what a function does link.
    assert_links(&symbols, "hosted-page", PAGE, true);
    assert_links(&symbols, "oauth-token", OAUTH, true);
    assert_links(&symbols, "oauth-token", ARGON2, true);
    assert_links(&symbols, "session-create", CREATE_RULES, true);
    assert_links(&symbols, "session-create", CREATE_WRITE, true);

    for event_function in ["stream-consumer", "webhook-dispatcher"] {
        for other in [PAGE, OAUTH, ARGON2, CREATE_RULES, "paysession_http::mount::"] {
            assert_links(&symbols, event_function, other, false);
        }
    }
    for other in [PAGE, OAUTH, ARGON2, CREATE_RULES, CREATE_WRITE, "paysession_http::mount::", "paysession_outbound::"] {
        assert_links(&symbols, "session-get", other, false);
    }
    assert_links(&symbols, "session-create", PAGE, false);
    assert_links(&symbols, "hosted-page", OAUTH, false);
}
