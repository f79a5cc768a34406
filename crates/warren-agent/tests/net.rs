//! Sandbox networks on real netns, veth and nftables, and through real runsc (root; skipped
//! with a printed reason otherwise). Each test has its own name prefix (netns names, nft table)
//! and its own address pool (veth names), so they run in parallel.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use warren_agent::command::Cmd;
use warren_agent::net::{Ipv4Pool, NetConfig, NetOptions, NetworkManager, SandboxNetwork};
use warren_agent::storage::{ImageRegistry, SandboxRootfs};

fn sh(script: &str) -> String {
    Cmd::new("sh")
        .args(["-c", script])
        .run()
        .unwrap_or_else(|e| panic!("{e}"))
        .stdout_str()
}

fn manager(data: &Path, prefix: &str, pool: &str) -> NetworkManager {
    NetworkManager::new(
        data,
        NetConfig {
            pool: Ipv4Pool::parse(pool).unwrap(),
            prefix: prefix.to_string(),
        },
    )
    .unwrap()
}

/// Deletes everything a test's manager may have left: its netns, veths of its pool, table.
fn cleanup(prefix: &str, pool: &str) {
    let pool = Ipv4Pool::parse(pool).unwrap();
    for name in netns_list() {
        if name.starts_with(&format!("{prefix}-")) {
            let _ = Cmd::new("ip").args(["netns", "del", &name]).run();
        }
    }
    for link in links() {
        if let Some(hex) = link.strip_prefix("wv")
            && let Ok(v) = u32::from_str_radix(hex, 16)
            && pool.contains(Ipv4Addr::from(v))
        {
            let _ = Cmd::new("ip").args(["link", "del", &link]).run();
        }
    }
    let _ = Cmd::new("nft")
        .args(["-f", "-"])
        .stdin(format!("add table ip {prefix}\ndelete table ip {prefix}\n"))
        .run();
}

fn netns_list() -> Vec<String> {
    sh("ip netns list")
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

fn links() -> Vec<String> {
    std::fs::read_dir("/sys/class/net")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn nft_table(prefix: &str) -> String {
    sh(&format!("nft list table ip {prefix}"))
}

fn assert_gone(mgr: &NetworkManager, net: &SandboxNetwork) {
    assert!(
        !netns_list().contains(&net.netns_name),
        "netns {} left",
        net.netns_name
    );
    assert!(!net.netns_path.exists());
    assert!(
        !links().contains(&net.host_veth),
        "veth {} left",
        net.host_veth
    );
    assert!(
        !nft_table(mgr.nft_table()).contains(&net.sandbox_ip.to_string()),
        "nft element of {} left",
        net.sandbox_id
    );
    assert!(mgr.get(&net.sandbox_id).is_none());
}

#[test]
fn setup_and_teardown_leave_nothing() {
    skip_unless!("ip", "nft");
    let prefix = common::unique("wtst");
    let pool = "10.201.1.0/24";
    let _cleanup = common::Guard(|| cleanup(&prefix, pool));
    let data = common::data_dir();
    let mgr = manager(data.path(), &prefix, pool);

    let open = mgr
        .setup(
            "sb-open",
            NetOptions {
                allow_internet: true,
            },
        )
        .unwrap();
    let closed = mgr
        .setup(
            "sb-closed",
            NetOptions {
                allow_internet: false,
            },
        )
        .unwrap();
    assert_eq!(open.host_ip, "10.201.1.1".parse::<Ipv4Addr>().unwrap());
    assert_eq!(open.sandbox_ip, "10.201.1.2".parse::<Ipv4Addr>().unwrap());
    assert_eq!(closed.sandbox_ip, "10.201.1.6".parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        open.netns_path,
        Path::new("/run/netns").join(format!("{prefix}-sb-open"))
    );
    assert!(netns_list().contains(&open.netns_name));
    assert!(links().contains(&open.host_veth));
    let inside = sh(&format!("ip -n {} -4 addr show dev eth0", open.netns_name));
    assert!(inside.contains("10.201.1.2/30"), "{inside}");
    let route = sh(&format!("ip -n {} route show default", open.netns_name));
    assert!(route.contains("via 10.201.1.1"), "{route}");
    let host = sh(&format!("ip -4 addr show dev {}", open.host_veth));
    assert!(host.contains("10.201.1.1/30"), "{host}");
    let table = nft_table(&prefix);
    assert!(
        table.contains("10.201.1.6"),
        "denied sandbox in set: {table}"
    );
    assert!(!table.contains("10.201.1.2"), "{table}");
    assert!(table.contains("masquerade"));
    assert_eq!(sh("cat /proc/sys/net/ipv4/ip_forward").trim(), "1");
    // The host reaches the sandbox side of the veth (the kernel answers until runsc takes it).
    let ping = Cmd::new("busybox")
        .args(["ping", "-c", "1", "-W", "2", "10.201.1.2"])
        .run();
    assert!(ping.is_ok(), "{ping:?}");

    // setup is idempotent, and again after runsc stripped the addresses.
    sh(&format!("ip -n {} addr flush dev eth0", open.netns_name));
    let again = mgr
        .setup(
            "sb-open",
            NetOptions {
                allow_internet: true,
            },
        )
        .unwrap();
    assert_eq!(again, open);
    let inside = sh(&format!("ip -n {} -4 addr show dev eth0", open.netns_name));
    assert!(inside.contains("10.201.1.2/30"), "{inside}");

    mgr.teardown("sb-open").unwrap();
    mgr.teardown("sb-closed").unwrap();
    mgr.teardown("sb-closed").unwrap(); // idempotent
    assert_gone(&mgr, &open);
    assert_gone(&mgr, &closed);
    assert!(mgr.list().is_empty());
    // Persisted: a new manager over the same dir sees no allocation.
    drop(mgr);
    let mgr = manager(data.path(), &prefix, pool);
    assert!(mgr.list().is_empty());
    mgr.delete_nft_table().unwrap();
    assert!(
        Cmd::new("nft")
            .args(["list", "table", "ip", &prefix])
            .run()
            .is_err()
    );
}

#[test]
fn cleanup_leftovers_spares_live_sandboxes() {
    skip_unless!("ip", "nft");
    let prefix = common::unique("wtcl");
    let pool = "10.201.2.0/24";
    let _cleanup = common::Guard(|| cleanup(&prefix, pool));
    let data = common::data_dir();
    let (a, b, c) = {
        let mgr = manager(data.path(), &prefix, pool);
        let a = mgr
            .setup(
                "a",
                NetOptions {
                    allow_internet: false,
                },
            )
            .unwrap();
        let b = mgr
            .setup(
                "b",
                NetOptions {
                    allow_internet: false,
                },
            )
            .unwrap();
        let c = mgr
            .setup(
                "c",
                NetOptions {
                    allow_internet: true,
                },
            )
            .unwrap();
        (a, b, c)
    };
    // Leftovers with no allocation at all: a netns and a veth with a pool address.
    sh(&format!("ip netns add {prefix}-orphan"));
    sh("ip link add wv0ac902f9 type veth peer name wvorphanp");

    // "Restarted agent": allocations come back from disk.
    let mgr = manager(data.path(), &prefix, pool);
    assert_eq!(mgr.list().len(), 3);
    let mut removed = mgr.cleanup_leftovers(&["b"]).unwrap();
    removed.sort();
    assert_eq!(removed, ["a", "c", "orphan"]);
    assert_gone(&mgr, &a);
    assert_gone(&mgr, &c);
    assert!(!netns_list().contains(&format!("{prefix}-orphan")));
    assert!(!links().contains(&"wv0ac902f9".to_string()));
    // The live one is untouched and still denied.
    assert_eq!(mgr.get("b").as_ref(), Some(&b));
    assert!(netns_list().contains(&b.netns_name));
    assert!(links().contains(&b.host_veth));
    assert!(nft_table(&prefix).contains(&b.sandbox_ip.to_string()));
    let inside = sh(&format!("ip -n {} -4 addr show dev eth0", b.netns_name));
    assert!(inside.contains(&b.sandbox_ip.to_string()));
    mgr.teardown("b").unwrap();
    assert_gone(&mgr, &b);
    mgr.delete_nft_table().unwrap();
}

/// A tiny HTTP file server on `addr`, port chosen by the OS, in netns `netns` (or the root ns).
struct Server {
    child: Child,
    port: u16,
}

impl Server {
    fn start(netns: Option<&str>, addr: Ipv4Addr, dir: &Path) -> Server {
        let script = "import http.server,os,sys\nos.chdir(sys.argv[2])\nclass H(http.server.SimpleHTTPRequestHandler):\n  def log_message(self,*a): pass\ns=http.server.ThreadingHTTPServer((sys.argv[1],0),H)\nprint(s.server_address[1],flush=True)\ns.serve_forever()\n";
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, "python3"]);
                c
            }
            None => Command::new("python3"),
        };
        let mut child = cmd
            .args(["-c", script, &addr.to_string()])
            .arg(dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line.trim().parse().expect("server printed its port");
        Server { child, port }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A DNS server on `addr:53` in netns `netns` answering every A query with `answer` (other
/// query types get an empty answer).
fn start_dns(netns: &str, addr: Ipv4Addr, answer: Ipv4Addr) -> Server {
    let script = r#"
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
ans = bytes(int(x) for x in sys.argv[2].split('.'))
print(53, flush=True)
while True:
    q, a = s.recvfrom(512)
    i = 12
    while q[i] != 0:
        i += 1 + q[i]
    qend = i + 5
    if q[i + 1:i + 3] == b'\x00\x01':
        r = q[:2] + b'\x81\x80' + q[4:6] + b'\x00\x01\x00\x00\x00\x00' + q[12:qend] \
            + b'\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04' + ans
    else:
        r = q[:2] + b'\x81\x80' + q[4:6] + b'\x00\x00\x00\x00\x00\x00' + q[12:qend]
    s.sendto(r, a)
"#;
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "python3", "-c", script])
        .arg(addr.to_string())
        .arg(answer.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "53", "dns server started");
    Server { child, port: 53 }
}

fn http_get(addr: Ipv4Addr, port: u16) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&(addr, port).into(), Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

#[test]
fn runsc_egress_allowed_denied_and_sandboxes_isolated() {
    skip_unless!("ip", "nft", "runsc", "python3", "losetup", "mkfs.ext4");
    let prefix = common::unique("wtrn");
    let pool = "10.201.3.0/24";
    let inet_ns = common::unique("wtinet");
    let inet_veth = common::unique("wfi");
    let data = common::data_dir();
    let d = data.path().to_path_buf();
    let _cleanup = common::Guard(|| {
        cleanup(&prefix, pool);
        let _ = Cmd::new("ip").args(["netns", "del", &inet_ns]).run();
        let _ = Cmd::new("ip").args(["link", "del", &inet_veth]).run();
        common::force_cleanup_dir(&d);
    });
    let runsc = common::Runsc::new(data.path());

    // A fake "internet": a netns reachable from the root ns over its own veth, with NO route
    // back to the sandbox pool, so only masqueraded traffic gets answers.
    let (inet_host, inet_ip): (Ipv4Addr, Ipv4Addr) =
        ("10.202.3.1".parse().unwrap(), "10.202.3.2".parse().unwrap());
    sh(&format!(
        "ip netns add {inet_ns} && ip link add {inet_veth} type veth peer name eth0 netns {inet_ns} \
         && ip addr add {inet_host}/30 dev {inet_veth} && ip link set {inet_veth} up \
         && ip -n {inet_ns} addr add {inet_ip}/30 dev eth0 && ip -n {inet_ns} link set eth0 up \
         && ip -n {inet_ns} link set lo up"
    ));
    let www = data.path().join("www");
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "internet-ok").unwrap();
    let internet = Server::start(Some(&inet_ns), inet_ip, &www);
    assert!(
        http_get(inet_ip, internet.port)
            .unwrap()
            .contains("internet-ok")
    );

    let _dns = start_dns(&inet_ns, inet_ip, inet_ip);
    let name = common::make_template(
        data.path(),
        "net",
        &[
            ("srv/index.html", "sandbox-b-ok"),
            ("etc/resolv.conf", "nameserver 10.202.3.2\n"),
        ],
    );
    let reg = ImageRegistry::new(data.path());
    let mgr = manager(data.path(), &prefix, pool);
    let open = mgr
        .setup(
            "open",
            NetOptions {
                allow_internet: true,
            },
        )
        .unwrap();
    let closed = mgr
        .setup(
            "closed",
            NetOptions {
                allow_internet: false,
            },
        )
        .unwrap();
    let target = mgr
        .setup(
            "target",
            NetOptions {
                allow_internet: true,
            },
        )
        .unwrap();

    // A server on the host side of `closed`: sandboxes must not be able to open connections
    // to the host.
    let host_www = data.path().join("host-www");
    std::fs::create_dir_all(&host_www).unwrap();
    std::fs::write(host_www.join("index.html"), "host-ok").unwrap();
    let host_server = Server::start(None, closed.host_ip, &host_www);

    let fetch = |url: String| {
        // Not `wget -T`: busybox wget's -T segfaults under gVisor (ptrace); `timeout` works.
        format!(
            "rm -f /tmp/page; timeout 4 wget -O /tmp/page {url} >/dev/null 2>&1 && echo GOT:$(cat /tmp/page) || echo FAILED"
        )
    };
    let run = |id: &str, net: &SandboxNetwork, script: String| -> String {
        let rootfs = SandboxRootfs::mount(data.path(), id, reg.acquire(&name).unwrap()).unwrap();
        mgr.prepare_for_runsc(net).unwrap();
        let bundle = data.path().join("bundles").join(id);
        runsc.bundle(
            &bundle,
            &rootfs.path(),
            Some(&net.netns_path),
            &["/bin/sh", "-c", &script],
        );
        let (_ok, out) = runsc.run(&common::unique(id), &bundle, Duration::from_secs(60));
        rootfs.remove().unwrap();
        out
    };

    // Egress allowed: NATed to the fake internet, by address and by name (DNS over UDP,
    // through the sandbox's /etc/resolv.conf).
    let out = run(
        "open",
        &open,
        format!(
            "{}; {}",
            fetch(format!("http://{inet_ip}:{}/", internet.port)),
            fetch(format!("http://www.internet.test:{}/", internet.port))
        ),
    );
    assert_eq!(
        out.matches("GOT:internet-ok").count(),
        2,
        "open sandbox egress by IP and by name: {out}"
    );

    // Egress denied; the host is not reachable either (from any sandbox), though it serves.
    assert!(
        http_get(closed.host_ip, host_server.port)
            .unwrap()
            .contains("host-ok")
    );
    let host_url = format!("http://{}:{}/", closed.host_ip, host_server.port);
    let out = run(
        "closed",
        &closed,
        format!(
            "{}; {}",
            fetch(format!("http://{inet_ip}:{}/", internet.port)),
            fetch(host_url.clone())
        ),
    );
    assert_eq!(
        out.matches("FAILED").count(),
        2,
        "closed sandbox reached something: {out}"
    );
    let out = run("open", &open, fetch(host_url));
    assert!(
        out.contains("FAILED"),
        "open sandbox must not reach the host: {out}"
    );
    // Allowing egress again (setup is the update path) makes the same fetch work: the
    // denial above was the rule, not a broken sandbox network.
    let reopened = mgr
        .setup(
            "closed",
            NetOptions {
                allow_internet: true,
            },
        )
        .unwrap();
    assert_eq!(reopened.sandbox_ip, closed.sandbox_ip);
    assert!(!nft_table(&prefix).contains(&closed.sandbox_ip.to_string()));
    let out = run(
        "closed",
        &reopened,
        fetch(format!("http://{inet_ip}:{}/", internet.port)),
    );
    assert!(
        out.contains("GOT:internet-ok"),
        "re-allowed sandbox egress: {out}"
    );

    // Isolation: `target` serves HTTP; the host reaches it, another sandbox does not.
    let target_rootfs =
        SandboxRootfs::mount(data.path(), "target", reg.acquire(&name).unwrap()).unwrap();
    mgr.prepare_for_runsc(&target).unwrap();
    let bundle = data.path().join("bundles/target");
    runsc.bundle(
        &bundle,
        &target_rootfs.path(),
        Some(&target.netns_path),
        &["/bin/sh", "-c", "exec httpd -f -p 8080 -h /srv"],
    );
    let target_id = common::unique("target");
    runsc.run_detached(&target_id, &bundle);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        match http_get(target.sandbox_ip, 8080) {
            Ok(body) if body.contains("sandbox-b-ok") => break,
            r if std::time::Instant::now() > deadline => panic!("host cannot reach target: {r:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    let out = run(
        "open",
        &open,
        format!(
            "{}; {}",
            fetch(format!("http://{}:8080/", target.sandbox_ip)),
            fetch(format!("http://{inet_ip}:{}/", internet.port))
        ),
    );
    assert!(
        !out.contains("GOT:sandbox-b-ok"),
        "sandbox reached another sandbox: {out}"
    );
    assert!(out.contains("FAILED"), "{out}");
    assert!(
        out.contains("GOT:internet-ok"),
        "positive control in the same run: {out}"
    );
    runsc.delete(&target_id).unwrap();
    target_rootfs.remove().unwrap();

    for id in ["open", "closed", "target"] {
        mgr.teardown(id).unwrap();
    }
    for net in [&open, &closed, &target] {
        assert_gone(&mgr, net);
    }
    mgr.delete_nft_table().unwrap();
    assert!(common::mounts_under(data.path()).is_empty());
    assert!(common::loops_under(data.path()).is_empty());
}
