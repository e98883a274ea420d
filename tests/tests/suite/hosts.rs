//! The roles on separate hosts (scripts/test pass 4, `TITOK_TEST_TOPOLOGY=hosts`): every role in
//! a network namespace of its own made by `scripts/hosts.sh`, each process with its own data dir,
//! the services (MariaDB, Redis, the broker, S3) on a services host with one address each, the
//! test process and haproxy on a client host. The same pass runs the black-box suites there; these
//! tests add what only separate hosts can show: a video published on the command host plays from
//! a query host with no disk in common, and the network between two hosts cut and restored under
//! load.
//!
//! The cuts reach every process on the hosts, so `scripts/test` runs this module on its own, one
//! test at a time, after the suites.
//!
//! A cut is a pair of policy-routing rules (`ip rule … blackhole`), one on each side: packets from
//! one host to one address of the other go nowhere, while both hosts keep every other link — so
//! "the command host cannot reach the broker" leaves it talking to Redis and MySQL, which a link
//! taken down would not. New connections across a cut fail at once; established ones stall until
//! it heals (no packet is refused, they are lost).

use std::time::Duration;

use serde_json::Value;
use titok_tests::*;

fn needs_hosts() {
    assert_eq!(
        Topology::of_this_run(),
        Topology::Hosts,
        "this test needs the hosts topology (TITOK_TEST_TOPOLOGY=hosts); scripts/test runs it in its fourth pass"
    );
}

/// The services host's address of each service (scripts/hosts.sh).
const MYSQL: &str = "10.77.0.2";
const REDIS: &str = "10.77.0.3";
const BROKER: &str = "10.77.0.4";
const S3: &str = "10.77.0.5";
const SERVICES: &str = "titok-services";

/// A cut between one host and one address of another, both ways; healed when dropped.
struct Cut {
    /// `(namespace, rule selector)` of each side.
    rules: Vec<(&'static str, Vec<String>)>,
}

fn ip_rule(netns: &str, verb: &str, selector: &[String]) -> bool {
    std::process::Command::new("ip")
        .args(["-n", netns, "rule", verb])
        .args(selector)
        .arg("blackhole")
        .status()
        .is_ok_and(|s| s.success())
}

impl Cut {
    /// Cut host `(namespace, address)` `a` from address `b_ip` of host `b_ns`.
    fn between(a: (&'static str, &'static str), b_ns: &'static str, b_ip: &str) -> Cut {
        let rules = vec![
            (a.0, vec!["to".to_owned(), format!("{b_ip}/32")]),
            (
                b_ns,
                vec![
                    "from".to_owned(),
                    format!("{b_ip}/32"),
                    "to".to_owned(),
                    format!("{}/32", a.1),
                ],
            ),
        ];
        for (netns, selector) in &rules {
            assert!(
                ip_rule(netns, "add", selector),
                "cannot cut {netns} {selector:?}"
            );
        }
        Cut { rules }
    }

    fn heal(mut self) {
        self.heal_now();
    }

    fn heal_now(&mut self) {
        for (netns, selector) in self.rules.drain(..) {
            assert!(
                ip_rule(netns, "del", &selector),
                "cannot heal {netns} {selector:?}"
            );
        }
    }
}

impl Drop for Cut {
    fn drop(&mut self) {
        for (netns, selector) in self.rules.drain(..) {
            let _ = ip_rule(netns, "del", &selector);
        }
    }
}

#[tokio::test]
#[ignore = "needs the hosts topology: scripts/test runs it in its fourth pass"]
async fn a_video_published_on_the_command_host_plays_from_a_query_host_with_no_shared_disk() {
    needs_hosts();
    let app = spawn_app().await;
    let store = app
        .arg("--blob-store")
        .expect("pass 4 keeps videos on S3 (TITOK_TEST_BLOB_STORE)")
        .to_owned();
    assert!(store.starts_with("s3://"), "{store}");
    let author = app.register("author", "pw").await;
    let mut video = SAMPLE_MP4.to_vec();
    video.extend((video.len()..3 * 1024 * 1024).map(|i| (i % 241) as u8));

    let (status, body) = app
        .publish_raw(
            &author.token,
            "from the command host",
            video.clone(),
            "v.mp4",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_ok(&body, "publish through the balancer");
    let listed = app.publish_list(&author, author.id).await;
    let play_url = listed[0]["play_url"].as_str().expect("play_url").to_owned();
    // Both query hosts serve it: the object is in the bucket, not on a disk of either.
    let path = play_url
        .split_once("/static/")
        .map(|(_, path)| path.to_owned())
        .expect("a URL served by a query API");
    for i in 1..=2 {
        let base = app.instance_url("query-api", i);
        let url = format!("{base}/static/{path}");
        let resp = app.client.get(&url).send().await.expect("GET the video");
        assert_eq!(resp.status(), 200, "{url}");
        let bytes = resp.bytes().await.expect("the video");
        assert!(
            bytes.as_ref() == video.as_slice(),
            "query host {i} played other bytes"
        );
        let (_, ip) = host_of("query-api", i);
        assert!(base.contains(ip), "query API {i} runs on its host: {base}");
    }
    let (_, command_ip) = host_of("command-api", 1);
    assert!(
        !play_url.contains(command_ip),
        "the command host does not serve media: {play_url}"
    );
    // No process keeps videos in its own data dir.
    for dir in std::fs::read_dir(&app.data_dir)
        .expect("data dir")
        .flatten()
    {
        let videos = dir.path().join("blobs").join("videos");
        assert!(
            !videos.exists(),
            "videos on a host's disk: {}",
            videos.display()
        );
    }
}

/// What the probe saw.
#[derive(Default, Debug)]
struct Seen {
    acked: Vec<String>,
    /// Comments refused with a clear envelope (5xx, `status_code != 0`): sent again later with
    /// the same key.
    pending: Vec<(String, String)>,
    refusals: usize,
    stale_marked: usize,
    fresh_reads: usize,
    /// Replies that were neither an acknowledgement nor a clear refusal, reads that missed an
    /// acknowledged comment without the stale marker, requests that got no reply.
    violations: Vec<String>,
}

fn clear_refusal(status: u16, body: &Value) -> bool {
    status >= 500
        && body["status_code"].as_i64().is_some_and(|c| c != 0)
        && body["status_msg"].as_str().is_some_and(|m| !m.is_empty())
}

/// One comment (keyed) and one read of the comments, through the balancer.
async fn step(app: &TestApp, fan: &User, video: i64, n: usize, phase: &str, seen: &mut Seen) {
    let text = format!("{phase} #{n}");
    let key = format!("hosts-{phase}-{n}");
    let form = fan.comment_form(video, &text);
    match app
        .keyed_post("/douyin/comment/action/", &key, &form)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status == 200 && body["status_code"] == 0 {
                seen.acked.push(text);
            } else if clear_refusal(status, &body) {
                seen.refusals += 1;
                seen.pending.push((key, text));
            } else {
                seen.violations
                    .push(format!("{phase}: comment answered {status} {body}"));
            }
        }
        Err(e) => seen
            .violations
            .push(format!("{phase}: comment got no reply: {e}")),
    }
    let query = [
        ("token", fan.token.clone()),
        ("video_id", video.to_string()),
    ];
    match app
        .client
        .get(app.url("/douyin/comment/list/"))
        .query(&query)
        .send()
        .await
    {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let stale = resp.headers().contains_key("x-titok-stale");
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if status == 200 && body["status_code"] == 0 {
                if stale {
                    seen.stale_marked += 1;
                    return;
                }
                seen.fresh_reads += 1;
                let listed: Vec<&str> = body["comment_list"]
                    .as_array()
                    .map(|list| list.iter().filter_map(|c| c["content"].as_str()).collect())
                    .unwrap_or_default();
                for text in &seen.acked {
                    if !listed.contains(&text.as_str()) {
                        seen.violations.push(format!(
                            "{phase}: a read without the stale marker missed {text:?}"
                        ));
                    }
                }
            } else if !clear_refusal(status, &body) {
                seen.violations
                    .push(format!("{phase}: read answered {status} {body}"));
            } else {
                seen.refusals += 1;
            }
        }
        Err(e) => seen
            .violations
            .push(format!("{phase}: read got no reply: {e}")),
    }
}

/// GET the video from query host 1 directly: the bytes, or a clear refusal (recorded), or a
/// violation.
async fn play(app: &TestApp, path: &str, video: &[u8], phase: &str, seen: &mut Seen) -> bool {
    let url = format!("{}/static/{path}", app.instance_url("query-api", 1));
    match app.client.get(&url).send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            if status == 200 {
                let bytes = resp.bytes().await.unwrap_or_default();
                if bytes.as_ref() != video {
                    seen.violations
                        .push(format!("{phase}: the video came back with other bytes"));
                }
                return true;
            }
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            if clear_refusal(status, &body) {
                seen.refusals += 1;
            } else {
                seen.violations
                    .push(format!("{phase}: the video answered {status} {body}"));
            }
            false
        }
        Err(e) => {
            seen.violations
                .push(format!("{phase}: the video got no reply: {e}"));
            false
        }
    }
}

/// Five partitions, one after the other, each held for a few seconds under a stream of keyed
/// comments and reads (and plays of a video while the query host is cut from S3): every reply is
/// an acknowledgement or a clear 5xx envelope, no read misses an acknowledged comment without
/// `x-titok-stale`, and after each heal the system answers fresh again without a restart; at the
/// end every acknowledged comment (and every refused one, sent again with its key) is there once.
#[tokio::test]
#[ignore = "needs the hosts topology: scripts/test runs it in its fourth pass"]
async fn partitions_between_hosts_answer_clearly_lose_nothing_and_heal() {
    needs_hosts();
    // tansu 0.6 panics when an idempotent producer retries a batch across a stall (docs/limitations.md);
    // without idempotence a retried event is absorbed by the folds (event ids).
    let app = TestApp::start(&["--no-sample", "--kafka-idempotence", "false"]).await;
    let author = app.register("author", "pw").await;
    let fan = app.register("fan", "pw").await;
    let video = app.publish(&author, "watched").await;
    let play_url = app.publish_list(&author, author.id).await[0]["play_url"]
        .as_str()
        .expect("play_url")
        .to_owned();
    let path = play_url
        .split_once("/static/")
        .map(|(_, p)| p.to_owned())
        .expect("served by a query API");
    let mut seen = Seen::default();
    let mut n = 0;
    // (phase, the host cut off, and the host and address it is cut from)
    let (query_ns, query_ip) = host_of("query-api", 1);
    let phases = [
        (
            "command-broker",
            host_of("command-api", 1),
            SERVICES,
            BROKER,
        ),
        ("projector-mysql", host_of("projectors", 1), SERVICES, MYSQL),
        ("query-redis", host_of("query-api", 1), SERVICES, REDIS),
        ("query-s3", host_of("query-api", 1), SERVICES, S3),
        ("balancer-query", host_of("client", 1), query_ns, query_ip),
    ];
    for (phase, host, other, address) in phases {
        let cut = Cut::between(host, other, address);
        let until = tokio::time::Instant::now() + Duration::from_secs(6);
        let mut steps = 0;
        while tokio::time::Instant::now() < until || steps < 2 {
            n += 1;
            steps += 1;
            step(&app, &fan, video, n, phase, &mut seen).await;
            if phase == "query-s3" {
                play(&app, &path, SAMPLE_MP4, phase, &mut seen).await;
            }
        }
        cut.heal();
        eprintln!("{phase}: {steps} steps while cut; so far {seen:?}");

        // Healed: a new comment is acknowledged and read back fresh, without restarting anything.
        let healed = tokio::time::Instant::now() + Duration::from_secs(90);
        loop {
            n += 1;
            let before = (seen.acked.len(), seen.fresh_reads, seen.violations.len());
            step(&app, &fan, video, n, &format!("{phase}-healed"), &mut seen).await;
            let acked = seen.acked.len() > before.0;
            let fresh = seen.fresh_reads > before.1;
            if acked && fresh && seen.violations.len() == before.2 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < healed,
                "{phase}: not healed within 90 s: {seen:?}\n{}",
                app.logs()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        if phase == "query-s3" {
            assert!(
                play(&app, &path, SAMPLE_MP4, "query-s3-healed", &mut seen).await,
                "the video plays again: {seen:?}"
            );
        }
    }

    // Every refused comment, sent again with its key, is acknowledged (once).
    for (key, text) in std::mem::take(&mut seen.pending) {
        let form = fan.comment_form(video, &text);
        let what = format!("the refused comment {text:?} is accepted on retry");
        eventually(Duration::from_secs(120), &what, || async {
            let resp = app
                .keyed_post("/douyin/comment/action/", &key, &form)
                .send()
                .await
                .ok()?;
            let body: Value = resp.json().await.unwrap_or(Value::Null);
            (body["status_code"] == 0).then_some(())
        })
        .await;
        seen.acked.push(text);
    }
    let comments = app.comments(&fan, video).await;
    let listed: Vec<&str> = comments
        .iter()
        .filter_map(|c| c["content"].as_str())
        .collect();
    for text in &seen.acked {
        let times = listed.iter().filter(|l| **l == text.as_str()).count();
        assert_eq!(times, 1, "{text:?} listed {times} times");
    }
    assert_eq!(listed.len(), seen.acked.len(), "nothing else was added");
    eprintln!(
        "partitions: {} comments acknowledged, {} clear refusals, {} reads fresh, {} marked stale",
        seen.acked.len(),
        seen.refusals,
        seen.fresh_reads,
        seen.stale_marked
    );
    assert!(seen.violations.is_empty(), "{:#?}", seen.violations);
}
