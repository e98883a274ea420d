//! Property test of the batch fold: random event sequences — likes and unlikes, follows and
//! unfollows, comments and deletions (some by the wrong user), messages in the same millisecond,
//! duplicates, registrations and publications, and poison records — folded through the real
//! [`Folder`] (decode, park, batch fold) into SQLite in batches of every size give exactly the
//! tables, counters, versions and parked records of an independent in-memory model of the rules
//! (the tests' one model, `titok-model`, which the chaos suite folds the log with too).

use std::collections::{BTreeMap, HashSet};

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use sqlx::{AnyConnection, Connection};
use titok_events::{
    partition_for, CommentAdded, CommentDeleted, Envelope, EventBody, Favorite, Follow,
    MessageSent, Topic, UserRegistered, VideoPublished,
};
use titok_model::{Fold, Views};
use titok_ports::log::LogRecord;
use titok_views::fold::Touched;
use titok_views::{Dialect, Tables, ViewTable};

use crate::folder::Folder;

/// One generated log entry: an event, or garbage on a topic under some event's key.
#[derive(Debug, Clone)]
enum Item {
    Event(EventBody, i64),
    Poison(Topic, String),
}

fn id(n: i64) -> std::ops::RangeInclusive<i64> {
    1..=n
}

fn event() -> impl Strategy<Value = EventBody> {
    let pair = (id(5), id(5)).prop_filter("no self-relation", |(a, b)| a != b);
    prop_oneof![
        1 => id(5).prop_map(|u| EventBody::UserRegistered(UserRegistered {
            user_id: u,
            username: format!("user{u}"),
        })),
        1 => (id(4), id(5), 0..3i64).prop_map(|(v, a, t)| EventBody::VideoPublished(VideoPublished {
            video_id: v,
            author_id: a,
            title: format!("video {v} by {a}"),
            play_path: format!("p{v}.mp4"),
            cover_path: format!("c{v}.png"),
            published_at_ms: 1_000 + t,
            content_type: "video/mp4".into(),
            size_bytes: None,
        })),
        3 => (id(5), id(4), id(5), any::<bool>()).prop_map(|(u, v, a, like)| {
            let f = Favorite { user_id: u, video_id: v, author_id: a };
            if like { EventBody::VideoLiked(f) } else { EventBody::VideoUnliked(f) }
        }),
        3 => (pair.clone(), any::<bool>()).prop_map(|((a, b), follow)| {
            let f = Follow { follower_id: a, followee_id: b };
            if follow { EventBody::UserFollowed(f) } else { EventBody::UserUnfollowed(f) }
        }),
        2 => (id(6), id(3), id(5), 0..3i64).prop_map(|(c, v, u, t)| EventBody::CommentAdded(CommentAdded {
            comment_id: c,
            video_id: v,
            user_id: u,
            content: format!("comment {c} by {u}"),
            created_at_ms: 2_000 + t,
        })),
        1 => (id(6), id(3), id(5)).prop_map(|(c, v, u)| EventBody::CommentDeleted(CommentDeleted {
            comment_id: c,
            video_id: v,
            user_id: u,
        })),
        2 => (id(8), pair, 0..3i64).prop_map(|(m, (a, b), t)| EventBody::MessageSent(MessageSent {
            message_id: m,
            from_user_id: a,
            to_user_id: b,
            content: format!("message {m}"),
            created_at_ms: 3_000 + t,
        })),
    ]
}

fn items() -> impl Strategy<Value = Vec<Item>> {
    let item = prop_oneof![
        12 => (event(), 0..4i64).prop_map(|(e, t)| Item::Event(e, 10_000 + t)),
        1 => (0..6usize, id(5)).prop_map(|(topic, k)| Item::Poison(Topic::ALL[topic], k.to_string())),
    ];
    proptest::collection::vec(item, 0..60)
}

/// What the view tables and `parked_events` hold.
async fn read_views(conn: &mut AnyConnection) -> Views {
    async fn rows<T>(conn: &mut AnyConnection, sql: &str) -> Vec<T>
    where
        T: for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + Send + Unpin,
    {
        sqlx::query_as(sql).fetch_all(conn).await.expect(sql)
    }
    let mut v = Views::default();
    for (id, name, at) in
        rows::<(i64, String, i64)>(conn, "SELECT id, name, created_ms FROM users").await
    {
        v.users.insert(id, (name, at));
    }
    for (id, a, b, c, d, e, ver) in rows::<(i64, i64, i64, i64, i64, i64, i64)>(
        conn,
        "SELECT user_id, follow_count, follower_count, total_favorited, work_count, favorite_count, version FROM user_stats",
    )
    .await
    {
        v.user_stats.insert(id, [a, b, c, d, e, ver]);
    }
    for (id, f, c, ver) in rows::<(i64, i64, i64, i64)>(
        conn,
        "SELECT video_id, favorite_count, comment_count, version FROM video_stats",
    )
    .await
    {
        v.video_stats.insert(id, [f, c, ver]);
    }
    for (id, author, title, at) in rows::<(i64, i64, String, i64)>(
        conn,
        "SELECT id, author_id, title, published_ms FROM videos",
    )
    .await
    {
        v.videos.insert(id, (author, title, at));
    }
    for (table, map) in [
        (
            "SELECT user_id, video_id, liked_ms FROM favorites",
            &mut v.favorites,
        ),
        (
            "SELECT follower_id, followee_id, created_ms FROM follows",
            &mut v.follows,
        ),
        (
            "SELECT user_id, friend_id, since_ms FROM friends",
            &mut v.friends,
        ),
    ] {
        for (a, b, at) in rows::<(i64, i64, i64)>(conn, table).await {
            map.insert((a, b), at);
        }
    }
    for (id, video, user, content, at) in rows::<(i64, i64, i64, String, i64)>(
        conn,
        "SELECT id, video_id, user_id, content, created_ms FROM comments",
    )
    .await
    {
        v.comments.insert(id, (video, user, content, at));
    }
    for (id, lo, hi, from, to, content, at) in rows::<(i64, i64, i64, i64, i64, String, i64)>(
        conn,
        "SELECT id, pair_lo, pair_hi, from_user_id, to_user_id, content, created_ms FROM messages",
    )
    .await
    {
        v.messages.insert(id, (lo, hi, from, to, content, at));
    }
    for (lo, hi, id, from, content, at) in rows::<(i64, i64, i64, i64, String, i64)>(
        conn,
        "SELECT pair_lo, pair_hi, message_id, from_user_id, content, created_ms FROM latest_messages",
    )
    .await
    {
        v.latest.insert((lo, hi), (id, from, content, at));
    }
    for (topic, part, offset) in
        rows::<(String, i64, i64)>(conn, "SELECT topic, part, log_offset FROM parked_events").await
    {
        v.parked.insert((topic, part, offset));
    }
    v
}

const PARTITIONS: u32 = 2;

/// The items as log records, per topic in log order.
fn records(items: &[Item]) -> Vec<LogRecord> {
    let mut next = BTreeMap::new();
    let mut out = Vec::new();
    for item in items {
        let (topic, key, payload) = match item {
            Item::Event(body, at) => {
                let mut e = Envelope::new(1, body.clone());
                e.occurred_at = Utc.timestamp_millis_opt(*at).single().expect("time");
                (e.topic(), e.key(), e.encode())
            }
            Item::Poison(topic, key) => (*topic, key.clone(), b"{not an event".to_vec()),
        };
        let partition = partition_for(&key, PARTITIONS);
        let offset = next.entry((topic, partition)).or_insert(0);
        out.push(LogRecord {
            topic,
            partition,
            offset: *offset,
            key,
            payload,
        });
        *offset += 1;
    }
    out
}

/// The model ([`titok_model::Fold`]): events in order, except poison records and every later
/// record of their key (per topic) are parked.
fn model(items: &[Item], records: &[LogRecord]) -> Views {
    let mut fold = Fold::default();
    for (item, rec) in items.iter().zip(records) {
        let event = match item {
            Item::Event(body, at) => Some((body, *at)),
            Item::Poison(..) => None,
        };
        fold.record(rec.topic, rec.partition, rec.offset, &rec.key, event);
    }
    fold.views
}

async fn fresh_db() -> AnyConnection {
    sqlx::any::install_default_drivers();
    let mut conn = AnyConnection::connect("sqlite::memory:")
        .await
        .expect("sqlite");
    for table in ViewTable::ALL {
        for statement in table.create(false, table.name()) {
            sqlx::query(&statement)
                .execute(&mut conn)
                .await
                .expect("ddl");
        }
    }
    sqlx::query(
        "CREATE TABLE parked_events (projection TEXT, topic TEXT, part INTEGER, log_offset INTEGER, \
         event_key TEXT, reason TEXT, payload BLOB, parked_ms INTEGER)",
    )
    .execute(&mut conn)
    .await
    .expect("parked");
    conn
}

/// Fold the records topic by topic through [`Folder`]s, `size` records per transaction.
async fn fold_in_batches(records: &[LogRecord], size: usize) -> Views {
    let mut conn = fresh_db().await;
    for topic in Topic::ALL {
        let mut folder = Folder::new(topic, Tables::live(Dialect::Sqlite));
        let mine: Vec<&LogRecord> = records.iter().filter(|r| r.topic == topic).collect();
        for chunk in mine.chunks(size.max(1)) {
            let mut tx = conn.begin().await.expect("begin");
            let mut parked = HashSet::new();
            folder
                .fold_records(&mut tx, chunk, &mut Touched::default(), &mut parked)
                .await
                .expect("fold");
            tx.commit().await.expect("commit");
            folder.parked_keys.extend(parked);
        }
    }
    read_views(&mut conn).await
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn batches_of_every_size_fold_like_the_model(items in items(), size in 2..20usize) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
        let records = records(&items);
        let expected = model(&items, &records);
        for n in [1, size, items.len().max(1)] {
            let got = runtime.block_on(fold_in_batches(&records, n));
            prop_assert_eq!(&got, &expected, "batches of {}", n);
        }
    }
}

#[test]
fn the_model_is_not_trivially_empty() {
    // A fixed sequence exercising every rule once, so a fold that wrote nothing cannot pass.
    let at = 10_000;
    let items = vec![
        Item::Event(
            EventBody::UserFollowed(Follow {
                follower_id: 1,
                followee_id: 2,
            }),
            at,
        ),
        Item::Event(
            EventBody::UserFollowed(Follow {
                follower_id: 2,
                followee_id: 1,
            }),
            at + 1,
        ),
        Item::Event(
            EventBody::VideoLiked(Favorite {
                user_id: 1,
                video_id: 3,
                author_id: 2,
            }),
            at,
        ),
        Item::Event(
            EventBody::MessageSent(MessageSent {
                message_id: 1,
                from_user_id: 1,
                to_user_id: 2,
                content: "a".into(),
                created_at_ms: 5,
            }),
            at,
        ),
        Item::Event(
            EventBody::MessageSent(MessageSent {
                message_id: 2,
                from_user_id: 2,
                to_user_id: 1,
                content: "b".into(),
                created_at_ms: 5,
            }),
            at,
        ),
    ];
    let records = records(&items);
    let views = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt")
        .block_on(fold_in_batches(&records, 5));
    assert_eq!(views, model(&items, &records));
    assert_eq!(views.friends.len(), 2);
    assert_eq!(views.user_stats[&2], [1, 1, 1, 0, 0, 3]);
    assert_eq!(
        views.latest[&(1, 2)].3,
        6,
        "same millisecond: the second is one later"
    );
}
