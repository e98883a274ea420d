//! Chat polling: idle polls with the shortcut (no database query) against the SQL query on every
//! poll.

use std::sync::Arc;

use serde_json::Value;

use crate::baseline::Baseline;
use crate::context::{server_metric, wait_caught_up, Ctx};
use crate::dataset::Viewer;
use crate::load::{closed_loop, ok_envelope};
use crate::report::{Report, Row};

/// Idle chat polls with the shortcut against SQL on every poll.
pub(crate) async fn chat(
    ctx: &Ctx,
    report: &mut Report,
    baseline: &Baseline,
) -> anyhow::Result<()> {
    let Ctx {
        args,
        size,
        client,
        base,
        viewers,
        ..
    } = ctx;
    // 4. Chat polling: idle polls, shortcut vs SQL every time.
    eprintln!("bench: chat");
    for pair in viewers.chunks(2) {
        let form = [
            ("token", pair[0].token.clone()),
            ("to_user_id", pair[1].id.to_string()),
            ("action_type", "1".into()),
            ("content", "hello".into()),
        ];
        client
            .post(format!("{base}/douyin/message/action/"))
            .form(&form)
            .send()
            .await?;
    }
    wait_caught_up(client, base).await?;
    // Positive control: a poll with something to fetch queries SQL and is counted.
    let reply: Value = client
        .get(format!("{base}/douyin/message/chat/"))
        .query(&[
            ("token", viewers[1].token.clone()),
            ("to_user_id", viewers[0].id.to_string()),
            ("pre_msg_time", "0".into()),
        ])
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(
        reply["message_list"]
            .as_array()
            .is_some_and(|l| !l.is_empty()),
        "the chat poll found no message: {reply}"
    );
    let far_future = (titok_ports::now_ms() + 86_400_000).to_string();
    let queries_before = server_metric(client, base, "titok_chat_db_queries_total", &[]).await?;
    anyhow::ensure!(
        queries_before >= 1.0,
        "a non-idle chat poll was not counted"
    );
    let chat_request =
        |client: reqwest::Client, url: String, viewers: Arc<Vec<Viewer>>, since: String| {
            move |worker: usize, _i: u64| {
                let me = &viewers[(worker % (viewers.len() / 2)) * 2 + 1];
                let other = viewers[(worker % (viewers.len() / 2)) * 2].id;
                let req = client
                    .get(&url)
                    .query(&[
                        ("token", me.token.clone()),
                        ("user_id", me.id.to_string()),
                        ("to_user_id", other.to_string()),
                        ("pre_msg_time", since.clone()),
                    ])
                    .send();
                async move { ok_envelope(req.await).await }
            }
        };
    let chat = closed_loop(
        args.concurrency,
        size.seconds,
        chat_request(
            client.clone(),
            format!("{base}/douyin/message/chat/"),
            viewers.clone(),
            far_future.clone(),
        ),
    )
    .await;
    let queries =
        server_metric(client, base, "titok_chat_db_queries_total", &[]).await? - queries_before;
    let chat_sql = closed_loop(
        args.concurrency,
        size.seconds,
        chat_request(
            client.clone(),
            format!("{}/sql/chat", baseline.base),
            viewers.clone(),
            far_future,
        ),
    )
    .await;
    let per_poll = queries / (chat.ok.max(1) as f64);
    report.results.chat = Some(chat.stats());
    report.results.chat_sql_every_poll = Some(chat_sql.stats());
    report.results.chat_db_queries_per_idle_poll = Some(per_poll);
    report.rows.push(Row::ratio(
        "chat idle polls (polls/s)",
        chat.rate(),
        chat_sql.rate(),
        "0 DB queries per idle poll",
    ));
    report.rows.push(Row::new(
        "chat DB queries per idle poll".into(),
        format!("{per_poll}"),
        "1".into(),
        "—".into(),
        "0".into(),
    ));
    Ok(())
}
