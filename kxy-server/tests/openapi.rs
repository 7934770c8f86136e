//! The OpenAPI document against the route inventory: every route is
//! described and nothing else is; every operation has a unique id, a
//! summary, described answers and the security its access calls for.
//!
//! A new route fails here until its handler is annotated and listed in
//! `openapi::ApiDoc` (see the module doc of `kxy_server::openapi`).

use std::collections::{BTreeMap, BTreeSet};

use kxy_server::openapi;
use kxy_server::routes::{Access, inventory};
use serde_json::{Value, json};

const METHODS: [&str; 7] = ["get", "put", "post", "delete", "options", "head", "patch"];

fn document() -> Value {
    serde_json::to_value(openapi::document()).expect("the document serializes")
}

/// Every operation of the document: (METHOD, path) → operation.
fn operations(doc: &Value) -> BTreeMap<(String, String), Value> {
    let mut found = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if let Some(operation) = item.get(method) {
                found.insert((method.to_uppercase(), path.clone()), operation.clone());
            }
        }
    }
    found
}

/// What `#/components/...` a `$ref` names, looked up in the document.
fn resolve<'d>(doc: &'d Value, reference: &str) -> Option<&'d Value> {
    let pointer = reference.strip_prefix('#')?;
    doc.pointer(pointer)
}

#[test]
fn every_route_is_described_and_nothing_else() {
    let doc = document();
    let described: BTreeSet<(String, String)> = operations(&doc).into_keys().collect();
    let served: BTreeSet<(String, String)> = inventory()
        .iter()
        .map(|r| (r.method.to_string(), r.path.to_owned()))
        .collect();
    let undescribed: Vec<String> = served
        .difference(&described)
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        undescribed.is_empty(),
        "routes in routes::inventory() that the OpenAPI document does not describe: \
         {undescribed:?}; give each handler a #[utoipa::path] and list it in \
         openapi::ApiDoc (see the module doc of kxy_server::openapi)"
    );
    let unserved: Vec<String> = described
        .difference(&served)
        .map(|(m, p)| format!("{m} {p}"))
        .collect();
    assert!(
        unserved.is_empty(),
        "operations in the OpenAPI document that routes::inventory() does not serve: \
         {unserved:?}; the annotation's method or path differs from the inventory's"
    );
    assert_eq!(
        described.len(),
        inventory().len(),
        "a route is listed twice"
    );
}

#[test]
fn operations_have_unique_ids_summaries_and_described_answers() {
    let doc = document();
    let mut ids: BTreeMap<String, String> = BTreeMap::new();
    for ((method, path), operation) in operations(&doc) {
        let route = format!("{method} {path}");
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{route} has no operationId"));
        if let Some(other) = ids.insert(id.to_owned(), route.clone()) {
            panic!("{route} and {other} share the operationId {id:?}");
        }
        let summary = operation["summary"].as_str().unwrap_or("");
        assert!(
            !summary.trim().is_empty(),
            "{route} has no summary: give its handler a doc comment"
        );
        assert!(
            operation["tags"].as_array().is_some_and(|t| t.len() == 1),
            "{route} has no tag"
        );
        let responses = operation["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{route} has no responses"));
        assert!(responses.contains_key("200"), "{route} has no 200 answer");
        for (status, response) in responses {
            let response = match response["$ref"].as_str() {
                Some(reference) => resolve(&doc, reference)
                    .unwrap_or_else(|| panic!("{route} {status}: {reference} does not exist")),
                None => response,
            };
            let description = response["description"].as_str().unwrap_or("");
            assert!(
                !description.trim().is_empty(),
                "{route}: answer {status} has no description"
            );
            // Every answer is an envelope: a success's typed one, a
            // refusal's ErrorEnvelope (or, for /health and initialize, an
            // envelope that explains the failure in `data`).
            let schema = response["content"]["application/json"]["schema"]["$ref"]
                .as_str()
                .unwrap_or_else(|| panic!("{route}: answer {status} names no JSON schema"));
            let name = schema.rsplit('/').next().unwrap();
            if status == "200" {
                assert!(
                    name.starts_with("Envelope_"),
                    "{route}: its 200 answer is {name}, not an envelope"
                );
            } else {
                assert!(
                    name == "ErrorEnvelope" || name.starts_with("Envelope_"),
                    "{route}: answer {status} is {name}, not an envelope"
                );
            }
            assert!(
                resolve(&doc, schema).is_some(),
                "{route}: answer {status} names {schema}, which does not exist"
            );
        }
        // Every `{param}` of the path is declared as a path parameter.
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .map(|ps| {
                ps.iter()
                    .filter(|p| p["in"] == "path")
                    .filter_map(|p| p["name"].as_str())
                    .collect()
            })
            .unwrap_or_default();
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_path, "{route}: path parameters");
    }
}

#[test]
fn security_follows_each_routes_access() {
    let doc = document();
    let operations = operations(&doc);
    let logged_in = json!([{"bearer": []}, {"api_key": [], "api_secret": []}]);
    for route in inventory() {
        let key = (route.method.to_string(), route.path.to_owned());
        let name = format!("{} {}", key.0, key.1);
        let Some(operation) = operations.get(&key) else {
            continue; // every_route_is_described_and_nothing_else names it
        };
        let security = &operation["security"];
        let description = operation["description"].as_str().unwrap_or("");
        match route.access {
            Access::Public => {
                assert!(
                    security.is_null() || security == &json!([]),
                    "{name} is public but asks for {security}"
                );
                assert!(description.contains("Public"), "{name}: {description}");
            }
            Access::LoggedIn => {
                assert_eq!(security, &logged_in, "{name}");
                assert!(description.contains("logged-in"), "{name}: {description}");
            }
            Access::Own(permission) | Access::Permission(permission) => {
                assert_eq!(security, &logged_in, "{name}");
                assert!(
                    description.contains(&format!("permission `{permission}`")),
                    "{name} does not name its permission {permission}: {description}"
                );
            }
            Access::Allocation => {
                let requirements = security.as_array().expect("allocation has security");
                assert!(
                    requirements.contains(&json!({})),
                    "{name}: allocation is public by default, so no credentials must be one \
                     alternative: {security}"
                );
                assert!(
                    requirements.contains(&json!({"api_key": [], "api_secret": []})),
                    "{name}: {security}"
                );
                assert!(
                    description.contains("--allocation-requires-key")
                        && description.contains(kxy_server::routes::ALLOCATE),
                    "{name}: {description}"
                );
            }
        }
        if route.access != Access::Public {
            let responses = &operation["responses"];
            for status in ["401", "403"] {
                assert!(
                    responses.get(status).is_some(),
                    "{name} is guarded but has no {status} answer"
                );
            }
        }
    }
}

#[test]
fn the_document_is_openapi_3_1_with_both_security_schemes() {
    let doc = document();
    let version = doc["openapi"].as_str().unwrap();
    assert!(version.starts_with("3.1."), "{version}");
    assert_eq!(doc["info"]["title"], "kxy");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["info"]["license"]["identifier"], "MIT");
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["bearer"]["type"], "http");
    assert_eq!(schemes["bearer"]["scheme"], "bearer");
    for (scheme, header) in [("api_key", "X-API-Key"), ("api_secret", "X-API-Secret")] {
        assert_eq!(schemes[scheme]["type"], "apiKey", "{scheme}");
        assert_eq!(schemes[scheme]["in"], "header", "{scheme}");
        assert_eq!(schemes[scheme]["name"], header, "{scheme}");
    }
    // The envelope codes are tabled in the description.
    let description = doc["info"]["description"].as_str().unwrap();
    for code in ["| 40001 |", "| 40301 |", "| 42901 |", "| 50307 |"] {
        assert!(description.contains(code), "{code}");
    }
    // The served bytes are this document.
    let served: Value = serde_json::from_slice(openapi::json()).unwrap();
    assert_eq!(served, doc);
}

/// Every `$ref` anywhere in the document points at something in it.
#[test]
fn every_reference_resolves() {
    fn walk<'v>(value: &'v Value, refs: &mut Vec<&'v str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(refs.len() > 100, "{}", refs.len());
    for reference in refs {
        assert!(
            resolve(&doc, reference).is_some(),
            "{reference} does not resolve"
        );
    }
}
