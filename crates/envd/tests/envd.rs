//! End-to-end tests of the real `envd` binary through the typed client of `warren-proto`
//! and raw HTTP: the parts the e2b SDK suite does not reach.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};

use futures::StreamExt;
use warren_proto::envd::client::{
    ClientError, Command, EnvdClient, ProcessEvent, Selector, Signal,
};

/// A running envd on a free port, killed on drop.
struct Envd {
    child: Child,
    url: String,
}

impl Envd {
    fn start(extra: &[&str]) -> Envd {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_envd"))
            .args(["--port", "0", "--host", "127.0.0.1"])
            .args(extra)
            .env("ENVD_LOG", "warn")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn envd");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line.trim().rsplit(' ').next().unwrap().to_owned();
        Envd {
            child,
            url: format!("http://{addr}"),
        }
    }

    fn client(&self) -> EnvdClient {
        EnvdClient::new(&self.url).unwrap()
    }
}

impl Drop for Envd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rpc_code(e: &ClientError) -> Option<&'static str> {
    match e {
        ClientError::Rpc { source, .. } => Some(source.code.as_str()),
        _ => None,
    }
}

#[tokio::test]
async fn runs_commands_with_exit_codes_and_streams() {
    let envd = Envd::start(&[]);
    let c = envd.client();
    c.health().await.unwrap();
    let out = c
        .run(Command::shell("echo out; echo err >&2; exit 7"))
        .await
        .unwrap();
    assert_eq!(
        (out.stdout.as_slice(), out.stderr.as_slice(), out.exit_code),
        (&b"out\n"[..], &b"err\n"[..], 7)
    );
    assert!(out.pid > 0);
    let out = c
        .run(Command {
            cwd: Some("/tmp".into()),
            envs: [("X".into(), "y z".into())].into(),
            ..Command::new("sh", ["-c", "pwd; echo $X"])
        })
        .await
        .unwrap();
    assert_eq!(out.stdout, b"/tmp\ny z\n");
}

#[tokio::test]
async fn bad_input_gets_connect_codes() {
    let envd = Envd::start(&[]);
    let c = envd.client();
    let e = c.send_stdin(Selector::Pid(999_999), "x").await.unwrap_err();
    assert_eq!(rpc_code(&e), Some("not_found"), "{e}");
    let e = c
        .signal(Selector::Tag("nope".into()), Signal::Kill)
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&e), Some("not_found"), "{e}");
    let e = c
        .run(Command::new("/does/not/exist", Vec::<String>::new()))
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&e), Some("not_found"), "{e}");
    let e = c
        .run(Command {
            user: Some("no-such-user-xyz".into()),
            ..Command::shell("true")
        })
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&e), Some("permission_denied"), "{e}");
    let e = c
        .run(Command {
            cwd: Some("/etc/passwd".into()),
            ..Command::shell("true")
        })
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&e), Some("invalid_argument"), "{e}");
    let e = c
        .run(Command::new("", Vec::<String>::new()))
        .await
        .unwrap_err();
    assert_eq!(rpc_code(&e), Some("invalid_argument"), "{e}");
    c.health().await.unwrap();
}

#[tokio::test]
async fn stdin_tags_list_connect_and_kill() {
    let envd = Envd::start(&[]);
    let c = envd.client();
    let mut cat = c
        .start(Command {
            stdin: true,
            tag: Some("cat-1".into()),
            ..Command::new("cat", Vec::<String>::new())
        })
        .await
        .unwrap();
    let Some(Ok(ProcessEvent::Start { pid })) = cat.next().await else {
        panic!("no start event")
    };
    assert!(
        c.list()
            .await
            .unwrap()
            .iter()
            .any(|(p, t, _)| *p == pid && t.as_deref() == Some("cat-1"))
    );
    c.send_stdin(Selector::Tag("cat-1".into()), "hello\n")
        .await
        .unwrap();
    assert_eq!(
        cat.next().await.unwrap().unwrap(),
        ProcessEvent::Stdout("hello\n".into())
    );
    c.close_stdin(Selector::Pid(pid)).await.unwrap();
    match cat.next().await.unwrap().unwrap() {
        ProcessEvent::End {
            exit_code: 0,
            exited: true,
            ..
        } => {}
        other => panic!("unexpected {other:?}"),
    }

    let mut sleeper = c.start(Command::new("sleep", ["30"])).await.unwrap();
    let Some(Ok(ProcessEvent::Start { pid })) = sleeper.next().await else {
        panic!("no start")
    };
    let mut attached = c.connect(Selector::Pid(pid)).await.unwrap();
    assert_eq!(
        attached.next().await.unwrap().unwrap(),
        ProcessEvent::Start { pid }
    );
    c.signal(Selector::Pid(pid), Signal::Kill).await.unwrap();
    for stream in [&mut sleeper, &mut attached] {
        match stream.next().await.unwrap().unwrap() {
            ProcessEvent::End {
                exited: false,
                status,
                ..
            } => assert!(status.contains("kill"), "{status}"),
            other => panic!("unexpected {other:?}"),
        }
    }
}

#[tokio::test]
async fn pty_is_a_real_terminal() {
    let envd = Envd::start(&[]);
    let c = envd.client();
    let out = c
        .run(Command {
            pty: Some((100, 30)),
            ..Command::shell("tty; stty size")
        })
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("30 100"), "{text}");
}

#[tokio::test]
async fn streams_many_megabytes() {
    let envd = Envd::start(&[]);
    let c = envd.client();
    let mut events = c
        .start(Command::shell("head -c 20000000 /dev/zero"))
        .await
        .unwrap();
    let mut total = 0usize;
    while let Some(ev) = events.next().await {
        match ev.unwrap() {
            ProcessEvent::Stdout(b) => total += b.len(),
            ProcessEvent::End { exit_code, .. } => assert_eq!(exit_code, 0),
            _ => {}
        }
    }
    assert_eq!(total, 20_000_000);
}

/// A Start stream answers in two writes (head + start event, then end event). Without
/// TCP_NODELAY on envd's accepted sockets, Nagle held the second write until the client's
/// delayed ACK (~40 ms on Linux): every keep-alive `true` took 40-50 ms instead of ~2 ms.
#[test]
fn keepalive_start_round_trip_has_no_nagle_stall() {
    use std::io::{Read, Write};
    let envd = Envd::start(&[]);
    let addr = envd.url.trim_start_matches("http://").to_owned();
    let mut sock = std::net::TcpStream::connect(&addr).unwrap();
    sock.set_nodelay(true).unwrap();
    let body = br#"{"process":{"cmd":"true"},"stdin":false}"#;
    let mut req = format!(
        "POST /process.Process/Start HTTP/1.1\r\nHost: {addr}\r\n\
         Content-Type: application/connect+json\r\nContent-Length: {}\r\n\r\n",
        body.len() + 5
    )
    .into_bytes();
    req.push(0);
    req.extend_from_slice(&(body.len() as u32).to_be_bytes());
    req.extend_from_slice(body);
    let mut times = Vec::new();
    for _ in 0..11 {
        let t = std::time::Instant::now();
        sock.write_all(&req).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        while !got.ends_with(b"0\r\n\r\n") {
            let n = sock.read(&mut buf).unwrap();
            assert!(
                n > 0,
                "envd closed the connection: {}",
                String::from_utf8_lossy(&got)
            );
            got.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&got);
        assert!(text.contains("\"end\""), "{text}");
        times.push(t.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    assert!(
        median < std::time::Duration::from_millis(35),
        "median keep-alive Start round trip {median:?} (all: {times:?})"
    );
}

#[tokio::test]
async fn many_parallel_processes() {
    let envd = Envd::start(&[]);
    let c = envd.client();
    let runs = (0..200).map(|i| {
        let c = c.clone();
        async move { c.run(Command::new("echo", [i.to_string()])).await }
    });
    let outs = futures::future::join_all(runs).await;
    for (i, out) in outs.into_iter().enumerate() {
        assert_eq!(out.unwrap().stdout, format!("{i}\n").into_bytes());
    }
}

#[tokio::test]
async fn files_roundtrip_and_errors() {
    let envd = Envd::start(&[]);
    let c = envd.client();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new dir/sub/file name\n.bin");
    let path = path.to_str().unwrap();
    c.write_file(path, vec![1u8, 2, 3], None).await.unwrap();
    assert_eq!(c.read_file(path, None).await.unwrap().as_ref(), &[1, 2, 3]);
    let missing = c
        .read_file(&format!("{}/nope", dir.path().display()), None)
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ClientError::Http { status: 404, .. }),
        "{missing}"
    );
    let is_dir = c
        .read_file(dir.path().to_str().unwrap(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(is_dir, ClientError::Http { status: 400, .. }),
        "{is_dir}"
    );

    // A name that is not UTF-8 survives the query string both ways.
    let http = reqwest::Client::new();
    let raw = format!(
        "{}/files?path={}%2Fbad%FFname",
        envd.url,
        dir.path().display()
    );
    let r = http
        .post(&raw)
        .header("content-type", "application/octet-stream")
        .body("x")
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    use std::os::unix::ffi::OsStrExt;
    let on_disk = dir.path().join(std::ffi::OsStr::from_bytes(b"bad\xffname"));
    assert_eq!(std::fs::read(on_disk).unwrap(), b"x");
    assert_eq!(
        http.get(&raw)
            .send()
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap()
            .as_ref(),
        b"x"
    );
}

#[tokio::test]
async fn access_token_is_enforced() {
    let envd = Envd::start(&["--access-token", "s3cret"]);
    let anon = envd.client();
    anon.health().await.unwrap();
    let e = anon.run(Command::shell("true")).await.unwrap_err();
    assert_eq!(rpc_code(&e), Some("unauthenticated"), "{e}");
    let e = anon.read_file("/etc/hostname", None).await.unwrap_err();
    assert!(matches!(e, ClientError::Http { status: 401, .. }), "{e}");
    let ok = EnvdClient::with_access_token(&envd.url, "s3cret").unwrap();
    assert_eq!(ok.run(Command::shell("true")).await.unwrap().exit_code, 0);
}

#[tokio::test]
async fn json_codec_over_http1_and_init_envs() {
    let envd = Envd::start(&[]);
    let http = reqwest::Client::new();
    let r = http
        .post(format!("{}/process.Process/List", envd.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert!(v.is_object(), "{v}");
    let r = http
        .post(format!("{}/filesystem.Filesystem/Stat", envd.url))
        .header("content-type", "application/json")
        .body(r#"{"path": "/definitely/not/here"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "not_found");
    let r = http
        .post(format!("{}/filesystem.Filesystem/Stat", envd.url))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "bad JSON must be a client error");

    let r = http
        .post(format!("{}/init", envd.url))
        .json(&serde_json::json!({"envVars": {"FROM_INIT": "1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let envs: serde_json::Value = http
        .get(format!("{}/envs", envd.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(envs["FROM_INIT"], "1");
    let out = envd
        .client()
        .run(Command::shell("echo $FROM_INIT"))
        .await
        .unwrap();
    assert_eq!(out.stdout, b"1\n");
    let m: serde_json::Value = http
        .get(format!("{}/metrics", envd.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(m["mem_total"].as_u64().unwrap() > 0, "{m}");
}

/// The std accept thread serves HTTP/1.1 and h2c alike, and SIGTERM still shuts envd down
/// gracefully (exit 0, promptly) while a process it started is running.
#[tokio::test]
async fn std_listener_serves_h1_and_h2c_and_sigterm_exits() {
    let mut envd = Envd::start(&[]);
    let health = format!("{}/health", envd.url);
    let h1 = reqwest::Client::new().get(&health).send().await.unwrap();
    assert_eq!(h1.version(), reqwest::Version::HTTP_11);
    assert!(h1.status().is_success());
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap()
        .get(&health)
        .send()
        .await
        .unwrap();
    assert_eq!(h2.version(), reqwest::Version::HTTP_2);
    assert!(h2.status().is_success());

    let _events = envd
        .client()
        .start(Command::new("/bin/sleep", ["100"]))
        .await
        .unwrap();
    let pid = nix::unistd::Pid::from_raw(envd.child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(s) = envd.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "envd still running 10 s after SIGTERM"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    assert!(status.success(), "envd exit after SIGTERM: {status}");
}
