//! The hub's bookkeeping without a log: resume, reset, caps, slow clients.

use super::*;

const LIMITS: StreamLimits = StreamLimits {
    max_streams: 10,
    per_user: 3,
    buffer: 16,
    replay: 100,
};

fn state(slots: usize) -> State {
    State {
        pending: (0..slots).map(|_| VecDeque::new()).collect(),
        consumed: vec![0; slots],
        released: vec![0; slots],
        low: vec![0; slots],
        ..State::default()
    }
}

fn at(offset: i64) -> Pending {
    Pending {
        offset,
        event: None,
        gap: false,
    }
}

fn to(users: &[i64], n: i64) -> Option<items::Pushed> {
    Some(items::Pushed {
        users: users.to_vec(),
        kind: "message",
        data: format!("{{\"n\":{n}}}"),
    })
}

/// Release one event for `users` at (`slot`, `offset`); its data is `{"n":offset}`.
fn release(state: &mut State, slot: usize, offset: i64, users: &[i64], replay: usize) {
    state.publish(vec![(slot, at(offset))], vec![to(users, offset)], replay);
}

fn data(items: &[Arc<Item>]) -> Vec<String> {
    items.iter().map(|i| i.pushed.data.clone()).collect()
}

#[test]
fn a_resume_replays_what_came_after_its_cursor_once_in_order() {
    let mut s = state(2);
    release(&mut s, 0, 0, &[1, 2], 100);
    release(&mut s, 1, 0, &[2], 100);
    release(&mut s, 0, 1, &[1], 100);
    // The client of user 1 had the first event: its id is the cursor after it.
    let had = s.ring[0].cursor.to_vec();
    assert_eq!(had, vec![1, 0]);
    release(&mut s, 1, 1, &[1], 100);
    release(&mut s, 0, 2, &[3], 100);
    let (cursor, reset, replay, mut live, _) = s
        .open(1, Some(had.clone()), vec![3, 2], LIMITS)
        .expect("open");
    assert_eq!((cursor, reset), (had, None));
    assert_eq!(data(&replay), ["{\"n\":1}", "{\"n\":1}"]);
    assert_eq!((replay[0].slot, replay[1].slot), (0, 1));
    // What follows comes live, once.
    release(&mut s, 1, 2, &[1], 100);
    assert_eq!(live.try_recv().expect("live").pushed.data, "{\"n\":2}");
    assert!(live.try_recv().is_err());
}

#[test]
fn a_new_stream_starts_at_the_end_and_replays_nothing() {
    let mut s = state(1);
    release(&mut s, 0, 0, &[1], 100);
    let (cursor, reset, replay, _, _) = s.open(1, None, vec![1], LIMITS).expect("open");
    assert_eq!((cursor, reset, replay.len()), (vec![1], None, 0));
}

#[test]
fn events_a_client_had_from_another_instance_are_not_sent_again() {
    let mut s = state(1);
    // This instance has released nothing yet; the client already has offsets 0 and 1.
    let (_, reset, replay, mut live, _) = s.open(1, Some(vec![2]), vec![3], LIMITS).expect("open");
    assert_eq!((reset, replay.len()), (None, 0));
    release(&mut s, 0, 0, &[1], 100);
    release(&mut s, 0, 1, &[1], 100);
    release(&mut s, 0, 2, &[1], 100);
    assert_eq!(live.try_recv().expect("live").offset, 2);
    assert!(live.try_recv().is_err());
}

#[test]
fn a_resume_point_the_ring_no_longer_reaches_is_reset_as_is_one_ahead_of_the_log() {
    let mut s = state(1);
    for offset in 0..5 {
        release(&mut s, 0, offset, &[1], 2);
    }
    assert_eq!(s.ring.len(), 2);
    assert_eq!(s.low, vec![3]);
    let (cursor, reset, replay, _, _) = s.open(1, Some(vec![1]), vec![5], LIMITS).expect("open");
    assert_eq!(cursor, vec![5], "a reset goes on from the end");
    assert!(reset.expect("reset").contains("no longer held"));
    assert!(replay.is_empty());
    let (_, reset, replay, _, _) = s.open(1, Some(vec![3]), vec![5], LIMITS).expect("open");
    assert_eq!(
        (reset, replay.len()),
        (None, 2),
        "the ring still reaches offset 3"
    );
    let (_, reset, _, _, _) = s.open(1, Some(vec![9]), vec![5], LIMITS).expect("open");
    assert!(reset.expect("reset").contains("ahead"));
}

#[test]
fn a_full_buffer_ends_the_stream_and_frees_its_place() {
    let mut s = state(1);
    let limits = StreamLimits {
        buffer: 2,
        ..LIMITS
    };
    let (_, _, _, mut live, _) = s.open(1, None, vec![0], limits).expect("open");
    for offset in 0..3 {
        release(&mut s, 0, offset, &[1], 100);
    }
    assert_eq!(s.open, 0);
    assert!(s.subscribers.is_empty());
    assert_eq!(live.try_recv().expect("first").offset, 0);
    assert_eq!(live.try_recv().expect("second").offset, 1);
    assert!(matches!(
        live.try_recv(),
        Err(mpsc::error::TryRecvError::Disconnected)
    ));
}

#[test]
fn streams_are_capped_per_user_and_per_server_and_removal_frees_them() {
    let mut s = state(1);
    let limits = StreamLimits {
        max_streams: 3,
        per_user: 2,
        ..LIMITS
    };
    let (.., a) = s.open(1, None, vec![0], limits).expect("first");
    s.open(1, None, vec![0], limits).expect("second");
    assert!(matches!(
        s.open(1, None, vec![0], limits),
        Err(ApiError::TooManyRequests(_))
    ));
    s.open(2, None, vec![0], limits).expect("another user");
    assert!(matches!(
        s.open(3, None, vec![0], limits),
        Err(ApiError::Busy(_))
    ));
    s.remove(1, a);
    assert_eq!(s.open, 2);
    s.open(3, None, vec![0], limits).expect("a freed place");
}

#[test]
fn a_gap_in_the_log_resets_every_open_stream() {
    let mut s = state(1);
    let (_, _, _, mut live, _) = s.open(7, None, vec![0], LIMITS).expect("open");
    let gap = Pending {
        offset: 5,
        event: None,
        gap: true,
    };
    s.publish(vec![(0, gap)], vec![None], 100);
    let item = live.try_recv().expect("reset");
    assert_eq!(item.pushed.kind, "reset");
    assert_eq!(&*item.cursor, &[5], "it goes on from the gap");
    assert_eq!(s.low, vec![5]);
}
