//! JSON Schemas of every event type and version: the published interface for analytics consumers.
//! The files in `schemas/events/` are generated from the payload types; a test fails when they are
//! stale (`TITOK_UPDATE_SCHEMAS=1 cargo test -p titok-events` rewrites them).

use schemars::JsonSchema;
use serde_json::{json, Value};

use crate::payloads::*;
use crate::Topic;

fn envelope_schema<T: JsonSchema>(
    type_name: &str,
    version: u16,
    topic: Topic,
    key: &str,
) -> (String, Value) {
    let root = schemars::schema_for!(T);
    let payload = serde_json::to_value(&root.schema).unwrap_or(Value::Null);
    let definitions = serde_json::to_value(&root.definitions).unwrap_or(Value::Null);
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": format!("https://titok-plus/schemas/events/{type_name}.v{version}.json"),
        "title": format!("{type_name} v{version}"),
        "description": format!("Topic `{}` (Kafka topic `<namespace>.{}`), message key = {key}. JSON, UTF-8.", topic.name(), topic.name().trim_start_matches("titok.")),
        "type": "object",
        "required": ["event_id", "type", "version", "occurred_at", "actor", "key", "payload"],
        "properties": {
            "event_id": {"type": "string", "format": "uuid", "description": "UUID v7, unique per event"},
            "type": {"const": type_name},
            "version": {"const": version},
            "occurred_at": {"type": "string", "format": "date-time", "description": "when the command was accepted (UTC)"},
            "actor": {"type": "integer", "description": "the user whose command produced the event"},
            "key": {"type": "string", "description": "the partition key"},
            "trace_id": {"type": "string", "description": "id of the HTTP request that produced the event (optional)"},
            "payload": payload,
        },
        "definitions": definitions,
    });
    (format!("{type_name}.v{version}.json"), schema)
}

/// `(file name, schema)` of every event type and version that can be in the log.
pub fn json_schemas() -> Vec<(String, Value)> {
    let video = "the video id";
    let pair = "the unordered user pair `min:max`";
    vec![
        envelope_schema::<UserRegistered>("UserRegistered", 1, Topic::Users, "the user id"),
        envelope_schema::<VideoPublishedV1>("VideoPublished", 1, Topic::Videos, video),
        envelope_schema::<VideoPublished>("VideoPublished", 2, Topic::Videos, video),
        envelope_schema::<Favorite>("VideoLiked", 1, Topic::Favorites, video),
        envelope_schema::<Favorite>("VideoUnliked", 1, Topic::Favorites, video),
        envelope_schema::<CommentAdded>("CommentAdded", 1, Topic::Comments, video),
        envelope_schema::<CommentDeleted>("CommentDeleted", 1, Topic::Comments, video),
        envelope_schema::<Follow>("UserFollowed", 1, Topic::Relations, pair),
        envelope_schema::<Follow>("UserUnfollowed", 1, Topic::Relations, pair),
        envelope_schema::<MessageSent>("MessageSent", 1, Topic::Messages, pair),
    ]
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn the_published_event_schemas_are_up_to_date() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas/events");
        let update = std::env::var("TITOK_UPDATE_SCHEMAS").is_ok_and(|v| v == "1");
        let mut stale = Vec::new();
        for (name, schema) in json_schemas() {
            let text = serde_json::to_string_pretty(&schema).expect("json") + "\n";
            let path = dir.join(&name);
            if update {
                std::fs::create_dir_all(&dir).expect("dir");
                std::fs::write(&path, &text).expect("write");
            } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                stale.push(name);
            }
        }
        assert!(
            stale.is_empty(),
            "stale or missing event schemas {stale:?}: run `TITOK_UPDATE_SCHEMAS=1 cargo test -p titok-events` and commit schemas/events/"
        );
    }

    #[test]
    fn every_current_event_validates_against_its_schema_shape() {
        // Every field the encoder writes is declared, and the declared version is the written one.
        let schemas = json_schemas();
        let sample = crate::Envelope::new(
            1,
            crate::EventBody::MessageSent(MessageSent {
                message_id: 1,
                from_user_id: 1,
                to_user_id: 2,
                content: "x".into(),
                created_at_ms: 3,
            }),
        );
        let encoded: Value = serde_json::from_slice(&sample.encode()).expect("json");
        let (_, schema) = schemas
            .iter()
            .find(|(n, _)| n == "MessageSent.v1.json")
            .expect("schema");
        for field in encoded.as_object().expect("object").keys() {
            assert!(
                schema["properties"][field].is_object(),
                "{field} is documented"
            );
        }
        assert_eq!(schema["properties"]["version"]["const"], encoded["version"]);
    }
}
