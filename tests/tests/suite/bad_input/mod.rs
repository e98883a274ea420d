//! Bad input of every kind the contract names gets the envelope with `status_code != 0` and a clear
//! `status_msg` — never a 500, never a panic. The plain refusals are one table of requests, each
//! with the fragment its `status_msg` must mention ([`requests`]); uploads and oversized bodies
//! ([`uploads`]) and the login quotas ([`login_limits`]) have tests of their own.

mod login_limits;
mod requests;
mod uploads;

const FAVORITE: &str = "/douyin/favorite/action/";
const COMMENT: &str = "/douyin/comment/action/";
const MESSAGE: &str = "/douyin/message/action/";
const RELATION: &str = "/douyin/relation/action/";
const REGISTER: &str = "/douyin/user/register/";
const LOGIN: &str = "/douyin/user/login/";
