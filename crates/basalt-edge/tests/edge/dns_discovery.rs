//! DNS discovery against a real DNS server (dnsmasq on a loopback port, installed by
//! .ci/run): pool targets appear and disappear as the A and SRV records change, a live
//! connection survives its target leaving the set, and a failed resolution keeps the last
//! good targets.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::support::l4::*;
use tokio::io::AsyncWriteExt;

/// A dnsmasq answering only from its arguments and a hosts file, killed on drop.
struct Dnsmasq {
    child: Child,
    port: u16,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dnsmasq_binary() -> PathBuf {
    for dir in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/sbin", "/sbin"])
    {
        let p = Path::new(dir).join("dnsmasq");
        if p.is_file() {
            return p;
        }
    }
    panic!("dnsmasq not found: install Debian's dnsmasq-base (.ci/run does)");
}

/// A port free for both UDP and TCP (dnsmasq binds both).
fn free_dns_port() -> u16 {
    loop {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

impl Dnsmasq {
    /// Starts on a fresh free port, trying another if a racing process took the first.
    async fn start_anywhere(args: &[String]) -> Dnsmasq {
        for _ in 0..5 {
            if let Some(d) = Dnsmasq::try_start(free_dns_port(), args).await {
                return d;
            }
        }
        panic!("dnsmasq did not start");
    }

    async fn start(port: u16, args: &[String]) -> Dnsmasq {
        Dnsmasq::try_start(port, args)
            .await
            .expect("dnsmasq listening")
    }

    async fn try_start(port: u16, args: &[String]) -> Option<Dnsmasq> {
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
            .expect("utf8");
        let child = Command::new(dnsmasq_binary())
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--local-ttl=1",
                "--pid-file=",
                &format!("--port={port}"),
                &format!("--user={}", user.trim()),
            ])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq starts");
        let mut d = Dnsmasq { child, port };
        // dnsmasq also listens on TCP: ready once that accepts (bounded: 10 s).
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return Some(d);
            }
            if d.child.try_wait().ok().flatten().is_some() {
                return None; // exited: the port was taken
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        None
    }

    /// Re-reads the hosts files (`--addn-hosts`).
    fn reread(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "SIGHUP delivered");
    }
}

fn stream_over_dns(targets: &str, dns_port: u16) -> String {
    format!(
        "[edge]\n[[edge.streams]]\nname = \"s\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n\
         [edge.pools.p]\ntargets = [{targets}]\nretries = 0\n\
         [edge.pools.p.dns]\nresolver = \"127.0.0.1:{dns_port}\"\nmin_ttl_ms = 100\nmax_ttl_ms = 1000\ntimeout_ms = 500\n"
    )
}

async fn names(addr: SocketAddr, n: usize) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for _ in 0..n {
        *seen.entry(connect_named(addr).await.1).or_default() += 1;
    }
    seen
}

#[tokio::test]
async fn targets_follow_the_a_records_and_a_failed_resolution_keeps_the_last_good_set() {
    let a = tcp_echo("a").await;
    let port = a.addr.port();
    let _b = tcp_echo_on("b", SocketAddr::from(([127, 0, 0, 2], port))).await;
    let dir = tempfile::tempdir().expect("dir");
    let hosts = dir.path().join("hosts");
    std::fs::write(&hosts, "127.0.0.1 svc.test\n").expect("hosts");
    let dns = Dnsmasq::start_anywhere(&[format!("--addn-hosts={}", hosts.display())]).await;
    let config = stream_over_dns(&format!("{{ dns = \"svc.test:{port}\" }}"), dns.port);
    let edge = start(&config).await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    let count = || metric(&edge, "dns_pool_targets", &[("pool", "p")]);

    assert!(
        eventually(async || count() == 1.0).await,
        "first answer applied"
    );
    assert_eq!(names(addr, 4).await, HashMap::from([("a".to_string(), 4)]));
    // A reload starts the new pool from the resolved set instead of an empty one.
    edge.apply(edge_config::parse(&config).expect("parses"))
        .await
        .expect("reload");
    assert_eq!(names(addr, 2).await, HashMap::from([("a".to_string(), 2)]));
    let (mut live, name) = connect_named(addr).await;
    assert_eq!(name, "a");

    std::fs::write(&hosts, "127.0.0.1 svc.test\n127.0.0.2 svc.test\n").expect("hosts");
    dns.reread();
    assert!(
        eventually(async || count() == 2.0).await,
        "a second address appears"
    );
    let seen = names(addr, 10).await;
    assert_eq!(seen.get("a"), Some(&5), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&5), "{seen:?}");

    std::fs::write(&hosts, "127.0.0.2 svc.test\n").expect("hosts");
    dns.reread();
    assert!(
        eventually(async || count() == 1.0).await,
        "the first address disappears"
    );
    assert_eq!(names(addr, 4).await, HashMap::from([("b".to_string(), 4)]));
    // The connection to the departed target was not cut.
    live.write_all(b"still here\n").await.expect("write");
    assert_eq!(read_line(&mut live).await, "still here");

    // The DNS server goes away: resolutions fail, the last good set keeps serving.
    drop(dns);
    assert!(
        eventually(async || metric(&edge, "dns_resolutions_total", &[("result", "error")]) >= 1.0)
            .await,
        "failed resolutions are counted"
    );
    assert_eq!(count(), 1.0);
    assert_eq!(names(addr, 3).await, HashMap::from([("b".to_string(), 3)]));
}

#[tokio::test]
async fn srv_records_give_ports_weights_and_priorities() {
    let (a, b, backup) = (
        tcp_echo("a").await,
        tcp_echo("b").await,
        tcp_echo("backup").await,
    );
    let srv = |records: &[(SocketAddr, u16, u16)]| {
        let mut args = vec!["--host-record=up.test,127.0.0.1".to_string()];
        for (addr, priority, weight) in records {
            args.push(format!(
                "--srv-host=_echo._tcp.test,up.test,{},{priority},{weight}",
                addr.port()
            ));
        }
        args
    };
    let dns =
        Dnsmasq::start_anywhere(&srv(&[(a.addr, 0, 3), (b.addr, 0, 1), (backup.addr, 1, 1)])).await;
    let dns_port = dns.port;
    let edge = start(&stream_over_dns("{ srv = \"_echo._tcp.test\" }", dns_port)).await;
    let addr = tcp_addr(&edge, "127.0.0.1:0");
    let count = || metric(&edge, "dns_pool_targets", &[("pool", "p")]);
    assert!(
        eventually(async || count() == 2.0).await,
        "the priority-0 records are used"
    );
    // Smooth weighted round robin over weights 3 and 1.
    let seen = names(addr, 40).await;
    assert_eq!(seen.get("a"), Some(&30), "{seen:?}");
    assert_eq!(seen.get("b"), Some(&10), "{seen:?}");
    assert_eq!(seen.get("backup"), None);

    // New records (dnsmasq re-reads its arguments only on a restart, same port).
    drop(dns);
    let _dns = Dnsmasq::start(dns_port, &srv(&[(b.addr, 0, 1)])).await;
    assert!(
        eventually(async || {
            count() == 1.0 && metric(&edge, "dns_resolutions_total", &[("result", "ok")]) > 0.0
        })
        .await
    );
    assert!(
        eventually(async || names(addr, 1).await.contains_key("b")).await,
        "the remaining record is used"
    );
    assert_eq!(names(addr, 5).await, HashMap::from([("b".to_string(), 5)]));
}
