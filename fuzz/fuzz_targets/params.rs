//! Any query string: the Douyin parameter parser refuses or accepts, never panics, and what it
//! accepts keeps its promises (ids positive, times non-negative, action types from the allowed set).
#![no_main]

use libfuzzer_sys::fuzz_target;
use titok_web::http::{parse_integer, ActionType, Params};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Toggle {
    On,
    Off,
}

impl ActionType for Toggle {
    const ACTIONS: &'static [(i64, Self)] = &[(1, Toggle::On), (2, Toggle::Off)];
}

fuzz_target!(|query: &str| {
    let Ok(params) = Params::from_query(query) else {
        return;
    };
    for name in ["user_id", "video_id", "to_user_id", "comment_id"] {
        if let Ok(id) = params.id(name) {
            assert!(id > 0, "{name} accepted a non-positive id {id}");
        }
        if let Ok(Some(id)) = params.opt_id(name) {
            assert!(id > 0, "{name} accepted a non-positive optional id {id}");
        }
    }
    for name in ["latest_time", "pre_msg_time"] {
        if let Ok(t) = params.int_or_zero(name) {
            assert!(t >= 0, "{name} accepted a negative time {t}");
        }
    }
    if let Ok(action) = params.action::<Toggle>() {
        let raw = params
            .0
            .get("action_type")
            .map(String::as_str)
            .unwrap_or_default();
        let number = parse_integer(raw);
        let expected = match action {
            Toggle::On => 1,
            Toggle::Off => 2,
        };
        assert_eq!(
            number,
            Some(expected),
            "action_type {raw:?} accepted as {action:?}"
        );
    }
    // Every integer written plainly parses back to itself.
    if let Ok(n) = query.trim().parse::<i64>() {
        assert_eq!(parse_integer(query), Some(n));
    }
});
