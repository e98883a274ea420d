//! Parameter parsing, action types, the body-limit check and `ApiError`'s source.

use super::*;

#[test]
fn integers_parse_leniently_but_not_loosely() {
    let cases = [
        ("42", Some(42)),
        (" 7 ", Some(7)),
        ("1.68e+09", Some(1_680_000_000)),
        ("3.0", Some(3)),
        ("3.5", None),
        ("abc", None),
        ("", None),
        ("NaN", None),
        ("1e30", None),
    ];
    for (raw, want) in cases {
        assert_eq!(parse_integer(raw), want, "parsing {raw:?}");
    }
}

#[test]
fn ids_must_be_positive_and_present() {
    let p = Params::from_query("a=5&b=-1&c=x&d=").expect("query");
    assert_eq!(p.id("a").expect("a"), 5);
    assert!(p.id("b").is_err());
    assert!(p.id("c").is_err());
    assert!(p.id("d").is_err());
    assert!(p.id("missing").is_err());
    assert_eq!(p.opt_id("d").expect("empty is none"), None);
    assert_eq!(p.int_or_zero("missing").expect("zero"), 0);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Toggle {
    On,
    Off,
}

impl ActionType for Toggle {
    const ACTIONS: &'static [(i64, Self)] = &[(1, Toggle::On), (2, Toggle::Off)];
}

#[test]
fn action_types_parse_into_their_enum_or_list_the_allowed_numbers() {
    let action = |query: &str| Params::from_query(query).expect("query").action::<Toggle>();
    assert_eq!(action("action_type=1").expect("1"), Toggle::On);
    assert_eq!(action("action_type=2.0").expect("2.0"), Toggle::Off);
    for (query, msg) in [
        (
            "action_type=3",
            r#"action_type must be one of [1, 2], got "3""#,
        ),
        (
            "action_type=x",
            r#"action_type must be one of [1, 2], got "x""#,
        ),
        ("", "action_type is required"),
    ] {
        let err = action(query).expect_err(query);
        assert!(matches!(err, ApiError::BadRequest(_)), "{err:?}");
        assert_eq!(err.to_string(), msg);
    }
}

#[test]
fn unavailable_keeps_its_source_and_says_only_what() {
    let err = ApiError::unavailable("event log", std::io::Error::other("broker down"));
    assert_eq!(err.to_string(), "event log is unavailable, try again later");
    let source = std::error::Error::source(&err).expect("a source");
    assert!(source.is::<std::io::Error>(), "{source:?}");
    assert_eq!(source.to_string(), "broker down");
    assert_eq!(
        err.status(),
        (StatusCode::SERVICE_UNAVAILABLE, code::UNAVAILABLE)
    );
}

#[tokio::test]
async fn a_body_over_the_limit_is_told_from_other_read_errors() {
    use axum::body::{to_bytes, Body};
    let over = to_bytes(Body::from(vec![0u8; 10]), 5)
        .await
        .expect_err("over");
    assert!(too_large(&over), "to_bytes's own limit: {over:?}");
    // A route's limit (`DefaultBodyLimit`) is an inner body's error, one level deeper.
    let inner = Body::new(http_body_util::Limited::new(Body::from(vec![0u8; 10]), 5));
    let over = to_bytes(inner, 100).await.expect_err("inner over");
    assert!(too_large(&over), "the inner limit: {over:?}");
    // Recognised by type, not by text: another error saying the same is not the limit.
    let lookalike = axum::Error::new(std::io::Error::other("length limit exceeded"));
    assert!(!too_large(&lookalike));
    assert!(
        to_bytes(Body::from(vec![0u8; 5]), 5).await.is_ok(),
        "at the limit is fine"
    );
}
