//! Any query string: the Douyin parameter parser refuses or accepts, never panics, and what it
//! accepts keeps its promises (ids positive, times non-negative, action types from the allowed set).
#![no_main]

use libfuzzer_sys::fuzz_target;
use titok_web::http::{parse_integer, Params};

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
    if let Ok(action) = params.action_type(&[1, 2]) {
        assert!(action == 1 || action == 2, "action_type {action} accepted");
    }
    // Every integer written plainly parses back to itself.
    if let Ok(n) = query.trim().parse::<i64>() {
        assert_eq!(parse_integer(query), Some(n));
    }
});
