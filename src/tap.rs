//! `titok tap`: a read-only consumer of the event log for analytics and debugging.
//!
//! It reads in a consumer group of its own (`<namespace>.tap.<uuid>`), commits nothing and writes
//! nothing, so it can never move or slow the projectors' positions. Output is JSON lines on stdout:
//! each event as stored (`{"topic","partition","offset","key","event":{…}}`), or with
//! `--likes-top N` a rolling aggregate of likes per video per minute.

use std::collections::HashMap;
use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{json, Value};
use titok_events::{Envelope, EventBody, Topic};
use titok_ports::log::LogRecord;

use crate::backends::Access;
use crate::Config;

/// What to read and how to show it.
#[derive(Debug, Clone, clap::Args)]
pub struct TapArgs {
    /// Topic families to read (users, videos, favorites, comments, relations, messages); all by default.
    #[arg(long = "topic")]
    pub topics: Vec<String>,
    /// Only these event types (e.g. VideoLiked); all by default.
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Only events involving this user (as the actor or anywhere in the payload).
    #[arg(long)]
    pub user: Option<i64>,
    /// Start at the beginning of the log instead of at its end.
    #[arg(long)]
    pub from_beginning: bool,
    /// Instead of events, print every 5 s the N videos with the most net likes in the current minute.
    #[arg(long)]
    pub likes_top: Option<usize>,
    /// Stop after this many events.
    #[arg(long)]
    pub limit: Option<usize>,
    /// Stop once nothing new arrived for this many milliseconds after the log's end at start was
    /// reached (short of it: after 30 s without a record at least).
    #[arg(long)]
    pub idle_exit_ms: Option<u64>,
}

fn topics(args: &TapArgs) -> anyhow::Result<Vec<Topic>> {
    if args.topics.is_empty() {
        return Ok(Topic::ALL.to_vec());
    }
    args.topics
        .iter()
        .map(|t| {
            Topic::ALL
                .into_iter()
                .find(|topic| topic.name() == t || topic.name().trim_start_matches("titok.") == t)
                .with_context(|| format!("unknown topic {t:?}"))
        })
        .collect()
}

/// Whether `payload` names `user` in any of its user fields.
fn involves(event: &Envelope, payload: &Value, user: i64) -> bool {
    event.actor == user
        || payload.as_object().is_some_and(|fields| {
            fields.iter().any(|(name, value)| {
                name.ends_with("_id") && !name.starts_with("video") && value.as_i64() == Some(user)
            })
        })
}

/// Rolling likes per video per minute.
#[derive(Default)]
struct Likes {
    per_minute: HashMap<(i64, i64), i64>,
}

impl Likes {
    fn add(&mut self, event: &Envelope) {
        let minute = event.occurred_at.timestamp() / 60;
        let (video, delta) = match &event.body {
            EventBody::VideoLiked(f) => (f.video_id, 1),
            EventBody::VideoUnliked(f) => (f.video_id, -1),
            _ => return,
        };
        *self.per_minute.entry((minute, video)).or_default() += delta;
    }

    fn report(&mut self, top: usize) -> Option<Value> {
        let minute = self.per_minute.keys().map(|(m, _)| *m).max()?;
        self.per_minute.retain(|(m, _), _| *m >= minute - 60);
        let mut videos: Vec<(i64, i64)> = self
            .per_minute
            .iter()
            .filter(|((m, _), _)| *m == minute)
            .map(|((_, v), n)| (*v, *n))
            .collect();
        videos.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let top: Vec<Value> = videos
            .into_iter()
            .take(top)
            .map(|(v, n)| json!({"video_id": v, "likes": n}))
            .collect();
        let start = chrono::DateTime::from_timestamp(minute * 60, 0).map(|t| t.to_rfc3339());
        Some(json!({"minute": start, "top": top}))
    }
}

fn line(rec: &LogRecord, event: Value) -> Value {
    json!({"topic": rec.topic.name(), "partition": rec.partition, "offset": rec.offset, "key": rec.key, "event": event})
}

/// Whether `--idle-exit-ms` ends the tap: idle since the last record for `limit` once every
/// partition was read up to the end it had when the tap started (one topic's consumer may join
/// its group seconds after another's has gone quiet); short of that end, only after a stall of at
/// least 30 s (joining a consumer group on a broker can take seconds).
fn idle(last_record: Option<Instant>, started: Instant, limit: Duration, caught_up: bool) -> bool {
    let quiet = last_record.unwrap_or(started).elapsed();
    if caught_up {
        quiet >= limit
    } else {
        quiet >= limit.max(Duration::from_secs(30))
    }
}

/// Run the tap until `--limit`, `--idle-exit-ms`, or Ctrl-C.
pub async fn run(args: TapArgs, config: Config) -> anyhow::Result<()> {
    let log = crate::backends::open_log(&config, Access::ReadOnly).await?;
    let group = format!("{}.tap.{}", config.namespace, uuid::Uuid::now_v7());
    let mut consumers = Vec::new();
    // The end of every partition that was not empty at start: the tap has read the history it
    // was asked for once its position passed each.
    let mut to_reach: HashMap<(Topic, u32), i64> = HashMap::new();
    for topic in topics(&args)? {
        let partitions = log.partitions(topic) as usize;
        let start = if args.from_beginning {
            // "From the beginning" must mean the whole history: a log that lost its first
            // events (retention, deleted records) is an error, not a shorter answer.
            titok_projectors::continuity::check_start(log.as_ref(), topic, &vec![0; partitions])
                .await?;
            for end in log.end_offsets(&[topic]).await? {
                if end.offset > 0 {
                    to_reach.insert((topic, end.partition), end.offset);
                }
            }
            vec![0; partitions]
        } else {
            let mut start = vec![0; partitions];
            for end in log.end_offsets(&[topic]).await? {
                if let Some(slot) = start.get_mut(end.partition as usize) {
                    *slot = end.offset;
                }
            }
            start
        };
        // One group per topic: members of one group subscribing to different topics would make
        // every join rebalance the others.
        let group = format!("{group}.{}", topic.name().trim_start_matches("titok."));
        consumers.push(log.consumer(&group, topic, start).await?);
    }
    let stdout = std::io::stdout();
    let (mut seen, mut last_record, mut last_report) = (0usize, None::<Instant>, Instant::now());
    let started = Instant::now();
    let mut likes = Likes::default();
    // The next offset expected per (topic, partition): a record beyond it is a hole in the log.
    let mut expected: HashMap<(Topic, u32), i64> = HashMap::new();
    let stop = tokio::signal::ctrl_c();
    tokio::pin!(stop);
    loop {
        for consumer in &mut consumers {
            let batch = tokio::select! {
                batch = consumer.poll(1000, Duration::from_millis(100)) => batch?,
                _ = &mut stop => return Ok(()),
            };
            let mut out = stdout.lock();
            for rec in batch {
                let first = if args.from_beginning { 0 } else { rec.offset };
                let next = expected.entry((rec.topic, rec.partition)).or_insert(first);
                if rec.offset > *next {
                    anyhow::bail!(titok_projectors::continuity::LogGap::Hole {
                        topic: rec.topic,
                        partition: rec.partition,
                        from: *next,
                        to: rec.offset,
                    });
                }
                *next = (*next).max(rec.offset + 1);
                last_record = Some(Instant::now());
                let at = (rec.topic, rec.partition);
                if to_reach.get(&at).is_some_and(|end| *next >= *end) {
                    to_reach.remove(&at);
                }
                let Ok(event) = Envelope::decode(&rec.payload) else {
                    eprintln!(
                        "undecodable event at {}/{}@{}",
                        rec.topic, rec.partition, rec.offset
                    );
                    continue;
                };
                let raw: Value = serde_json::from_slice(&rec.payload).unwrap_or(Value::Null);
                if !args.types.is_empty() && !args.types.iter().any(|t| t == event.body.type_name())
                {
                    continue;
                }
                if args
                    .user
                    .is_some_and(|u| !involves(&event, &raw["payload"], u))
                {
                    continue;
                }
                seen += 1;
                if args.likes_top.is_some() {
                    likes.add(&event);
                } else {
                    writeln!(out, "{}", line(&rec, raw))?;
                }
                if args.limit.is_some_and(|l| seen >= l) {
                    break;
                }
            }
            out.flush()?;
        }
        let done = args.limit.is_some_and(|l| seen >= l)
            || args.idle_exit_ms.is_some_and(|ms| {
                let limit = Duration::from_millis(ms);
                idle(last_record, started, limit, to_reach.is_empty())
            });
        if let Some(top) = args.likes_top {
            if done || last_report.elapsed() >= Duration::from_secs(5) {
                last_report = Instant::now();
                if let Some(report) = likes.report(top) {
                    let mut out = stdout.lock();
                    writeln!(out, "{report}")?;
                    out.flush()?;
                }
            }
        }
        if done {
            return Ok(());
        }
    }
}
