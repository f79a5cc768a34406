//! Fleet tests of hosts (issue 5): three real agents registered with a real control plane.
//! See `fleet_common` for the harness.

mod fleet_common;

use std::time::Duration;

use fleet_common::{Db, Fleet, FleetOpts};

#[tokio::test]
async fn three_agents_register_sqlite() {
    three_agents_register(Db::Sqlite).await;
}

#[tokio::test]
async fn three_agents_register_postgres() {
    let Some(db) = Db::postgres_from_env() else {
        return;
    };
    three_agents_register(db).await;
}

async fn three_agents_register(db: Db) {
    let Some(fleet) = Fleet::start(FleetOpts {
        db,
        ..FleetOpts::default()
    })
    .await
    else {
        return;
    };
    let admin = fleet.admin_token().await;
    let (s, hosts) = fleet
        .call("GET", "/v1/hosts", Some(&admin), None, None)
        .await;
    assert_eq!(s, 200);
    let hosts = hosts.as_array().unwrap();
    assert_eq!(hosts.len(), 3);
    for h in hosts {
        assert_eq!(h["status"], "online", "{h}");
        assert_eq!(h["runtime"], "gvisor");
        assert_eq!(h["templates"], serde_json::json!(["minimal"]));
        assert!(h["sandbox_capacity"].as_i64().unwrap() > 0);
        assert!(h["last_heartbeat_at"].is_string());
    }
    let _ = Duration::ZERO;
}
