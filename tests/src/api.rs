//! The API helpers of a [`TestApp`]: typed requests of the Douyin endpoints (register, publish,
//! like, follow, chat, comment, lists), raw GET/POST with status and headers, refusals asserted
//! with their message, tokens signed with the server's secret; and the envelope assertions
//! ([`assert_ok`], [`assert_refused`], [`list`], [`ids`]).

use serde_json::Value;

use crate::TestApp;

/// The sample video (a real 1 s H.264 MP4).
pub const SAMPLE_MP4: &[u8] = include_bytes!("../../assets/sample.mp4");

impl TestApp {
    /// GET a plain-text page (e.g. `/metrics`, asked of the server itself: see
    /// [`TestApp::admin_url`]), asserting HTTP 200.
    pub async fn get_text(&self, path: &str) -> String {
        let url = if path.starts_with("/metrics") {
            self.admin_url(path)
        } else {
            self.url(path)
        };
        let resp = self.client.get(url).send().await.expect("GET");
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.text().await.expect("text")
    }

    /// GET with query parameters; returns (HTTP status, JSON body).
    pub async fn get_raw(&self, path: &str, query: &[(&str, String)]) -> (u16, Value) {
        let (status, _, body) = self.get_full(path, query).await;
        (status, body)
    }

    /// A form POST carrying an `Idempotency-Key` header, ready to send (and send again).
    pub fn keyed_post(
        &self,
        path: &str,
        key: &str,
        form: &[(&str, String)],
    ) -> reqwest::RequestBuilder {
        self.client
            .post(self.url(path))
            .header("Idempotency-Key", key)
            .form(form)
    }

    /// `n` logins of `username` with a wrong password: each refused, the `n`-th (only) with HTTP
    /// 429 — the login quota is `n - 1`.
    pub async fn assert_nth_login_throttled(&self, username: &str, n: usize) {
        for attempt in 1..=n {
            let (status, body) = self
                .post_raw(
                    "/douyin/user/login/",
                    &[
                        ("username", username.into()),
                        ("password", "wrong-guess".into()),
                    ],
                )
                .await;
            assert_ne!(body["status_code"], 0, "{body}");
            assert_eq!(
                status == 429,
                attempt == n,
                "attempt {attempt}: HTTP {status} {body}"
            );
        }
    }

    /// GET with query parameters; returns (HTTP status, headers, JSON body).
    pub async fn get_full(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let resp = self
            .client
            .get(self.url(path))
            .query(query)
            .send()
            .await
            .expect("GET");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        (status, headers, resp.json().await.unwrap_or(Value::Null))
    }

    /// POST a form body; returns (HTTP status, JSON body).
    pub async fn post_raw(&self, path: &str, form: &[(&str, String)]) -> (u16, Value) {
        let resp = self
            .client
            .post(self.url(path))
            .form(form)
            .send()
            .await
            .expect("POST");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// GET, asserting HTTP 200 and a JSON envelope.
    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> Value {
        let (status, body) = self.get_raw(path, query).await;
        assert_eq!(status, 200, "GET {path} {query:?} → HTTP {status}: {body}");
        assert!(
            body["status_code"].is_i64(),
            "GET {path}: not an envelope: {body}"
        );
        body
    }

    /// POST a form, asserting HTTP 200 and a JSON envelope.
    pub async fn post(&self, path: &str, form: &[(&str, String)]) -> Value {
        let (status, body) = self.post_raw(path, form).await;
        assert_eq!(status, 200, "POST {path} {form:?} → HTTP {status}: {body}");
        assert!(
            body["status_code"].is_i64(),
            "POST {path}: not an envelope: {body}"
        );
        body
    }

    /// [`TestApp::get`], asserting an ok envelope (`what` names the request when it is not).
    pub async fn get_ok(&self, path: &str, query: &[(&str, String)], what: &str) -> Value {
        let body = self.get(path, query).await;
        assert_ok(&body, what);
        body
    }

    /// [`TestApp::post`], asserting an ok envelope (`what` names the request when it is not).
    pub async fn post_ok(&self, path: &str, form: &[(&str, String)], what: &str) -> Value {
        let body = self.post(path, form).await;
        assert_ok(&body, what);
        body
    }

    /// Register and return (user_id, token), asserting success.
    pub async fn register(&self, username: &str, password: &str) -> User {
        let body = self
            .post_ok(
                "/douyin/user/register/",
                &[("username", username.into()), ("password", password.into())],
                "register",
            )
            .await;
        User {
            id: body["user_id"].as_i64().expect("user_id"),
            token: body["token"].as_str().expect("token").into(),
        }
    }

    /// Publish a video (multipart), returning the reply.
    pub async fn publish_raw(
        &self,
        token: &str,
        title: &str,
        data: Vec<u8>,
        file_name: &str,
    ) -> (u16, Value) {
        let form = reqwest::multipart::Form::new()
            .text("token", token.to_owned())
            .text("title", title.to_owned())
            .part(
                "data",
                reqwest::multipart::Part::bytes(data).file_name(file_name.to_owned()),
            );
        let resp = self
            .client
            .post(self.url("/douyin/publish/action/"))
            .multipart(form)
            .send()
            .await
            .expect("publish");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Publish the sample video and return its id (read back from the author's publish list).
    pub async fn publish(&self, user: &User, title: &str) -> i64 {
        let (status, body) = self
            .publish_raw(&user.token, title, SAMPLE_MP4.to_vec(), "clip.mp4")
            .await;
        assert_eq!(status, 200, "publish: {body}");
        assert_ok(&body, "publish");
        let list = self.publish_list(user, user.id).await;
        list.iter()
            .find(|v| v["title"] == title)
            .and_then(|v| v["id"].as_i64())
            .unwrap_or_else(|| {
                let logs = self.logs();
                let warnings: Vec<&str> = logs
                    .lines()
                    .filter(|l| l.contains("WARN") || l.contains("ERROR"))
                    .collect();
                panic!(
                    "published video {title:?} not in the author's list: {list:?}\nwarnings:\n{}",
                    warnings.join("\n")
                )
            })
    }

    pub async fn publish_list(&self, viewer: &User, user_id: i64) -> Vec<Value> {
        let query = viewer.with(&[("user_id", user_id.to_string())]);
        let body = self
            .get_ok("/douyin/publish/list/", &query, "publish list")
            .await;
        list(&body, "video_list")
    }

    pub async fn favorite_list(&self, viewer: &User, user_id: i64) -> Vec<Value> {
        let query = viewer.with(&[("user_id", user_id.to_string())]);
        let body = self
            .get_ok("/douyin/favorite/list/", &query, "favorite list")
            .await;
        list(&body, "video_list")
    }

    pub async fn user_info(&self, viewer: &User, user_id: i64) -> Value {
        let query = viewer.with(&[("user_id", user_id.to_string())]);
        let body = self.get_ok("/douyin/user/", &query, "user info").await;
        body["user"].clone()
    }

    pub async fn like(&self, user: &User, video_id: i64, action: i64) {
        let form = user.with(&[
            ("video_id", video_id.to_string()),
            ("action_type", action.to_string()),
        ]);
        self.post_ok("/douyin/favorite/action/", &form, "favorite action")
            .await;
    }

    pub async fn follow(&self, user: &User, to: i64, action: i64) {
        let form = user.with(&[
            ("to_user_id", to.to_string()),
            ("action_type", action.to_string()),
        ]);
        self.post_ok("/douyin/relation/action/", &form, "relation action")
            .await;
    }

    pub async fn send_message(&self, user: &User, to: i64, content: &str) {
        let form = user.with(&[
            ("to_user_id", to.to_string()),
            ("action_type", "1".into()),
            ("content", content.into()),
        ]);
        self.post_ok("/douyin/message/action/", &form, "message action")
            .await;
    }

    pub async fn chat(&self, user: &User, to: i64, pre_msg_time: i64) -> Vec<Value> {
        let query = user.with(&[
            ("to_user_id", to.to_string()),
            ("pre_msg_time", pre_msg_time.to_string()),
        ]);
        let body = self.get_ok("/douyin/message/chat/", &query, "chat").await;
        list(&body, "message_list")
    }

    pub async fn comment(&self, user: &User, video_id: i64, text: &str) -> Value {
        let form = user.with(&[
            ("video_id", video_id.to_string()),
            ("action_type", "1".into()),
            ("comment_text", text.into()),
        ]);
        let body = self
            .post_ok("/douyin/comment/action/", &form, "comment action")
            .await;
        body["comment"].clone()
    }

    pub async fn comments(&self, user: &User, video_id: i64) -> Vec<Value> {
        let query = user.with(&[("video_id", video_id.to_string())]);
        let body = self
            .get_ok("/douyin/comment/list/", &query, "comment list")
            .await;
        list(&body, "comment_list")
    }

    pub async fn user_list(&self, path: &str, viewer: &User, user_id: i64) -> Vec<Value> {
        let query = viewer.with(&[("user_id", user_id.to_string())]);
        let body = self.get_ok(path, &query, path).await;
        list(&body, "user_list")
    }
}

/// A registered user.
#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub token: String,
}

impl User {
    /// The form of a new comment by this user (token, video, action 1, text).
    pub fn comment_form(&self, video_id: i64, text: &str) -> Vec<(&'static str, String)> {
        self.with(&[
            ("video_id", video_id.to_string()),
            ("action_type", "1".into()),
            ("comment_text", text.into()),
        ])
    }

    /// `params` plus this user's token.
    pub fn with(&self, params: &[(&'static str, String)]) -> Vec<(&'static str, String)> {
        let mut all = vec![("token", self.token.clone())];
        all.extend_from_slice(params);
        all
    }
}

/// Assert `status_code == 0`.
pub fn assert_ok(body: &Value, what: &str) {
    assert_eq!(body["status_code"], 0, "{what} failed: {body}");
}

/// Assert a failure envelope: `status_code != 0` and a non-empty `status_msg`.
pub fn assert_refused(body: &Value, what: &str) {
    let code = body["status_code"]
        .as_i64()
        .unwrap_or_else(|| panic!("{what}: not an envelope: {body}"));
    assert_ne!(code, 0, "{what} should have been refused: {body}");
    let msg = body["status_msg"].as_str().unwrap_or_default();
    assert!(
        !msg.is_empty(),
        "{what}: refusal without a status_msg: {body}"
    );
}

/// A JSON array field, asserting it is an array (never null).
pub fn list(body: &Value, field: &str) -> Vec<Value> {
    body[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} must be an array: {body}"))
        .clone()
}

/// Ids of a list of objects.
pub fn ids(items: &[Value]) -> Vec<i64> {
    items
        .iter()
        .map(|v| v["id"].as_i64().expect("id"))
        .collect()
}

impl TestApp {
    /// POST `form` to `path` and assert a clear refusal: HTTP 200, `status_code != 0`, and a
    /// `status_msg` containing `expect` (case-insensitive). Returns the body.
    pub async fn refused_post(&self, path: &str, form: &[(&str, String)], expect: &str) -> Value {
        let (status, body) = self.post_raw(path, form).await;
        check_refusal(status, &body, path, expect);
        body
    }

    /// GET variant of [`TestApp::refused_post`].
    pub async fn refused_get(&self, path: &str, query: &[(&str, String)], expect: &str) -> Value {
        let (status, body) = self.get_raw(path, query).await;
        check_refusal(status, &body, path, expect);
        body
    }

    /// A token signed with this server's own secret, for any user id and expiry (epoch seconds).
    pub fn sign_token(&self, user_id: i64, exp: u64) -> String {
        let secret = std::fs::read(self.data_dir.join("token-secret")).expect("token secret");
        sign(&secret, user_id, exp)
    }
}

/// An HS256 token with the server's claim layout.
pub fn sign(secret: &[u8], user_id: i64, exp: u64) -> String {
    let claims = serde_json::json!({ "uid": user_id, "iat": 0, "exp": exp });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("sign")
}

fn check_refusal(status: u16, body: &Value, path: &str, expect: &str) {
    assert_eq!(
        status, 200,
        "{path}: business refusals are HTTP 200 with an envelope, got {status}: {body}"
    );
    assert_refused(body, path);
    let msg = body["status_msg"]
        .as_str()
        .unwrap_or_default()
        .to_lowercase();
    assert!(
        msg.contains(&expect.to_lowercase()),
        "{path}: status_msg {msg:?} should mention {expect:?}"
    );
}
