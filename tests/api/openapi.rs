//! The OpenAPI document: committed, equal to what the code builds, and every endpoint it
//! lists is served (and no other).

use conclave_runtime::api::openapi::{document, ENDPOINTS};

use super::{call, ApiRun, Tokens, POLICY};
use crate::golden::root;

#[test]
fn the_committed_document_is_what_the_code_builds() {
    let built = format!("{:#}\n", document());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_conclave"))
        .args(["api", "openapi"])
        .output()
        .expect("conclave runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), built);
    let committed = std::fs::read_to_string(root().join("docs/openapi.json")).unwrap_or_default();
    if std::env::var("CONCLAVE_BLESS").as_deref() == Ok("1") {
        std::fs::write(root().join("docs/openapi.json"), &built).expect("write docs/openapi.json");
        return;
    }
    assert!(committed == built, "docs/openapi.json is stale: run `conclave api openapi > docs/openapi.json` (or CONCLAVE_BLESS=1)");
    // The document names every schema it refers to.
    let prefix = "\"$ref\": \"#/components/schemas/";
    for (at, _) in built.match_indices(prefix) {
        let name: String = built[at + prefix.len()..]
            .chars()
            .take_while(|c| *c != '"')
            .collect();
        assert!(
            document()["components"]["schemas"].get(&name).is_some(),
            "dangling $ref {name}"
        );
    }
}

#[test]
fn every_documented_endpoint_is_served_and_guarded_as_documented() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = Tokens::make(dir.path());
    let run = ApiRun::start(dir.path(), POLICY, &tokens, &[]);
    for e in ENDPOINTS {
        let path = e
            .path
            .replace("{id}", "d-x")
            .replace("{agent}", "scaler")
            .replace("{target}", "checkout");
        let method = e.method.to_uppercase();
        let body = (method != "GET").then_some("{}");
        let (status, _) = call(&run.base, &method, &path, None, body);
        let want = if e.role.is_some() { 401 } else { 200 };
        assert_eq!(status, want, "{method} {path}");
    }
    // A method the document does not list for a path is not served.
    let (status, _) = call(
        &run.base,
        "DELETE",
        "/api/v1/freeze",
        Some(&tokens.admin),
        None,
    );
    assert_eq!(status, 405);
    drop(run);
}
