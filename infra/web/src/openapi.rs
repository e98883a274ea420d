//! The OpenAPI 3 document, generated from the routing tables: each API crate builds its router
//! from a list of [`Endpoint`]s (path, methods, parameters, reply type), and [`document`] turns the
//! same list into `/openapi.json`, with the reply schemas derived from the reply types (schemars).
//! A route cannot exist without being documented, nor be documented without existing.

use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::schema::Schema;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::http::{Empty, Envelope};

/// How a parameter is typed.
#[derive(Debug, Clone, Copy)]
pub enum Kind {
    /// An int64 (also accepted as an integral float such as `1.68e+09`).
    Integer,
    Text,
    /// A file (multipart only).
    File,
}

/// One request parameter (query string, form body, or multipart field).
#[derive(Debug, Clone, Copy)]
pub struct Param {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub description: &'static str,
}

/// A required parameter.
pub const fn req(name: &'static str, kind: Kind, description: &'static str) -> Param {
    Param {
        name,
        kind,
        required: true,
        description,
    }
}

/// An optional parameter.
pub const fn opt(name: &'static str, kind: Kind, description: &'static str) -> Param {
    Param {
        name,
        kind,
        required: false,
        description,
    }
}

/// The token parameter most endpoints take.
pub const TOKEN: Param = req("token", Kind::Text, "token from register or login");

/// The idempotency key of a command (also accepted as the `Idempotency-Key` header).
pub const IDEMPOTENCY_KEY: Param = opt(
    "idempotency_key",
    Kind::Text,
    "1–255 characters, unique per user and request (or the Idempotency-Key header): a retry with the same key takes effect once and gets the first attempt's reply; the same key with other parameters is refused",
);

/// One documented route.
#[derive(Clone)]
pub struct Endpoint {
    pub path: &'static str,
    /// `get`, `post`, or both.
    pub methods: &'static [&'static str],
    pub summary: &'static str,
    pub params: Vec<Param>,
    /// Parameters come as `multipart/form-data` (publish).
    pub multipart: bool,
    /// The reply body's schema (envelope included); for an event stream, the schema of its
    /// events' `data:`.
    pub reply: fn(&mut SchemaGenerator) -> Schema,
    /// The reply is `text/event-stream` (server-sent events), refusals the JSON envelope.
    pub event_stream: bool,
}

impl Endpoint {
    /// A route served on GET and POST with query/form parameters (all but publish).
    pub fn get_post(
        path: &'static str,
        summary: &'static str,
        params: Vec<Param>,
        reply: fn(&mut SchemaGenerator) -> Schema,
    ) -> Endpoint {
        Endpoint {
            path,
            methods: &["get", "post"],
            summary,
            params,
            multipart: false,
            reply,
            event_stream: false,
        }
    }

    /// A GET route answering server-sent events whose `data:` lines follow `events`.
    pub fn event_stream(
        path: &'static str,
        summary: &'static str,
        params: Vec<Param>,
        events: fn(&mut SchemaGenerator) -> Schema,
    ) -> Endpoint {
        Endpoint {
            path,
            methods: &["get"],
            summary,
            params,
            multipart: false,
            reply: events,
            event_stream: true,
        }
    }
}

/// A router built from a routing table: every route with and without its trailing slash.
pub fn router<S: Clone + Send + Sync + 'static>(
    routes: Vec<(Endpoint, axum::routing::MethodRouter<S>)>,
    state: S,
) -> axum::Router {
    routes
        .into_iter()
        .fold(axum::Router::new(), |r, (e, handler)| {
            crate::http::douyin_route(r, e.path, handler)
        })
        .with_state(state)
}

/// The schema of [`Envelope<T>`], the type replies are sent as (use as `Endpoint::reply`).
pub fn reply<T: JsonSchema>(gen: &mut SchemaGenerator) -> Schema {
    gen.subschema_for::<Envelope<T>>()
}

fn param_schema(kind: Kind) -> Value {
    match kind {
        Kind::Integer => json!({"type": "integer", "format": "int64"}),
        Kind::Text => json!({"type": "string"}),
        Kind::File => json!({"type": "string", "format": "binary"}),
    }
}

fn body_schema(params: &[Param]) -> Value {
    let properties: Map<String, Value> = params
        .iter()
        .map(|p| {
            let mut schema = param_schema(p.kind);
            schema["description"] = p.description.into();
            (p.name.to_owned(), schema)
        })
        .collect();
    let required: Vec<&str> = params
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name)
        .collect();
    json!({"type": "object", "properties": properties, "required": required})
}

fn operation(gen: &mut SchemaGenerator, e: &Endpoint, method: &str) -> Value {
    let reply = serde_json::to_value((e.reply)(gen)).unwrap_or(Value::Null);
    let envelope =
        serde_json::to_value(gen.subschema_for::<Envelope<Empty>>()).unwrap_or(Value::Null);
    let json_reply = |description: &str, schema: &Value| json!({"description": description, "content": {"application/json": {"schema": schema}}});
    let mut op = json!({
        "summary": e.summary,
        "operationId": format!("{method}_{}", e.path.trim_matches('/').replace('/', "_")),
        "responses": {
            "200": json_reply("Success (`status_code` 0) or a business refusal (`status_code` != 0)", &reply),
            "503": json_reply("The event log or a store is unavailable; nothing was written", &envelope),
        },
    });
    if e.event_stream {
        op["responses"]["200"] = json!({
            "description": "A stream of server-sent events (`event:`, `id:`, one JSON `data:` line each); a refusal is the JSON envelope with `status_code` != 0",
            "content": {
                "text/event-stream": {"schema": {
                    "type": "object",
                    "description": "One server-sent event; its data is one JSON object of the schema in x-event-data",
                    "properties": {
                        "event": {"type": "string"},
                        "id": {"type": "string"},
                        "data": {"type": "string"},
                        "retry": {"type": "integer"},
                    },
                    "required": ["data"],
                }},
                "application/json": {"schema": envelope.clone()},
            },
        });
        op["responses"]["200"]["x-event-data"] = reply;
        op["responses"]["429"] = json_reply("The user holds their maximum of streams", &envelope);
    }
    if e.multipart {
        op["requestBody"] = json!({"required": true, "content": {"multipart/form-data": {"schema": body_schema(&e.params)}}});
    } else {
        // Clients send parameters in the query string, a form body, or both; the query string
        // is documented, and POST bodies may carry the same fields.
        let params: Vec<Value> = e
            .params
            .iter()
            .map(|p| json!({"name": p.name, "in": "query", "required": p.required, "description": p.description, "schema": param_schema(p.kind)}))
            .collect();
        op["parameters"] = Value::Array(params);
        if method == "post" {
            let mut optional = e.params.clone();
            optional.iter_mut().for_each(|p| p.required = false);
            op["requestBody"] = json!({"required": false, "content": {"application/x-www-form-urlencoded": {"schema": body_schema(&optional)}}});
        }
    }
    op
}

/// The OpenAPI 3.0 document of `endpoints`.
pub fn document(endpoints: &[Endpoint]) -> Value {
    let mut gen = SchemaSettings::openapi3().into_generator();
    let mut paths = Map::new();
    for e in endpoints {
        let item = paths.entry(e.path.to_owned()).or_insert_with(|| json!({}));
        for method in e.methods {
            item[*method] = operation(&mut gen, e, method);
        }
    }
    let schemas = serde_json::to_value(gen.take_definitions()).unwrap_or(Value::Null);
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "titok-plus — the Douyin minimal API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Every reply is an envelope {status_code, status_msg, …}. Paths are also served without the trailing slash.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    })
}
