//! A server-sent events client for `/douyin/stream/`: opens a stream (with a token, and a
//! `Last-Event-ID` to resume), and reads its events one at a time with a deadline.

use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

use crate::TestApp;

/// One event of a stream.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub event: String,
    pub id: String,
    pub data: Value,
}

/// An open stream.
pub struct EventStream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
    /// The keep-alive comments seen so far.
    pub comments: usize,
}

impl EventStream {
    /// The next event, or `None` when none came within `within` (or the stream ended).
    pub async fn next_within(&mut self, within: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(event) = self.take_event() {
                return Some(event);
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await;
            match chunk {
                Ok(Some(Ok(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Some(Err(_)) | None) | Err(_) => return None,
            }
        }
    }

    /// The next event, asserting one came within 10 s.
    pub async fn next(&mut self) -> SseEvent {
        self.next_within(Duration::from_secs(10))
            .await
            .expect("an event within 10 s")
    }

    /// Whether the server ended the stream within `within` (after any events left in it).
    pub async fn ended_within(&mut self, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Ok(None) | Ok(Some(Err(_))) => return true,
                Ok(Some(Ok(_))) => {}
                Err(_) => return false,
            }
        }
    }

    /// One whole event frame from the buffer, comments skipped.
    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let normalized = self.buffer.replace("\r\n", "\n");
            let end = normalized.find("\n\n")?;
            let frame = normalized[..end].to_owned();
            self.buffer = normalized[end + 2..].to_owned();
            let (mut event, mut id, mut data) =
                (String::from("message"), String::new(), String::new());
            let mut fields = 0;
            for line in frame.lines() {
                if line.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let (name, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                fields += 1;
                match name {
                    "event" => event = value.to_owned(),
                    "id" => id = value.to_owned(),
                    "data" => {
                        if !data.is_empty() {
                            data.push('\n');
                        }
                        data.push_str(value);
                    }
                    _ => {}
                }
            }
            if fields == 0 {
                continue;
            }
            let data = serde_json::from_str(&data)
                .unwrap_or_else(|e| panic!("event {event}: data is not JSON ({e}): {data:?}"));
            return Some(SseEvent { event, id, data });
        }
    }
}

impl TestApp {
    /// GET `/douyin/stream/` at `url` (a whole URL: the balancer's or one instance's) with
    /// `query` and, if given, a `Last-Event-ID` header: the raw response.
    pub async fn stream_response(
        &self,
        url: &str,
        query: &[(&str, String)],
        last_event_id: Option<&str>,
    ) -> reqwest::Response {
        // No overall timeout: a stream lasts as long as the test reads it.
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .expect("client");
        let mut request = client.get(url).query(query);
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id);
        }
        request.send().await.expect("GET /douyin/stream/")
    }

    /// Open `token`'s stream (resuming after `last_event_id`), asserting it is an event stream.
    pub async fn stream_at(
        &self,
        url: &str,
        token: &str,
        last_event_id: Option<&str>,
    ) -> EventStream {
        let response = self
            .stream_response(url, &[("token", token.to_owned())], last_event_id)
            .await;
        let status = response.status();
        let kind = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        if !kind.starts_with("text/event-stream") {
            let body = response.text().await.unwrap_or_default();
            panic!("not an event stream: HTTP {status} {kind}: {body}");
        }
        EventStream {
            body: response.bytes_stream().boxed(),
            buffer: String::new(),
            comments: 0,
        }
    }

    /// Open `token`'s stream through the front door, asserting its first event is `ready`.
    pub async fn stream(&self, token: &str) -> (EventStream, SseEvent) {
        let mut stream = self
            .stream_at(&self.url("/douyin/stream/"), token, None)
            .await;
        let open = stream.next().await;
        assert_eq!(open.event, "ready", "{open:?}");
        (stream, open)
    }
}
