//! The feed index's paging, coverage, parking and bound.

use super::*;
use titok_events::VideoPublished;

fn index(partitions: usize, capacity: usize) -> FeedIndex {
    FeedIndex::of(Inner {
        capacity,
        videos: BTreeMap::new(),
        ids: HashSet::new(),
        covered: vec![0; partitions],
        floor: None,
        parked: HashSet::new(),
        broken: false,
        bytes: 0,
    })
}

fn published(id: i64, ms: i64) -> Vec<u8> {
    Envelope::new(
        1,
        EventBody::VideoPublished(VideoPublished {
            video_id: id,
            author_id: 1,
            title: format!("v{id}"),
            play_path: format!("videos/{id}.mp4"),
            cover_path: format!("covers/{id}.png"),
            published_at_ms: ms,
            content_type: "video/mp4".into(),
            size_bytes: Some(1),
        }),
    )
    .encode()
}

/// Records of partition 0 from offset `first`, each `(video id, publish ms)`.
fn records(first: i64, videos: &[(i64, i64)]) -> Vec<LogRecord> {
    videos
        .iter()
        .zip(first..)
        .map(|(&(id, ms), offset)| LogRecord {
            topic: Topic::Videos,
            partition: 0,
            offset,
            key: id.to_string(),
            payload: published(id, ms),
        })
        .collect()
}

fn ids(page: Option<Vec<VideoRow>>) -> Option<Vec<i64>> {
    page.map(|rows| rows.iter().map(|r| r.id).collect())
}

#[test]
fn pages_are_newest_first_and_never_end_inside_a_shared_millisecond() {
    let feed = index(1, 100);
    assert_eq!(ids(feed.page(i64::MAX, 3)), Some(vec![]), "empty");
    // ms 10: 1, 2; ms 9: 3, 4, 5; ms 8: 6; ms 7: 7, 8, 9, 10.
    let videos = [(1, 10), (2, 10), (3, 9), (4, 9), (5, 9), (6, 8)];
    let more = [(7, 7), (8, 7), (9, 7), (10, 7)];
    assert!(feed.fold(&records(0, &videos)));
    assert!(feed.fold(&records(6, &more)));
    // The fourth video shares ms 9 with the third: the page stops before ms 9.
    assert_eq!(ids(feed.page(i64::MAX, 3)), Some(vec![2, 1]));
    assert_eq!(ids(feed.page(10, 3)), Some(vec![5, 4, 3]));
    assert_eq!(ids(feed.page(9, 3)), Some(vec![6]));
    // A millisecond holding more than a page is served whole.
    assert_eq!(ids(feed.page(8, 3)), Some(vec![10, 9, 8, 7]));
    assert_eq!(ids(feed.page(7, 3)), Some(vec![]));
}

#[test]
fn coverage_follows_the_folded_offsets_and_a_gap_stops_the_index() {
    let feed = index(2, 100);
    let at = |partition, offset| Position {
        topic: Topic::Videos,
        partition,
        offset,
    };
    let other = Position {
        topic: Topic::Users,
        partition: 0,
        offset: 99,
    };
    assert!(feed.covers(&[at(0, 0), at(1, 0), other]));
    assert!(!feed.covers(&[at(0, 2)]));
    assert!(feed.fold(&records(0, &[(1, 10), (2, 11)])));
    assert!(feed.covers(&[at(0, 2), at(1, 0)]));
    assert!(!feed.covers(&[at(1, 1)]));
    // Delivered again: no change; the same id twice: the first wins.
    assert!(feed.fold(&records(0, &[(1, 10), (2, 11), (1, 50)])));
    assert_eq!(ids(feed.page(i64::MAX, 30)), Some(vec![2, 1]));
    // A gap: the index answers nothing any more.
    assert!(!feed.fold(&records(5, &[(3, 12)])));
    assert!(!feed.covers(&[at(0, 2)]));
    assert_eq!(ids(feed.page(i64::MAX, 30)), None);
}

#[test]
fn an_undecodable_record_parks_its_key_as_the_projection_does() {
    let feed = index(1, 100);
    let mut recs = records(0, &[(1, 10), (2, 11), (3, 12)]);
    recs[1].payload = b"not an event".to_vec();
    recs[2].key = recs[1].key.clone();
    assert!(feed.fold(&recs));
    assert_eq!(ids(feed.page(i64::MAX, 30)), Some(vec![1]));
    assert!(feed.covers(&[Position {
        topic: Topic::Videos,
        partition: 0,
        offset: 3
    }]));
}

#[test]
fn a_full_index_answers_only_above_what_it_dropped() {
    let feed = index(1, 4);
    let videos: Vec<(i64, i64)> = (1..=6).map(|i| (i, i * 10)).collect();
    assert!(feed.fold(&records(0, &videos)));
    assert_eq!(feed.len(), 4, "bounded");
    assert_eq!(ids(feed.page(i64::MAX, 2)), Some(vec![6, 5]));
    assert_eq!(ids(feed.page(50, 2)), Some(vec![4, 3]));
    // Videos 1 and 2 were dropped: SQL answers from here (and for late arrivals below).
    assert_eq!(ids(feed.page(30, 2)), None);
    assert!(feed.fold(&records(6, &[(7, 15)])));
    assert_eq!(feed.len(), 4);
    assert_eq!(
        ids(feed.page(i64::MAX, 30)),
        None,
        "a page reaching the dropped ones"
    );
}
