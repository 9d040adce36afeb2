//! The cache's bounds and its disk tier: many objects stay within the memory and disk
//! bounds (with evictions counted), files on disk stay within `disk_max`, and entries on
//! disk survive a restart of the edge and are served without asking the origin.

use std::path::Path;
use std::time::Duration;

use crate::support::cache_origin::{self, *};

const CACHED: &str = "cache = { zone = \"z\" }";

fn bytes_on_disk(dir: &Path) -> (u64, usize) {
    let mut total = (0, 0);
    for e in std::fs::read_dir(dir).expect("dir") {
        let e = e.expect("entry");
        total.0 += e.metadata().expect("md").len();
        total.1 += 1;
    }
    total
}

#[tokio::test]
async fn memory_stays_within_its_bound_by_evicting_the_least_recently_used() {
    let o = origin().await;
    let body = "m".repeat(4000);
    for i in 0..100 {
        o.set(
            &format!("/o{i}"),
            script(&[("cache-control", "max-age=600")], &body),
        );
    }
    let zone = "memory_max = \"64KB\"\nmax_object = \"8KB\"";
    let (edge, addr) = edge(&config(o.addr, zone, CACHED)).await;
    let c = client();
    for i in 0..100 {
        get(&c, &format!("http://{addr}/o{i}"), &[]).await;
    }
    let held = metric(&edge, "basalt_edge_cache_bytes{tier=\"memory\",zone=\"z\"}").await;
    let evictions = metric(
        &edge,
        "basalt_edge_cache_evictions_total{tier=\"memory\",zone=\"z\"}",
    )
    .await;
    assert!(held > 0.0 && held <= 65536.0, "memory bytes {held}");
    assert!(evictions >= 80.0, "evictions {evictions}");
    // The newest objects are held, the oldest were evicted.
    assert_eq!(
        get(&c, &format!("http://{addr}/o99"), &[]).await.x_cache,
        "HIT"
    );
    assert_eq!(
        get(&c, &format!("http://{addr}/o0"), &[]).await.x_cache,
        "MISS"
    );
    let hits = metric(
        &edge,
        "basalt_edge_cache_requests_total{result=\"hit\",zone=\"z\"}",
    )
    .await;
    assert_eq!(hits, 1.0);
}

#[tokio::test]
async fn the_disk_tier_is_bounded_and_survives_a_restart() {
    let o = origin().await;
    let body = "d".repeat(4000);
    for i in 0..30 {
        o.set(
            &format!("/f{i}"),
            script(
                &[("cache-control", "max-age=600"), ("cache-tag", "files")],
                &body,
            ),
        );
    }
    let dir = tempfile::tempdir().expect("tmp");
    let zone = format!(
        "memory_max = \"16KB\"\nmax_object = \"8KB\"\ndisk_path = \"{}\"\ndisk_max = \"40KB\"",
        dir.path().display()
    );
    let toml = config(o.addr, &zone, CACHED);
    let (edge, addr) = edge(&toml).await;
    let c = client();
    for i in 0..30 {
        get(&c, &format!("http://{addr}/f{i}"), &[]).await;
    }
    let (bytes, files) = bytes_on_disk(dir.path());
    assert!(bytes <= 40 * 1024, "{bytes} bytes on disk");
    assert!((5..30).contains(&files), "{files} files");
    let evicted = metric(
        &edge,
        "basalt_edge_cache_evictions_total{tier=\"disk\",zone=\"z\"}",
    )
    .await;
    assert!(evicted >= 20.0, "disk evictions {evicted}");
    // Memory (16KB) holds only the last three objects; f26 is read back from disk.
    let g = get(&c, &format!("http://{addr}/f26"), &[]).await;
    assert_eq!((g.x_cache.as_str(), g.body.len()), ("HIT", 4000));
    edge.shutdown(Duration::from_secs(2)).await;
    drop(edge);

    // A new edge on the same directory serves what is on disk without the origin.
    let before = o.hits("/f29");
    let (edge2, addr2) = cache_origin::edge(&toml).await;
    let g = get(&c, &format!("http://{addr2}/f29"), &[]).await;
    assert_eq!(
        (g.status, g.x_cache.as_str(), g.body.len()),
        (200, "HIT", 4000)
    );
    assert_eq!(o.hits("/f29"), before);
    let on_disk = metric(
        &edge2,
        "basalt_edge_cache_entries{tier=\"disk\",zone=\"z\"}",
    )
    .await;
    assert_eq!(on_disk as usize, files);
    // Tags were rebuilt from the files too.
    let admin = edge2.admin_addr().expect("admin");
    let r: serde_json::Value = c
        .post(format!("http://{admin}/cache/purge"))
        .body(r#"{"tag": "files"}"#)
        .send()
        .await
        .expect("purge")
        .json()
        .await
        .expect("json");
    assert_eq!(r["purged"].as_u64(), Some(files as u64));
    assert_eq!(bytes_on_disk(dir.path()).1, 0);
    assert_eq!(
        get(&c, &format!("http://{addr2}/f29"), &[]).await.x_cache,
        "MISS"
    );
}

#[tokio::test]
async fn leftovers_and_broken_files_are_cleared_at_start() {
    let o = origin().await;
    o.set("/x", script(&[("cache-control", "max-age=600")], "x"));
    let dir = tempfile::tempdir().expect("tmp");
    // What a crash mid-write leaves, and a file that is not a cache entry at all.
    std::fs::write(dir.path().join(".tmp-0123456789abcdef"), b"half").expect("write");
    std::fs::write(dir.path().join("00ff.entry"), b"\x00\x00\x00\x05{bad").expect("write");
    let zone = format!("disk_path = \"{}\"", dir.path().display());
    let (_edge, addr) = edge(&config(o.addr, &zone, CACHED)).await;
    assert_eq!(bytes_on_disk(dir.path()).1, 0);
    let c = client();
    assert_eq!(
        get(&c, &format!("http://{addr}/x"), &[]).await.x_cache,
        "MISS"
    );
    assert_eq!(
        get(&c, &format!("http://{addr}/x"), &[]).await.x_cache,
        "HIT"
    );
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1);
    assert!(names[0].ends_with(".entry") && !names[0].starts_with(".tmp"));
}
