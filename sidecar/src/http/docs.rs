//! `/openapi.json` and `/docs`, served by the sidecar when `MODELSERVER_DOCS` is true (when it is
//! false these paths are forwarded to the model like any other, so a FastAPI app's own docs work).

use axum::response::{Html, Response};
use http::StatusCode;
use serde_json::{Value, json};

use crate::http::health::{LIVE_PATH, PING_PATH, READY_PATH};
use crate::http::reply::json_response;

/// OpenAPI document path.
pub const OPENAPI_PATH: &str = "/openapi.json";
/// Human-readable docs path.
pub const DOCS_PATH: &str = "/docs";

/// The OpenAPI 3.1 description of the public port.
pub fn openapi() -> Value {
    let error = json!({
        "description": "Refused by the sidecar",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    });
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ModelServer",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Model served through modelserver-sidecar. Paths other than the health \
                            endpoints are forwarded unchanged to the model's workers."
        },
        "components": {
            "schemas": {
                "Error": {"type": "object", "required": ["error"],
                          "properties": {"error": {"type": "string"}}},
                "Ready": {"type": "object", "required": ["ready"],
                          "properties": {"ready": {"type": "boolean"}}}
            },
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "token": {"type": "apiKey", "in": "header", "name": "X-Auth-Token"}
            }
        },
        "paths": {
            PING_PATH: {"get": {"summary": "The sidecar answers", "security": [],
                                "responses": {"200": {"description": "OK"}}}},
            LIVE_PATH: {"get": {"summary": "Liveness", "security": [],
                                "responses": {"200": {"description": "Live"}}}},
            READY_PATH: {"get": {"summary": "Readiness: every worker has loaded its model",
                "security": [],
                "responses": {
                    "200": {"description": "Ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}}},
                    "503": {"description": "Not ready", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Ready"}}}}
                }}},
            "/{path}": {"summary": "Forwarded to the model",
                "parameters": [{"name": "path", "in": "path", "required": true, "schema": {"type": "string"}}],
                "post": {"summary": "Any model endpoint, e.g. /predict", "security": [{"bearer": []}, {"token": []}],
                    "responses": {
                        "200": {"description": "The model's answer"},
                        "401": error.clone(), "413": error.clone(), "502": error.clone(),
                        "503": error.clone(), "504": error
                    }}}
        }
    })
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Response {
    json_response(StatusCode::OK, &openapi())
}

/// `GET /docs`: a small self-contained page listing the endpoints.
pub async fn docs_page() -> Html<String> {
    let spec = openapi();
    let mut rows = String::new();
    if let Some(paths) = spec.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            let Some(ops) = item.as_object() else {
                continue;
            };
            for (method, op) in ops {
                let Some(summary) = op.get("summary").and_then(Value::as_str) else {
                    continue;
                };
                if method == "summary" || method == "parameters" {
                    continue;
                }
                rows.push_str(&format!(
                    "<tr><td>{}</td><td><code>{}</code></td><td>{}</td></tr>",
                    method.to_uppercase(),
                    escape(path),
                    escape(summary)
                ));
            }
        }
    }
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ModelServer API</title></head>\
         <body><h1>ModelServer API</h1><p>Machine-readable: <a href=\"{OPENAPI_PATH}\">{OPENAPI_PATH}</a></p>\
         <table border=\"1\" cellpadding=\"4\"><tr><th>method</th><th>path</th><th>what</th></tr>{rows}</table>\
         </body></html>"
    ))
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
