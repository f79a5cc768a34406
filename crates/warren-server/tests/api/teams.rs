//! Teams, switching team, members, and isolation between teams.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    Auth, TestApp, assert_error, assert_field_error, both_stores, session, str_at,
};

both_stores!(
    create_list_switch,
    create_team_bad_inputs,
    members_add_remove,
    other_teams_are_not_found,
);

async fn create_list_switch(app: TestApp) {
    let ann = app.signup("ann@example.com").await;
    let (status, team) = app
        .post(
            "/v1/teams",
            &json!({"name": "  Research 🔬 "}),
            Auth::Bearer(&ann.token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{team}");
    assert_eq!(team["name"], "Research 🔬");
    assert_eq!(team["role"], "owner");
    let research = str_at(&team, "/id");

    let (status, list) = app.get("/v1/teams", Auth::Bearer(&ann.token)).await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ann.team_id.as_str(), research.as_str()]);

    let (status, got) = app
        .get(&format!("/v1/teams/{research}"), Auth::Bearer(&ann.token))
        .await;
    assert_eq!(
        (status, got["name"].as_str()),
        (StatusCode::OK, Some("Research 🔬"))
    );

    // Switch team: the new token acts for the new team; keys made with it belong there.
    let (status, body) = app
        .post(
            "/v1/auth/switch-team",
            &json!({"team_id": research}),
            Auth::Bearer(&ann.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let switched = session(&body);
    assert_eq!(switched.team_id, research);
    let (_, me) = app.get("/v1/me", Auth::Bearer(&switched.token)).await;
    assert_eq!(str_at(&me, "/team/id"), research);
    let (_, key) = app.create_key(&switched, "research key").await;
    let (_, me) = app.get("/v1/me", Auth::Key(&key)).await;
    assert_eq!(str_at(&me, "/team/id"), research);
    let (_, personal_keys) = app.get("/v1/api-keys", Auth::Bearer(&ann.token)).await;
    assert_eq!(personal_keys, json!([]));

    // Switch-team input errors.
    for body in [json!({}), json!({"team_id": 5})] {
        let got = app
            .post("/v1/auth/switch-team", &body, Auth::Bearer(&ann.token))
            .await;
        assert_error(&got, StatusCode::UNPROCESSABLE_ENTITY, "unprocessable");
    }
    for id in [
        "",
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
        "' OR 1=1 --",
    ] {
        let got = app
            .post(
                "/v1/auth/switch-team",
                &json!({"team_id": id}),
                Auth::Bearer(&ann.token),
            )
            .await;
        assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    }
}

async fn create_team_bad_inputs(app: TestApp) {
    let s = app.signup("tess@example.com").await;
    let t = Auth::Bearer(&s.token);
    for body in [
        json!({}),
        json!({"name": 1}),
        json!({"name": null}),
        json!([]),
    ] {
        assert_error(
            &app.post("/v1/teams", &body, t).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        );
    }
    for name in [
        String::new(),
        "   ".into(),
        "x".repeat(101),
        "x".repeat(500_000),
        "a\nb".into(),
    ] {
        assert_field_error(
            &app.post("/v1/teams", &json!({"name": name}), t).await,
            "name",
        );
    }
    let (status, team) = app
        .post("/v1/teams", &json!({"name": "'; DELETE FROM teams; --"}), t)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(team["name"], "'; DELETE FROM teams; --");
    let (_, list) = app.get("/v1/teams", t).await;
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_error(
        &app.post("/v1/teams", &json!({"name": "x"}), Auth::None)
            .await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
}

fn emails(members: &Value) -> Vec<(String, String)> {
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["email"].as_str().unwrap().to_owned(),
                m["role"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

async fn members_add_remove(app: TestApp) {
    let owner = app.signup("owner@example.com").await;
    let ada = app.signup("ada@example.com").await;
    let bea = app.signup("bea@example.com").await;
    let team = &owner.team_id;
    let o = Auth::Bearer(&owner.token);
    let members_path = format!("/v1/teams/{team}/members");

    // Bad inputs.
    for body in [
        json!({}),
        json!({"email": 3}),
        json!({"email": "ada@example.com", "role": 1}),
    ] {
        assert_error(
            &app.post(&members_path, &body, o).await,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unprocessable",
        );
    }
    for (body, field) in [
        (json!({"email": ""}), "email"),
        (json!({"email": "nope"}), "email"),
        (json!({"email": "ada@example.com", "role": "owner"}), "role"),
        (json!({"email": "ada@example.com", "role": "ADMIN"}), "role"),
        (json!({"email": "ada@example.com", "role": ""}), "role"),
    ] {
        assert_field_error(&app.post(&members_path, &body, o).await, field);
    }
    assert_error(
        &app.post(&members_path, &json!({"email": "ghost@example.com"}), o)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );

    // Add (email is case-insensitive), then duplicates conflict.
    let (status, m) = app
        .post(
            &members_path,
            &json!({"email": "ADA@example.com", "role": "admin"}),
            o,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    assert_eq!(
        (m["email"].as_str(), m["role"].as_str()),
        (Some("ada@example.com"), Some("admin"))
    );
    let (status, _) = app
        .post(&members_path, &json!({"email": "bea@example.com"}), o)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_error(
        &app.post(&members_path, &json!({"email": "bea@example.com"}), o)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    let (_, list) = app.get(&members_path, o).await;
    assert_eq!(
        emails(&list),
        [
            ("owner@example.com".into(), "owner".into()),
            ("ada@example.com".into(), "admin".into()),
            ("bea@example.com".into(), "member".into())
        ]
    );

    // Bea switches to the team; as a plain member she can list but not manage.
    let (_, body) = app
        .post(
            "/v1/auth/switch-team",
            &json!({"team_id": team}),
            Auth::Bearer(&bea.token),
        )
        .await;
    let bea_in_team = session(&body);
    let b = Auth::Bearer(&bea.token);
    assert_eq!(app.get(&members_path, b).await.0, StatusCode::OK);
    assert_error(
        &app.post(&members_path, &json!({"email": "ada@example.com"}), b)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    assert_error(
        &app.delete(&format!("{members_path}/{}", ada.user_id), b)
            .await,
        StatusCode::FORBIDDEN,
        "forbidden",
    );
    // Nobody removes the owner, not even an admin.
    assert_error(
        &app.delete(
            &format!("{members_path}/{}", owner.user_id),
            Auth::Bearer(&ada.token),
        )
        .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    assert_error(
        &app.delete(&format!("{members_path}/{}", owner.user_id), o)
            .await,
        StatusCode::CONFLICT,
        "conflict",
    );
    // The admin removes Bea: her token for that team stops working at once.
    let (status, _) = app
        .delete(
            &format!("{members_path}/{}", bea.user_id),
            Auth::Bearer(&ada.token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_error(
        &app.get("/v1/me", Auth::Bearer(&bea_in_team.token)).await,
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
    );
    assert_eq!(
        app.get("/v1/me", b).await.0,
        StatusCode::OK,
        "her own team is untouched"
    );
    assert_error(
        &app.delete(&format!("{members_path}/{}", bea.user_id), o)
            .await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    assert_error(
        &app.get(&members_path, b).await,
        StatusCode::NOT_FOUND,
        "not_found",
    );
    // Ada leaves by herself.
    let (status, _) = app
        .delete(
            &format!("{members_path}/{}", ada.user_id),
            Auth::Bearer(&ada.token),
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, list) = app.get(&members_path, o).await;
    assert_eq!(
        emails(&list),
        [("owner@example.com".into(), "owner".into())]
    );
    for bad in ["nope", "00000000-0000-0000-0000-000000000000"] {
        assert_error(
            &app.delete(&format!("{members_path}/{bad}"), o).await,
            StatusCode::NOT_FOUND,
            "not_found",
        );
    }
}

async fn other_teams_are_not_found(app: TestApp) {
    let a = app.signup("a@example.com").await;
    let b = app.signup("b@example.com").await;
    let bt = Auth::Bearer(&b.token);
    let (a_key_id, a_key) = app.create_key(&a, "a's key").await;

    let not_found =
        |got: (StatusCode, Value)| assert_error(&got, StatusCode::NOT_FOUND, "not_found");
    not_found(app.get(&format!("/v1/teams/{}", a.team_id), bt).await);
    not_found(
        app.get(&format!("/v1/teams/{}/members", a.team_id), bt)
            .await,
    );
    not_found(
        app.post(
            &format!("/v1/teams/{}/members", a.team_id),
            &json!({"email": "b@example.com"}),
            bt,
        )
        .await,
    );
    not_found(
        app.delete(
            &format!("/v1/teams/{}/members/{}", a.team_id, a.user_id),
            bt,
        )
        .await,
    );
    not_found(
        app.post("/v1/auth/switch-team", &json!({"team_id": a.team_id}), bt)
            .await,
    );
    not_found(app.delete(&format!("/v1/api-keys/{a_key_id}"), bt).await);
    // A team that does not exist looks exactly the same.
    let ghost = "0190aaaa-0000-7000-8000-000000000000";
    let ghost_resp = app.get(&format!("/v1/teams/{ghost}"), bt).await;
    not_found(ghost_resp);
    not_found(app.get("/v1/teams/not-a-uuid", bt).await);

    // B sees none of A's keys; A's key still works and acts only for A's team.
    let (_, b_keys) = app.get("/v1/api-keys", bt).await;
    assert_eq!(b_keys, json!([]));
    let (status, me) = app.get("/v1/me", Auth::Key(&a_key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(str_at(&me, "/team/id"), a.team_id);
    let (_, a_members) = app
        .get(
            &format!("/v1/teams/{}/members", a.team_id),
            Auth::Bearer(&a.token),
        )
        .await;
    assert_eq!(a_members.as_array().unwrap().len(), 1);
}
