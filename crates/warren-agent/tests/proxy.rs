//! The agent's `/proxy/{sandbox_id}/{port}/…` route against a real sandbox (runsc, netns,
//! envd with an access token): auth, envd's Connect streaming arriving as it happens, files
//! with a query string, the caller's `Authorization` carried through, an HTTP upgrade spliced
//! both ways, and unknown sandboxes.

mod lifecycle_common;

use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use warren_agent::proxy::FORWARDED_AUTHORIZATION;
use warren_agent::sandbox::{AccessToken, CreateSandbox};
use warren_proto::envd::client::{Command, EnvdClient, ProcessEvent};

const AGENT_TOKEN: &str = "proxy-test-agent-token";
const ENVD_TOKEN: &str = "proxy-test-envd-token";

fn client(base: &str, envd_token: Option<&str>) -> EnvdClient {
    let mut h = http::HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {AGENT_TOKEN}").parse().unwrap(),
    );
    if let Some(t) = envd_token {
        h.insert("x-access-token", t.parse().unwrap());
    }
    EnvdClient::via_proxy(
        base,
        h,
        http::HeaderName::from_static(FORWARDED_AUTHORIZATION),
    )
    .unwrap()
}

/// Sends an upgrade request through the proxy on a raw connection; returns the connection
/// after a 101, or the status line.
async fn upgrade(agent: std::net::SocketAddr, path: &str) -> Result<tokio::net::TcpStream, String> {
    let mut s = tokio::net::TcpStream::connect(agent)
        .await
        .map_err(|e| e.to_string())?;
    s.write_all(
        format!(
            "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {AGENT_TOKEN}\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut b).await.map_err(|e| e.to_string())? == 0 {
            return Err(format!("eof after {:?}", String::from_utf8_lossy(&head)));
        }
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    if head.starts_with("HTTP/1.1 101") {
        Ok(s)
    } else {
        Err(head)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn proxy_reaches_envd_and_ports_inside_a_sandbox() {
    skip_unless_ready!();
    let w = lifecycle_common::world(23).await;
    let sb = w
        .mgr
        .create(CreateSandbox {
            template: "minimal".into(),
            allow_internet: true,
            envd_access_token: Some(AccessToken(ENVD_TOKEN.into())),
            ..Default::default()
        })
        .await
        .expect("create");
    let id = sb.record.sandbox_id.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let agent = listener.local_addr().unwrap();
    let router = warren_agent::rpc::router(w.mgr.clone(), AGENT_TOKEN.into());
    let server = tokio::spawn(warren_agent::rpc::serve(
        listener,
        router,
        std::future::pending(),
    ));
    let base = format!("http://{agent}/proxy/{id}/49983");
    let http = reqwest::Client::new();

    // Auth: the agent's bearer is needed; envd's token too (envd checks it).
    let r = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .get(format!("{base}/health"))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = http
        .get(format!("{base}/envs"))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "envd wants its token");
    let err = client(&base, None)
        .run(Command::new("/bin/true", Vec::<String>::new()))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nauthenticated"), "{err}");

    // Connect server streaming arrives as it happens, not at the end.
    let envd = client(&base, Some(ENVD_TOKEN));
    let t0 = Instant::now();
    let mut events = envd
        .start(Command::new(
            "/bin/sh",
            ["-c", "echo first; sleep 2; echo second"],
        ))
        .await
        .unwrap();
    let mut first_at = None;
    let mut out = String::new();
    while let Some(ev) = events.next().await {
        match ev.unwrap() {
            ProcessEvent::Stdout(b) => {
                first_at.get_or_insert(t0.elapsed());
                out.push_str(&String::from_utf8_lossy(&b));
            }
            ProcessEvent::End { exit_code, .. } => {
                assert_eq!(exit_code, 0);
                break;
            }
            _ => {}
        }
    }
    assert_eq!(out, "first\nsecond\n");
    let first_at = first_at.unwrap();
    assert!(
        first_at < Duration::from_millis(1500) && t0.elapsed() >= Duration::from_secs(2),
        "first chunk after {first_at:?}: buffered"
    );

    // The caller's Authorization (envd's user) crosses the proxy in its own header.
    let mut cmd = Command::new("/bin/sh", ["-c", "id -u"]);
    cmd.user = Some("root".into());
    assert_eq!(envd.run(cmd).await.unwrap().stdout, b"0\n");

    // Files: the query string goes through; bodies both ways.
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    envd.write_file("/tmp/blob", data.clone(), None)
        .await
        .unwrap();
    assert_eq!(envd.read_file("/tmp/blob", None).await.unwrap(), data);

    // An upgrade to a port inside the sandbox is spliced both ways.
    let script = "while read -r l; do l=$(printf %s \"$l\" | tr -d '\\r'); [ -z \"$l\" ] && break; done\nprintf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: echo\\r\\nConnection: Upgrade\\r\\n\\r\\n'\nexec cat\n";
    envd.write_file("/tmp/up.sh", script.as_bytes().to_vec(), None)
        .await
        .unwrap();
    let _server_events = envd
        .start(Command::new(
            "/bin/sh",
            ["-c", "busybox nc -ll -p 8080 -e /bin/sh /tmp/up.sh"],
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut conn = loop {
        match upgrade(agent, &format!("/proxy/{id}/8080/ws?x=1")).await {
            Ok(c) => break c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(e) => panic!("no upgrade: {e}"),
        }
    };
    for msg in ["ping\n", "pong pong\n"] {
        conn.write_all(msg.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut buf))
            .await
            .expect("echo in time")
            .unwrap();
        assert_eq!(buf, msg.as_bytes());
    }
    drop(conn);

    // Unknown sandbox, bad port.
    let r = http
        .get(format!(
            "http://{agent}/proxy/sb-nosuchsandbox/49983/health"
        ))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(
        v["message"].as_str().unwrap().contains("was not found"),
        "{v}"
    );
    let r = http
        .get(format!("http://{agent}/proxy/{id}/notaport/health"))
        .bearer_auth(AGENT_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // The agent's own exec sends envd's token too.
    let r = http
        .post(format!("http://{agent}/hostagent.v1.HostAgent/Exec"))
        .bearer_auth(AGENT_TOKEN)
        .json(&serde_json::json!({"sandbox_id": id, "cmd": "/bin/sh", "args": ["-c", "echo ok"]}))
        .send()
        .await
        .unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(status, 200, "{v}");
    server.abort();
    w.finish().await;
}
