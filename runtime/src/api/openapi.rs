//! The API's OpenAPI 3.1 document, built from the request and response types themselves
//! (their JSON Schemas) and one table of endpoints, so it cannot drift from the code: a
//! test calls every endpoint listed here, and the committed `docs/openapi.json` must equal
//! what this builds.

use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde_json::{json, Map, Value};

use super::act::{ActResponse, ModeBody, PinBody, ReasonBody, TimedBody};
use super::read::OverridesResponse;
use crate::decision::Decision;
use crate::overrides::{AgentView, OperatorView, PendingApproval, Role};

/// One endpoint.
#[derive(Debug, Clone, Copy)]
pub struct Endpoint {
    /// `get`, `post` or `put`.
    pub method: &'static str,
    /// The path, with `{param}`s.
    pub path: &'static str,
    /// The least role that may call it; `None` for public endpoints.
    pub role: Option<Role>,
    /// What it does.
    pub summary: &'static str,
}

const fn ep(
    method: &'static str,
    path: &'static str,
    role: Option<Role>,
    summary: &'static str,
) -> Endpoint {
    Endpoint {
        method,
        path,
        role,
        summary,
    }
}

const V: Option<Role> = Some(Role::Viewer);
const O: Option<Role> = Some(Role::Operator);

/// Every endpoint the router serves.
pub const ENDPOINTS: &[Endpoint] = &[
    ep("get", "/", None, "The operator console (HTML)."),
    ep("get", "/healthz", None, "Liveness: the process answers."),
    ep(
        "get",
        "/readyz",
        None,
        "Readiness: the runtime is deciding.",
    ),
    ep(
        "get",
        "/metrics",
        None,
        "The runtime's metrics, Prometheus text format 0.0.4 (see the README, Metrics).",
    ),
    ep("get", "/api/v1/openapi.json", None, "This document."),
    ep(
        "get",
        "/api/v1/view",
        V,
        "Agents, pending approvals and overrides in force, at once.",
    ),
    ep("get", "/api/v1/agents", V, "Agents and their modes."),
    ep(
        "get",
        "/api/v1/approvals",
        V,
        "Decisions waiting for a human.",
    ),
    ep("get", "/api/v1/overrides", V, "Overrides in force."),
    ep(
        "get",
        "/api/v1/decisions",
        V,
        "Recent decisions, filtered by target, agent and outcome.",
    ),
    ep(
        "get",
        "/api/v1/decisions/stream",
        V,
        "Decisions as they are made (server-sent events).",
    ),
    ep(
        "get",
        "/api/v1/decisions/{id}",
        V,
        "Every recent record of one decision.",
    ),
    ep(
        "post",
        "/api/v1/decisions/{id}/approve",
        O,
        "Approve a pending decision (the approval rule says who may).",
    ),
    ep(
        "post",
        "/api/v1/decisions/{id}/deny",
        O,
        "Deny a pending decision (the approval rule says who may).",
    ),
    ep(
        "post",
        "/api/v1/decisions/{id}/veto",
        O,
        "Veto a pending decision.",
    ),
    ep(
        "post",
        "/api/v1/freeze",
        O,
        "Freeze: nothing is enacted until unfrozen or the expiry.",
    ),
    ep("post", "/api/v1/unfreeze", O, "Lift the freeze."),
    ep(
        "post",
        "/api/v1/agents/{agent}/pause",
        O,
        "Pause an agent: its proposals are overridden.",
    ),
    ep(
        "post",
        "/api/v1/agents/{agent}/resume",
        O,
        "Resume a paused agent.",
    ),
    ep(
        "put",
        "/api/v1/agents/{agent}/mode",
        Some(Role::Admin),
        "Set an agent's mode above the policy's.",
    ),
    ep(
        "post",
        "/api/v1/targets/{target}/pin",
        O,
        "Hold a target at a number of replicas.",
    ),
    ep("post", "/api/v1/targets/{target}/unpin", O, "Lift a pin."),
];

fn schema<T: JsonSchema>(g: &mut SchemaGenerator) -> Value {
    let s: Schema = g.subschema_for::<T>();
    s.to_value()
}

fn request_body(path: &str, method: &str, g: &mut SchemaGenerator) -> Option<Value> {
    let s = match (method, path.rsplit('/').next().unwrap_or("")) {
        ("post", "freeze" | "pause") => schema::<TimedBody>(g),
        ("post", "pin") => schema::<PinBody>(g),
        ("put", "mode") => schema::<ModeBody>(g),
        ("post", _) => schema::<ReasonBody>(g),
        _ => return None,
    };
    Some(json!({ "required": true, "content": { "application/json": { "schema": s } } }))
}

fn ok_response(e: &Endpoint, g: &mut SchemaGenerator) -> Value {
    let json_of = |s: Value| json!({ "application/json": { "schema": s } });
    let (description, content) = match (e.method, e.path) {
        ("get", "/") => ("The console page.", json!({ "text/html": { "schema": { "type": "string" } } })),
        ("get", "/healthz" | "/readyz") => ("OK.", json!({ "text/plain": { "schema": { "type": "string" } } })),
        ("get", "/metrics") => ("Every metric, with HELP and TYPE lines.", json!({ "text/plain; version=0.0.4": { "schema": { "type": "string" } } })),
        ("get", "/api/v1/openapi.json") => ("This document.", json_of(json!({ "type": "object" }))),
        ("get", "/api/v1/view") => ("The view.", json_of(schema::<OperatorView>(g))),
        ("get", "/api/v1/agents") => ("The agents.", json_of(schema::<Vec<AgentView>>(g))),
        ("get", "/api/v1/approvals") => ("Pending approvals, oldest deadline first.", json_of(schema::<Vec<PendingApproval>>(g))),
        ("get", "/api/v1/overrides") => ("Overrides in force.", json_of(schema::<OverridesResponse>(g))),
        ("get", "/api/v1/decisions/stream") => (
            "`decision` events whose data is a Decision (JSON); `lagged` events when the reader fell behind.",
            json!({ "text/event-stream": { "schema": { "type": "string" } } }),
        ),
        ("get", _) => ("Decisions, oldest first.", json_of(schema::<Vec<Decision>>(g))),
        _ => ("The override as audited and the decisions it produced.", json_of(schema::<ActResponse>(g))),
    };
    json!({ "description": description, "content": content })
}

fn error_responses(e: &Endpoint) -> Map<String, Value> {
    let err = json!({ "$ref": "#/components/schemas/Error" });
    let mut r = Map::new();
    let mut add = |code: &str, why: &str| {
        r.insert(
            code.into(),
            json!({ "description": why, "content": { "application/json": { "schema": err.clone() } } }),
        );
    };
    if e.role.is_some() {
        add("401", "No token, or not a valid one.");
    }
    if e.method != "get" {
        add("400", "Malformed JSON, a missing reason, an unknown agent, a pin out of bounds or an expiry in the past; the message says which.");
        add(
            "403",
            "The caller's role may not do this, or may not answer this approval.",
        );
        add("413", "The body is larger than 16 KiB.");
        add(
            "503",
            "The runtime is stopping, or the override could not be saved.",
        );
    }
    if e.path.contains("{id}") {
        add("404", "No such (pending) decision.");
    }
    if e.path == "/readyz" {
        add("503", "The runtime is not deciding.");
    }
    r
}

fn parameters(e: &Endpoint) -> Vec<Value> {
    let mut p: Vec<Value> = ["id", "agent", "target"]
        .iter()
        .filter(|n| e.path.contains(&format!("{{{n}}}")))
        .map(|n| json!({ "name": n, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    if e.path == "/api/v1/decisions" {
        for (n, t, d) in [
            ("target", "string", "Only decisions about this target."),
            ("agent", "string", "Only this agent's decisions."),
            ("outcome", "string", "Only this outcome (enacted, modified, shadowed, advised, rejected, pending, overridden)."),
            ("limit", "integer", "At most this many, newest (default 100)."),
        ] {
            p.push(json!({ "name": n, "in": "query", "required": false, "description": d, "schema": { "type": t } }));
        }
    }
    p
}

/// The document.
pub fn document() -> Value {
    let mut g = SchemaSettings::draft2020_12()
        .with(|s| {
            s.definitions_path = "/components/schemas".into();
            s.meta_schema = None;
        })
        .into_generator();
    let mut paths = Map::new();
    for e in ENDPOINTS {
        let mut op = Map::new();
        op.insert("summary".into(), e.summary.into());
        let role = e.role.map_or("none (public)", Role::as_str);
        op.insert("description".into(), format!("Least role: {role}.").into());
        if e.role.is_some() {
            op.insert("security".into(), json!([{ "bearer": [] }]));
        } else {
            op.insert("security".into(), json!([]));
        }
        let params = parameters(e);
        if !params.is_empty() {
            op.insert("parameters".into(), Value::Array(params));
        }
        if let Some(body) = request_body(e.path, e.method, &mut g) {
            op.insert("requestBody".into(), body);
        }
        let mut responses = Map::new();
        responses.insert("200".into(), ok_response(e, &mut g));
        if e.method == "post" && e.path.contains("{id}/") {
            let mut accepted = ok_response(e, &mut g);
            accepted["description"] = "Not pending here but, with several instances, possibly on another: forwarded to them on the control topic (`fleet` says so); its owner settles it.".into();
            responses.insert("202".into(), accepted);
        }
        responses.extend(error_responses(e));
        op.insert("responses".into(), Value::Object(responses));
        let entry = paths
            .entry(e.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(e.method.into(), Value::Object(op));
        }
    }
    let mut schemas = g.take_definitions(true);
    schemas.insert(
        "Error".into(),
        json!({ "type": "object", "required": ["error"], "properties": { "error": { "type": "string", "description": "What is wrong." } } }),
    );
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Conclave operator API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "See agents, decisions, pending approvals and overrides; freeze, pause, pin, set modes, approve, deny and veto. Every act needs a reason and is audited.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer", "description": "`conclave_<id>_<secret>`, made by `conclave api token`." } },
        },
    })
}
