//! The envelope every event travels in, and its JSON encoding.
//!
//! Encoding is explicit: the `(type, version)` pair selects the payload decoder, so an old version can
//! be upcast on read and an event written today decodes forever.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::payloads::*;
use crate::{pair_key, Topic};

/// One event of any type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventBody {
    UserRegistered(UserRegistered),
    VideoPublished(VideoPublished),
    VideoLiked(Favorite),
    VideoUnliked(Favorite),
    CommentAdded(CommentAdded),
    CommentDeleted(CommentDeleted),
    UserFollowed(Follow),
    UserUnfollowed(Follow),
    MessageSent(MessageSent),
}

impl EventBody {
    /// The `type` field.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventBody::UserRegistered(_) => "UserRegistered",
            EventBody::VideoPublished(_) => "VideoPublished",
            EventBody::VideoLiked(_) => "VideoLiked",
            EventBody::VideoUnliked(_) => "VideoUnliked",
            EventBody::CommentAdded(_) => "CommentAdded",
            EventBody::CommentDeleted(_) => "CommentDeleted",
            EventBody::UserFollowed(_) => "UserFollowed",
            EventBody::UserUnfollowed(_) => "UserUnfollowed",
            EventBody::MessageSent(_) => "MessageSent",
        }
    }

    /// The current version written for this type.
    pub fn version(&self) -> u16 {
        match self {
            EventBody::VideoPublished(_) => 2,
            _ => 1,
        }
    }

    pub fn topic(&self) -> Topic {
        match self {
            EventBody::UserRegistered(_) => Topic::Users,
            EventBody::VideoPublished(_) => Topic::Videos,
            EventBody::VideoLiked(_) | EventBody::VideoUnliked(_) => Topic::Favorites,
            EventBody::CommentAdded(_) | EventBody::CommentDeleted(_) => Topic::Comments,
            EventBody::UserFollowed(_) | EventBody::UserUnfollowed(_) => Topic::Relations,
            EventBody::MessageSent(_) => Topic::Messages,
        }
    }

    /// The partition key: the entity whose events must stay in order (a video's likes and
    /// comments, a user, an unordered pair's follows and messages).
    pub fn key(&self) -> String {
        match self {
            EventBody::UserRegistered(e) => e.user_id.to_string(),
            EventBody::VideoPublished(e) => e.video_id.to_string(),
            EventBody::VideoLiked(e) | EventBody::VideoUnliked(e) => e.video_id.to_string(),
            EventBody::CommentAdded(e) => e.video_id.to_string(),
            EventBody::CommentDeleted(e) => e.video_id.to_string(),
            EventBody::UserFollowed(e) | EventBody::UserUnfollowed(e) => {
                pair_key(e.follower_id, e.followee_id)
            }
            EventBody::MessageSent(e) => pair_key(e.from_user_id, e.to_user_id),
        }
    }

    fn payload(&self) -> Result<Value, serde_json::Error> {
        match self {
            EventBody::UserRegistered(e) => serde_json::to_value(e),
            EventBody::VideoPublished(e) => serde_json::to_value(e),
            EventBody::VideoLiked(e) | EventBody::VideoUnliked(e) => serde_json::to_value(e),
            EventBody::CommentAdded(e) => serde_json::to_value(e),
            EventBody::CommentDeleted(e) => serde_json::to_value(e),
            EventBody::UserFollowed(e) | EventBody::UserUnfollowed(e) => serde_json::to_value(e),
            EventBody::MessageSent(e) => serde_json::to_value(e),
        }
    }

    fn decode(type_name: &str, version: u16, payload: Value) -> Result<EventBody, DecodeError> {
        use serde_json::from_value as de;
        let body = match (type_name, version) {
            ("UserRegistered", 1) => EventBody::UserRegistered(de(payload)?),
            ("VideoPublished", 1) => {
                EventBody::VideoPublished(de::<VideoPublishedV1>(payload)?.upcast())
            }
            ("VideoPublished", 2) => EventBody::VideoPublished(de(payload)?),
            ("VideoLiked", 1) => EventBody::VideoLiked(de(payload)?),
            ("VideoUnliked", 1) => EventBody::VideoUnliked(de(payload)?),
            ("CommentAdded", 1) => EventBody::CommentAdded(de(payload)?),
            ("CommentDeleted", 1) => EventBody::CommentDeleted(de(payload)?),
            ("UserFollowed", 1) => EventBody::UserFollowed(de(payload)?),
            ("UserUnfollowed", 1) => EventBody::UserUnfollowed(de(payload)?),
            ("MessageSent", 1) => EventBody::MessageSent(de(payload)?),
            _ => {
                return Err(DecodeError::UnknownType {
                    type_name: type_name.to_owned(),
                    version,
                })
            }
        };
        Ok(body)
    }
}

/// An event with its metadata, as stored in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub event_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    /// The user whose command produced the event.
    pub actor: i64,
    /// The id of the HTTP request that produced the event, so one write can be followed from the
    /// request's log line to the projector's. Optional: absent in events from other producers.
    pub trace_id: Option<String>,
    pub body: EventBody,
}

/// Why bytes from the log could not be turned into an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed event JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("unknown event type {type_name} v{version}")]
    UnknownType { type_name: String, version: u16 },
    /// Well-formed, but no command could have produced it (a foreign producer's bug, say).
    #[error("invariant broken: {0}")]
    Invariant(String),
}

/// Ids are positive and below 2^53 (see [`crate::IdGenerator`]).
const ID_LIMIT: i64 = 1 << 53;

impl EventBody {
    /// The first invariant of its type this event breaks, if any.
    fn invariant_violation(&self) -> Option<String> {
        let ids: Vec<(&str, i64)> = match self {
            EventBody::UserRegistered(e) => vec![("user_id", e.user_id)],
            EventBody::VideoPublished(e) => {
                vec![("video_id", e.video_id), ("author_id", e.author_id)]
            }
            EventBody::VideoLiked(e) | EventBody::VideoUnliked(e) => vec![
                ("user_id", e.user_id),
                ("video_id", e.video_id),
                ("author_id", e.author_id),
            ],
            EventBody::CommentAdded(e) => vec![
                ("comment_id", e.comment_id),
                ("video_id", e.video_id),
                ("user_id", e.user_id),
            ],
            EventBody::CommentDeleted(e) => vec![
                ("comment_id", e.comment_id),
                ("video_id", e.video_id),
                ("user_id", e.user_id),
            ],
            EventBody::UserFollowed(e) | EventBody::UserUnfollowed(e) => vec![
                ("follower_id", e.follower_id),
                ("followee_id", e.followee_id),
            ],
            EventBody::MessageSent(e) => vec![
                ("message_id", e.message_id),
                ("from_user_id", e.from_user_id),
                ("to_user_id", e.to_user_id),
            ],
        };
        if let Some((name, id)) = ids.iter().find(|(_, id)| !(1..ID_LIMIT).contains(id)) {
            return Some(format!("{name} {id} is not an id (1 to 2^53 - 1)"));
        }
        match self {
            EventBody::UserFollowed(e) | EventBody::UserUnfollowed(e)
                if e.follower_id == e.followee_id =>
            {
                Some(format!("user {} follows themselves", e.follower_id))
            }
            EventBody::MessageSent(e) if e.from_user_id == e.to_user_id => {
                Some(format!("user {} messages themselves", e.from_user_id))
            }
            _ => None,
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Wire {
    event_id: Uuid,
    #[serde(rename = "type")]
    type_name: String,
    version: u16,
    occurred_at: DateTime<Utc>,
    actor: i64,
    key: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    trace_id: Option<String>,
    payload: Value,
}

impl Envelope {
    /// A new event happening now, with a fresh UUID v7 id.
    pub fn new(actor: i64, body: EventBody) -> Envelope {
        Envelope {
            event_id: Uuid::now_v7(),
            occurred_at: Utc::now(),
            actor,
            trace_id: None,
            body,
        }
    }

    pub fn topic(&self) -> Topic {
        self.body.topic()
    }

    pub fn key(&self) -> String {
        self.body.key()
    }

    /// JSON bytes for the log.
    pub fn encode(&self) -> Vec<u8> {
        let wire = Wire {
            event_id: self.event_id,
            type_name: self.body.type_name().to_owned(),
            version: self.body.version(),
            occurred_at: self.occurred_at,
            actor: self.actor,
            key: self.key(),
            trace_id: self.trace_id.clone(),
            // Payload structs hold only integers and strings: serialisation cannot fail.
            payload: self.body.payload().unwrap_or(Value::Null),
        };
        serde_json::to_vec(&wire).unwrap_or_default()
    }

    /// Decode bytes from the log, upcasting old versions, and check the invariants of the event's
    /// type (ids in range, nobody following or messaging themselves, the key the payload implies).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, DecodeError> {
        let wire: Wire = serde_json::from_slice(bytes)?;
        let body = EventBody::decode(&wire.type_name, wire.version, wire.payload)?;
        if let Some(broken) = body.invariant_violation() {
            return Err(DecodeError::Invariant(broken));
        }
        if wire.key != body.key() {
            return Err(DecodeError::Invariant(format!(
                "key {:?} is not the payload's key {:?}",
                wire.key,
                body.key()
            )));
        }
        Ok(Envelope {
            event_id: wire.event_id,
            occurred_at: wire.occurred_at,
            actor: wire.actor,
            trace_id: wire.trace_id,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<EventBody> {
        let fav = Favorite {
            user_id: 1,
            video_id: 2,
            author_id: 3,
        };
        let follow = Follow {
            follower_id: 9,
            followee_id: 4,
        };
        vec![
            EventBody::UserRegistered(UserRegistered {
                user_id: 1,
                username: "ann".into(),
            }),
            EventBody::VideoPublished(VideoPublished {
                video_id: 2,
                author_id: 3,
                title: "t".into(),
                play_path: "videos/2.mp4".into(),
                cover_path: "covers/2.png".into(),
                published_at_ms: 5,
                content_type: "video/mp4".into(),
                size_bytes: Some(15_276),
            }),
            EventBody::VideoLiked(fav.clone()),
            EventBody::VideoUnliked(fav),
            EventBody::CommentAdded(CommentAdded {
                comment_id: 6,
                video_id: 2,
                user_id: 1,
                content: "hi ✓".into(),
                created_at_ms: 7,
            }),
            EventBody::CommentDeleted(CommentDeleted {
                comment_id: 6,
                video_id: 2,
                user_id: 1,
            }),
            EventBody::UserFollowed(follow.clone()),
            EventBody::UserUnfollowed(follow),
            EventBody::MessageSent(MessageSent {
                message_id: 8,
                from_user_id: 1,
                to_user_id: 3,
                content: "yo".into(),
                created_at_ms: 9,
            }),
        ]
    }

    #[test]
    fn every_event_type_round_trips_through_json() {
        for body in samples() {
            let env = Envelope::new(1, body);
            let decoded = Envelope::decode(&env.encode()).expect("decodes");
            assert_eq!(decoded, env);
        }
    }

    #[test]
    fn a_stored_v1_video_published_decodes_as_v2() {
        let v1 = r#"{"event_id":"01937a4e-8f4b-7c3d-9a2b-1c2d3e4f5a6b","type":"VideoPublished","version":1,
            "occurred_at":"2025-06-01T10:00:00Z","actor":3,"key":"2",
            "payload":{"video_id":2,"author_id":3,"title":"old","play_path":"videos/2.webm",
                       "cover_path":"covers/2.png","published_at_ms":5}}"#;
        let event = Envelope::decode(v1.as_bytes()).expect("v1 decodes");
        let EventBody::VideoPublished(video) = event.body else {
            panic!("wrong type")
        };
        assert_eq!(
            video.content_type, "video/webm",
            "derived from the stored extension"
        );
        assert_eq!(video.size_bytes, None);
        assert_eq!(video.title, "old");
        assert_eq!(event.trace_id, None, "v1 events carry no trace id");
    }

    #[test]
    fn relation_and_message_keys_are_direction_free() {
        let a = EventBody::UserFollowed(Follow {
            follower_id: 9,
            followee_id: 4,
        });
        let b = EventBody::UserUnfollowed(Follow {
            follower_id: 4,
            followee_id: 9,
        });
        assert_eq!(a.key(), b.key());
    }

    #[test]
    fn unknown_types_and_garbage_are_decode_errors() {
        assert!(Envelope::decode(b"not json").is_err());
        let env = Envelope::new(1, samples().remove(0));
        let text = String::from_utf8(env.encode()).expect("utf8");
        let renamed = text.replace("UserRegistered", "UserVanished");
        assert!(matches!(
            Envelope::decode(renamed.as_bytes()),
            Err(DecodeError::UnknownType { .. })
        ));
    }

    #[test]
    fn events_breaking_an_invariant_do_not_decode() {
        let broken = [
            EventBody::UserFollowed(Follow {
                follower_id: 4,
                followee_id: 4,
            }),
            EventBody::MessageSent(MessageSent {
                message_id: 8,
                from_user_id: 1,
                to_user_id: 1,
                content: "me".into(),
                created_at_ms: 9,
            }),
            EventBody::VideoLiked(Favorite {
                user_id: 0,
                video_id: 2,
                author_id: 3,
            }),
            EventBody::UserRegistered(UserRegistered {
                user_id: 1 << 53,
                username: "big".into(),
            }),
        ];
        for body in broken {
            let bytes = Envelope::new(1, body.clone()).encode();
            assert!(
                matches!(Envelope::decode(&bytes), Err(DecodeError::Invariant(_))),
                "{body:?} must not decode"
            );
        }
        // A key that is not the payload's (it would be in the wrong partition, out of order).
        let env = Envelope::new(1, samples().remove(2));
        let text = String::from_utf8(env.encode()).expect("utf8");
        let moved = text.replace(r#""key":"2""#, r#""key":"7""#);
        assert_ne!(moved, text);
        assert!(matches!(
            Envelope::decode(moved.as_bytes()),
            Err(DecodeError::Invariant(_))
        ));
    }
}
