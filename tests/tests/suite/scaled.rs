//! Past one machine, on the engines themselves: a Redis Cluster that fails a master
//! over while the system serves, and MySQL read replicas — one stopped on purpose, one that does
//! not exist — serving reads that still see every acknowledged write. Real services only (the
//! cluster is private to its test; the replicas are scripts/services.sh's primary + 2 replicas).

use std::collections::HashMap;
use std::time::Duration;

use titok_adapters::redis_store::{self, RedisCounters};
use titok_ports::counters::{Counters, UserCounts, Versioned};
use titok_tests::*;

const FAVORITES: &str = "/douyin/favorite/list/";

/// Like or unlike, then read the liker's favorite list at once: whether the read showed the
/// write, whether it was marked stale, and which pool served it (`x-titok-read-from`).
async fn like_then_read(
    app: &TestApp,
    user: &User,
    video: i64,
    like: bool,
) -> (bool, bool, String) {
    app.like(user, video, if like { 1 } else { 2 }).await;
    let (status, headers, body) = app
        .get_full(FAVORITES, &user.with(&[("user_id", user.id.to_string())]))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ok(&body, "favorite list");
    let listed = ids(&list(&body, "video_list")).contains(&video);
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    (
        listed == like,
        header("x-titok-stale") == "true",
        header("x-titok-read-from"),
    )
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn a_redis_cluster_spreads_the_keys_holds_the_login_quota_and_survives_a_master_failover() {
    needs_real_services!();
    let mut cluster = RedisCluster::start().await;
    let app = TestApp::start_with(
        &["--no-sample", "--login-attempts-per-user", "3"],
        &[("--redis-url", cluster.url())],
    )
    .await;
    let ns = app.arg("--namespace").expect("namespace").to_owned();
    let author = app.register("author", "password1").await;
    let fan = app.register("fan", "password1").await;
    let video = app.publish(&author, "clustered").await;
    app.follow(&fan, author.id, 1).await;
    app.send_message(&fan, author.id, "hello").await;
    for round in 0..20 {
        let (right, stale, _) = like_then_read(&app, &fan, video, round % 2 == 0).await;
        assert!(
            right && !stale,
            "round {round}: read-after-write on the cluster"
        );
    }

    // Counters and positions are spread over the masters, not one hot node.
    let holding: Vec<u16> = cluster
        .masters()
        .into_iter()
        .filter(|port| !cluster.keys_on(*port, &format!("{ns}:*")).is_empty())
        .collect();
    assert!(
        holding.len() >= 2,
        "keys of {ns} on {} master(s) only",
        holding.len()
    );

    // The login quota lives in the cluster: the fourth attempt within the minute is refused.
    app.assert_nth_login_throttled("fan", 4).await;
    let quota_keys: usize = cluster
        .masters()
        .into_iter()
        .map(|port| {
            cluster
                .keys_on(port, &format!("{ns}:limit:login:u:fan"))
                .len()
        })
        .sum();
    assert_eq!(quota_keys, 1, "the username's quota key in the cluster");

    // Every call so far worked: no script or pipeline spanned slots (CROSSSLOT), nothing timed out.
    let metrics = app.get_text("/metrics").await;
    assert_eq!(
        metric(&metrics, "titok_redis_errors_total", &[]),
        0.0,
        "Redis calls failed on the cluster before any failover"
    );

    // Fail over the master holding the favorites' applied positions, while likes go on.
    let key = format!("{ns}:applied:titok.favorites");
    let victim = cluster
        .masters()
        .into_iter()
        .find(|port| !cluster.keys_on(*port, &key).is_empty())
        .expect("a master holds the positions");
    cluster.kill(victim);
    let mut liked = false;
    let failing_over = tokio::time::Instant::now();
    let mut acked_while_failing_over = 0;
    while failing_over.elapsed() < Duration::from_secs(4) {
        liked = !liked;
        app.like(&fan, video, if liked { 1 } else { 2 }).await;
        acked_while_failing_over += 1;
    }
    cluster.wait_healthy().await;
    assert!(
        !cluster.masters().contains(&victim),
        "a replica took over from the killed master"
    );
    // Reads are exact and fresh again once the replica took over (stale-marked before, at worst).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut fresh_in_a_row = 0;
    while fresh_in_a_row < 30 {
        liked = !liked;
        let (right, stale, _) = like_then_read(&app, &fan, video, liked).await;
        if right && !stale {
            fresh_in_a_row += 1;
        } else {
            assert!(
                stale,
                "a wrong answer must be marked stale (acked {acked_while_failing_over} during the failover)"
            );
            fresh_in_a_row = 0;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reads did not become fresh within 20 s of the failover"
        );
    }
    let info = app.user_info(&author, author.id).await;
    assert_eq!(info["total_favorited"], i64::from(liked), "{info}");
    assert_eq!(info["follower_count"], 1, "{info}");
    assert_eq!(app.chat(&author, fan.id, 0).await.len(), 1);

    // Clearing the cache (a rebuild's swap) reaches every master of the cluster.
    let counters = RedisCounters::new(
        redis_store::connect(&cluster.url()).await.expect("cluster"),
        "clearing",
    );
    let rows: Vec<(i64, Versioned<UserCounts>)> = (0..64)
        .map(|id| {
            (
                id,
                Versioned {
                    version: 1,
                    value: UserCounts::default(),
                },
            )
        })
        .collect();
    counters.put_users(&rows).await.expect("put");
    let cached = |cluster: &RedisCluster| -> usize {
        cluster
            .masters()
            .into_iter()
            .map(|port| cluster.keys_on(port, "clearing:*").len())
            .sum()
    };
    assert_eq!(cached(&cluster), 64);
    counters.clear().await.expect("clear");
    assert_eq!(cached(&cluster), 0, "keys left after clear()");
}

/// The URL of `base` (a server URL without database) for database `db`.
fn on_db(base: &str, db: &str) -> String {
    format!("{}/{db}", base.trim_end_matches('/'))
}

/// Run a statement on a replica (as the `titok` user, which may steer replication).
async fn on_replica(url: &str, sql: &str) {
    let pool = titok_adapters::store::mysql_replica(url, 1).expect("pool");
    sqlx::query(sql)
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{sql} on {url}: {e}"));
    pool.close().await;
}

#[tokio::test]
#[ignore = "needs Kafka, MySQL and Redis: scripts/test runs it in its real-service pass"]
async fn read_replicas_serve_only_reads_they_can_answer_fresh_and_a_stopped_replica_is_passed_over()
{
    needs_real_services!();
    let primary = std::env::var("TITOK_TEST_MYSQL_PRIMARY_URL").expect("scripts/services.sh");
    let replicas: Vec<String> = std::env::var("TITOK_TEST_MYSQL_REPLICA_URLS")
        .expect("scripts/services.sh")
        .split(',')
        .map(str::to_owned)
        .collect();
    assert_eq!(replicas.len(), 2);
    let db = format!(
        "repl_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_millis()
    );
    let dead = format!("mysql://titok:titok@127.0.0.1:{}/{db}", free_port());
    let r1 = on_db(&replicas[0], &db);
    let r2 = on_db(&replicas[1], &db);
    let name = |url: &str| {
        url.split('@')
            .nth(1)
            .and_then(|h| h.split('/').next())
            .map(str::to_owned)
    };
    let (r1_name, r2_name) = (name(&r1).expect("host"), name(&r2).expect("host"));
    // A run that failed half way may have left replica 1 stopped: both replicate from here on.
    for replica in &replicas {
        on_replica(replica, "START SLAVE").await;
    }
    let app = TestApp::start_with(
        &[
            "--no-sample",
            "--mysql-read-url",
            &r1,
            "--mysql-read-url",
            &r2,
            "--mysql-read-url",
            &dead,
        ],
        &[("--mysql-url", on_db(&primary, &db))],
    )
    .await;
    let author = app.register("author", "password1").await;
    let fan = app.register("fan", "password1").await;
    let video = app.publish(&author, "replicated").await;

    // Both replicas serve reads, every read sees the write before it, none is stale.
    let started = std::time::Instant::now();
    let mut served: HashMap<String, usize> = HashMap::new();
    for round in 0..200 {
        let (right, stale, from) = like_then_read(&app, &fan, video, round % 2 == 0).await;
        assert!(right && !stale, "round {round} (read from {from})");
        *served.entry(from).or_default() += 1;
    }
    assert!(
        served.get(&r1_name).is_some_and(|n| *n > 0)
            && served.get(&r2_name).is_some_and(|n| *n > 0),
        "both replicas serve reads: {served:?}"
    );
    let dead_name = name(&dead).expect("host");
    assert!(
        !served.contains_key(&dead_name),
        "the unreachable replica served: {served:?}"
    );

    // Replica 1 stops applying: no read after a later write may come from it.
    on_replica(&r1, "STOP SLAVE SQL_THREAD").await;
    let mut stopped: HashMap<String, usize> = HashMap::new();
    for round in 0..100 {
        let (right, stale, from) = like_then_read(&app, &fan, video, round % 2 == 0).await;
        assert!(
            right && !stale,
            "round {round} with replica 1 stopped (read from {from})"
        );
        assert_ne!(
            from, r1_name,
            "round {round}: the stopped replica served a read it cannot answer"
        );
        *stopped.entry(from).or_default() += 1;
    }
    on_replica(&r1, "START SLAVE SQL_THREAD").await;
    // Caught up again, it serves again.
    let mut again = 0;
    for round in 0..200 {
        let (right, stale, from) = like_then_read(&app, &fan, video, round % 2 == 0).await;
        assert!(right && !stale, "round {round} after restarting replica 1");
        again += usize::from(from == r1_name);
    }
    assert!(
        again > 0,
        "replica 1 serves again once it caught up (stopped: {stopped:?})"
    );
    eprintln!(
        "reads served: {served:?}; with replica 1 stopped: {stopped:?}; replica 1 again: {again} of 200; {:?} per write + read",
        started.elapsed() / 500
    );
    let metrics = app.get_text("/metrics").await;
    assert!(
        metric(&metrics, "titok_replica_errors_total", &[]) >= 1.0,
        "the unreachable replica was noticed"
    );
}
