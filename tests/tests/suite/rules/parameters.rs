//! The lenient parameter conventions: query string or form on either method, with or without the
//! trailing slash, integral floats as ids, and the official document's path typo.

use titok_tests::*;

#[tokio::test]
async fn parameters_are_accepted_from_query_or_form_with_or_without_trailing_slash() {
    let app = spawn_app().await;
    let u = app.register("u", "pw").await;
    let v = app.register("v", "pw").await;

    // Form body on a GET, path without the trailing slash.
    let resp = app
        .client
        .get(app.url("/douyin/user"))
        .form(&[("token", u.token.clone()), ("user_id", v.id.to_string())])
        .send()
        .await
        .expect("get");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_ok(&body, "form body on GET");
    assert_eq!(body["user"]["id"], v.id);

    // Query string on a POST; an id written as an integral float in exponent form.
    let float_id = format!("{:e}", v.id as f64);
    let resp = app
        .client
        .post(app.url("/douyin/relation/action/"))
        .query(&[
            ("token", u.token.clone()),
            ("to_user_id", float_id),
            ("action_type", "1".into()),
        ])
        .send()
        .await
        .expect("post");
    let body: serde_json::Value = resp.json().await.expect("json");
    assert_ok(&body, "query string on POST with a float id");

    // The official document's typo is served as an alias.
    let typo = app
        .user_list("/douyin/relatioin/follow/list/", &u, u.id)
        .await;
    assert_eq!(ids(&typo), vec![v.id]);
}
