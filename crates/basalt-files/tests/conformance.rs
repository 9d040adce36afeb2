//! One conformance suite for every `Storage` implementation: local disk, and S3 against a
//! real `moto_server` (PyPI `moto[server]`, installed by `.ci/run`) started on a loopback
//! port by the test itself. The same cases, in the same order, run on both.

mod support;

use basalt_files::{
    ByteRange, Durability, LocalStorage, ObjectKey, S3Settings, S3Storage, Storage, StorageError,
};
use futures_util::StreamExt;
use support::{Moto, Pattern};

fn key(k: &str) -> ObjectKey {
    ObjectKey::new(k).expect("valid key")
}

async fn put_bytes(s: &dyn Storage, k: &str, bytes: &[u8]) -> basalt_files::ObjectMeta {
    let mut body = bytes;
    s.put(&key(k), &mut body, 1 << 30).await.expect("put")
}

async fn read_all(
    s: &dyn Storage,
    k: &str,
    range: Option<ByteRange>,
) -> Result<Vec<u8>, StorageError> {
    let d = s.get(&key(k), range).await?;
    let mut out = Vec::new();
    let mut body = d.body;
    while let Some(chunk) = body.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

async fn keys(s: &dyn Storage, prefix: &str) -> Vec<String> {
    s.list_prefix(&key(prefix))
        .await
        .expect("list")
        .into_iter()
        .map(|m| m.key.to_string())
        .collect()
}

async fn round_trip_and_ranges(s: &dyn Storage) {
    let meta = put_bytes(s, "rt/r1/hello_1234567890.txt", b"hello world").await;
    assert_eq!(meta.size, 11);
    assert!(
        meta.etag.starts_with('"') && meta.etag.len() > 2,
        "{meta:?}"
    );
    let head = s
        .head(&key("rt/r1/hello_1234567890.txt"))
        .await
        .expect("head");
    assert_eq!((head.size, &head.etag), (11, &meta.etag));
    let age = std::time::SystemTime::now()
        .duration_since(head.last_modified)
        .unwrap_or_default();
    assert!(age.as_secs() < 3600, "{head:?}");

    let k = "rt/r1/hello_1234567890.txt";
    assert_eq!(read_all(s, k, None).await.expect("get"), b"hello world");
    let d = s
        .get(&key(k), Some(ByteRange::Bounded { start: 1, end: 4 }))
        .await
        .expect("range");
    assert_eq!((d.range.clone(), d.meta.size), (1..4, 11));
    assert_eq!(
        read_all(s, k, Some(ByteRange::Bounded { start: 1, end: 4 }))
            .await
            .expect("range"),
        b"ell"
    );
    assert_eq!(
        read_all(s, k, Some(ByteRange::Bounded { start: 6, end: 100 }))
            .await
            .expect("range"),
        b"world"
    );
    assert_eq!(
        read_all(s, k, Some(ByteRange::From(10)))
            .await
            .expect("range"),
        b"d"
    );
    assert_eq!(
        read_all(s, k, Some(ByteRange::Last(5)))
            .await
            .expect("range"),
        b"world"
    );
    for bad in [
        ByteRange::From(11),
        ByteRange::Bounded { start: 20, end: 30 },
        ByteRange::Last(0),
    ] {
        let e = s.get(&key(k), Some(bad)).await.expect_err("unsatisfiable");
        assert!(
            matches!(e, StorageError::RangeNotSatisfiable { size: 11 }),
            "{bad:?}: {e:?}"
        );
    }
    // Empty objects exist and read empty.
    assert_eq!(
        put_bytes(s, "rt/r1/empty_1234567890.txt", b"").await.size,
        0
    );
    assert_eq!(
        read_all(s, "rt/r1/empty_1234567890.txt", None)
            .await
            .expect("get"),
        b""
    );
}

async fn size_limit_stores_nothing(s: &dyn Storage) {
    // At the limit is fine.
    let mut body: &[u8] = &[7u8; 1000];
    assert_eq!(
        s.put(&key("lim/r/exact.bin"), &mut body, 1000)
            .await
            .expect("at limit")
            .size,
        1000
    );
    // Past it, mid-stream (several chunks in), nothing is left behind.
    let mut big = Pattern::new(300 * 1024, 1);
    let e = s
        .put(&key("lim/r/big.bin"), &mut big, 200 * 1024)
        .await
        .expect_err("too large");
    assert!(
        matches!(e, StorageError::TooLarge { max_size } if max_size == 200 * 1024),
        "{e:?}"
    );
    assert!(big.produced() < 300 * 1024, "stopped reading early");
    // Past it after a whole multipart part (S3 starts a multipart upload at 5 MiB).
    let mut huge = Pattern::new(20 << 20, 2);
    let e = s
        .put(&key("lim/r/huge.bin"), &mut huge, 12 << 20)
        .await
        .expect_err("too large");
    assert!(matches!(e, StorageError::TooLarge { .. }), "{e:?}");
    // A body that fails mid-stream is the uploader's fault, and stores nothing either.
    let mut broken = Pattern::new(10 << 20, 3).failing_after(9 << 20);
    let e = s
        .put(&key("lim/r/broken.bin"), &mut broken, 1 << 30)
        .await
        .expect_err("broken body");
    assert!(matches!(e, StorageError::Upload(_)), "{e:?}");
    for k in ["lim/r/big.bin", "lim/r/huge.bin", "lim/r/broken.bin"] {
        assert!(
            matches!(s.head(&key(k)).await, Err(StorageError::NotFound(_))),
            "{k}"
        );
    }
    assert_eq!(keys(s, "lim").await, ["lim/r/exact.bin"]);
}

async fn missing_keys(s: &dyn Storage) {
    let k = key("missing/r/nothing.txt");
    assert!(matches!(s.head(&k).await, Err(StorageError::NotFound(_))));
    assert!(matches!(
        s.get(&k, None).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        s.get(&k, Some(ByteRange::From(0))).await,
        Err(StorageError::NotFound(_))
    ));
    s.delete(&k)
        .await
        .expect("deleting a missing object succeeds");
    assert!(keys(s, "missing").await.is_empty());
    // Under a key that is an object, not a prefix.
    put_bytes(s, "missing/r/file.txt", b"x").await;
    let under = key("missing/r/file.txt/inner.txt");
    assert!(matches!(
        s.head(&under).await,
        Err(StorageError::NotFound(_))
    ));
    assert!(matches!(
        s.get(&under, None).await,
        Err(StorageError::NotFound(_))
    ));
    s.delete(&key("missing/r/file.txt")).await.expect("delete");
    assert_eq!(
        s.delete_prefix(&key("missing"))
            .await
            .expect("delete prefix"),
        0
    );
}

async fn delete_and_prefixes(s: &dyn Storage) {
    for k in [
        "del/r1/a_1234567890.png",
        "del/r1/thumbs_a_1234567890.png/10x10_a_1234567890.png",
        "del/r2/b_1234567890.png",
        "del/r10/c_1234567890.png",
        "delx/r1/d_1234567890.png",
    ] {
        put_bytes(s, k, k.as_bytes()).await;
    }
    assert_eq!(
        keys(s, "del").await,
        [
            "del/r1/a_1234567890.png",
            "del/r1/thumbs_a_1234567890.png/10x10_a_1234567890.png",
            "del/r10/c_1234567890.png",
            "del/r2/b_1234567890.png",
        ]
    );
    assert_eq!(
        keys(s, "del/r1/a_1234567890.png").await,
        ["del/r1/a_1234567890.png"]
    );
    s.delete(&key("del/r2/b_1234567890.png"))
        .await
        .expect("delete");
    assert!(matches!(
        s.head(&key("del/r2/b_1234567890.png")).await,
        Err(StorageError::NotFound(_))
    ));
    // A record's prefix takes its files and thumbs, not a record whose id extends it.
    assert_eq!(
        s.delete_prefix(&key("del/r1"))
            .await
            .expect("delete prefix"),
        2
    );
    assert_eq!(keys(s, "del").await, ["del/r10/c_1234567890.png"]);
    assert_eq!(keys(s, "delx").await, ["delx/r1/d_1234567890.png"]);
    let mut all: Vec<String> = listed(s)
        .await
        .into_iter()
        .filter(|k| k.starts_with("del"))
        .collect();
    all.sort();
    assert_eq!(
        all,
        ["del/r10/c_1234567890.png", "delx/r1/d_1234567890.png"]
    );
}

async fn large_object_streams(s: &dyn Storage) {
    const SIZE: u64 = 64 << 20;
    let mut body = Pattern::new(SIZE, 42);
    let meta = s
        .put(&key("large/r/big.bin"), &mut body, SIZE)
        .await
        .expect("put 64 MiB");
    assert_eq!(meta.size, SIZE);
    // Read back chunk by chunk and compare with the pattern regenerated, never whole.
    let d = s.get(&key("large/r/big.bin"), None).await.expect("get");
    let mut expected = Pattern::new(SIZE, 42);
    let mut body = d.body;
    let mut seen = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.expect("chunk");
        assert!(expected.matches(&chunk), "content differs at byte {seen}");
        seen += chunk.len() as u64;
    }
    assert_eq!(seen, SIZE);
    let tail = read_all(s, "large/r/big.bin", Some(ByteRange::Last(3)))
        .await
        .expect("tail");
    assert_eq!(tail, Pattern::new(SIZE, 42).bytes_at(SIZE - 3, 3));
    s.delete(&key("large/r/big.bin")).await.expect("delete");
}

/// Every key `list_all` streams, in its order.
async fn listed(s: &dyn Storage) -> Vec<String> {
    let mut out = Vec::new();
    let mut listing = s.list_all();
    while let Some(m) = listing.next().await {
        out.push(m.expect("list all").key.to_string());
    }
    out
}

/// More objects than one page of a listing (S3 answers 1000 keys a request, the local
/// walker holds 256 ahead): every one is listed once, and a record's objects, thumbs
/// included, come together. Reading only part of the listing is fine.
async fn listing_streams_past_a_page(s: &dyn Storage) {
    const RECORDS: usize = 700;
    for r in 0..RECORDS {
        put_bytes(s, &format!("many/r{r:03}/f.txt"), b"f").await;
        if r % 2 == 0 {
            put_bytes(s, &format!("many/r{r:03}/thumbs_f.txt/1x1_f.txt"), b"t").await;
        }
    }
    let all: Vec<String> = listed(s)
        .await
        .into_iter()
        .filter(|k| k.starts_with("many/"))
        .collect();
    assert_eq!(all.len(), RECORDS + RECORDS / 2);
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "listed twice");
    // Each record directory is one run in the listing.
    let mut runs: Vec<&str> = all
        .iter()
        .map(|k| k.split('/').nth(1).expect("record"))
        .collect();
    runs.dedup();
    assert_eq!(runs.len(), RECORDS, "a record's objects were split up");
    let mut first = s.list_all();
    assert!(first.next().await.expect("one object").is_ok());
    drop(first);
    assert_eq!(
        s.delete_prefix(&key("many")).await.expect("delete prefix"),
        (RECORDS + RECORDS / 2) as u64
    );
}

/// A spooled file (positioned past a prefix the put must skip) stored by `put_file`: the
/// rest of it, whole; past the limit nothing. `get_head` answers the first bytes.
async fn files_and_heads(s: &dyn Storage) {
    use std::io::{Seek, SeekFrom, Write};
    const SIZE: u64 = 3 << 20;
    let spooled = |skip: u64| {
        let mut f = tempfile::tempfile().expect("spool");
        f.write_all(b"skipped").expect("write");
        f.write_all(&Pattern::new(SIZE, 9).bytes_at(0, SIZE))
            .expect("write");
        f.seek(SeekFrom::Start(skip)).expect("seek");
        f
    };
    let meta = s
        .put_file(&key("pf/r/spooled.bin"), spooled(7), SIZE)
        .await
        .expect("put_file");
    assert_eq!(meta.size, SIZE);
    let back = read_all(s, "pf/r/spooled.bin", None).await.expect("get");
    assert_eq!(back, Pattern::new(SIZE, 9).bytes_at(0, SIZE));
    let e = s
        .put_file(&key("pf/r/over.bin"), spooled(7), SIZE - 1)
        .await
        .expect_err("too large");
    assert!(matches!(e, StorageError::TooLarge { .. }), "{e:?}");
    assert!(matches!(
        s.head(&key("pf/r/over.bin")).await,
        Err(StorageError::NotFound(_))
    ));
    let (m, head) = s
        .get_head(&key("pf/r/spooled.bin"), 3072)
        .await
        .expect("get_head");
    assert_eq!(
        (m.size, head),
        (SIZE, Pattern::new(SIZE, 9).bytes_at(0, 3072))
    );
    put_bytes(s, "pf/r/short.txt", b"abc").await;
    let (m, head) = s
        .get_head(&key("pf/r/short.txt"), 3072)
        .await
        .expect("get_head short");
    assert_eq!((m.size, head.as_slice()), (3, &b"abc"[..]));
    assert!(matches!(
        s.get_head(&key("pf/r/none.txt"), 10).await,
        Err(StorageError::NotFound(_))
    ));
    assert_eq!(s.delete_prefix(&key("pf")).await.expect("delete"), 2);
}

/// Bytes already in memory stored by `put_bytes`: empty, small, and past one S3 part (a
/// multipart upload there).
async fn bytes_in_memory(s: &dyn Storage) {
    for (name, size) in [
        ("empty.bin", 0u64),
        ("small.bin", 1000),
        ("parts.bin", (5 << 20) + 7),
    ] {
        let body = Pattern::new(size, 3).bytes_at(0, size);
        let k = format!("pb/r/{name}");
        let meta = s
            .put_bytes(&key(&k), body.clone().into())
            .await
            .expect("put_bytes");
        assert_eq!(meta.size, size, "{name}");
        assert_eq!(read_all(s, &k, None).await.expect("get"), body, "{name}");
    }
    assert_eq!(s.delete_prefix(&key("pb")).await.expect("delete"), 3);
}

async fn suite(s: &dyn Storage) {
    round_trip_and_ranges(s).await;
    files_and_heads(s).await;
    bytes_in_memory(s).await;
    size_limit_stores_nothing(s).await;
    missing_keys(s).await;
    delete_and_prefixes(s).await;
    large_object_streams(s).await;
    listing_streams_past_a_page(s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_storage_conforms() {
    // Both promises: fsynced (the default) and page cache only.
    for durability in [Durability::PowerLoss, Durability::Process] {
        let dir = tempfile::tempdir().expect("tmp");
        let s = LocalStorage::with_durability(dir.path().join("storage"), durability);
        assert_eq!(s.durability(), durability);
        suite(&s).await;
        // No temporary file survives a refused or failed write.
        let leftovers: Vec<_> = walk(&dir.path().join("storage"))
            .into_iter()
            .filter(|name| name.starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }
    assert_eq!(
        LocalStorage::new("storage").durability(),
        Durability::PowerLoss
    );
}

/// On tmpfs, which refuses reads that must not block (`RWF_NOWAIT`), downloads fall back
/// to the blocking pool and read the same bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_storage_conforms_on_tmpfs() {
    let Ok(dir) = tempfile::tempdir_in("/dev/shm") else {
        eprintln!("skipped: no /dev/shm");
        return;
    };
    let s = LocalStorage::with_durability(dir.path().join("storage"), Durability::Process);
    suite(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_storage_conforms() {
    let Some(moto) = Moto::start().await else {
        return;
    };
    let s = S3Storage::new(&moto.settings("conformance")).expect("client");
    suite(&s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_virtual_host_style_settings_build() {
    // Virtual-hosted addressing puts the bucket in the host name; it is only built here,
    // as moto on 127.0.0.1 cannot be reached through `bucket.127.0.0.1`.
    let settings = S3Settings {
        bucket: "b".into(),
        region: "eu-west-1".into(),
        endpoint: "https://s3.example.invalid".into(),
        access_key: "k".into(),
        secret: "very-secret".into(),
        force_path_style: false,
    };
    assert!(S3Storage::new(&settings).is_ok());
    assert!(!format!("{settings:?}").contains("very-secret"));
    let no_bucket = S3Settings {
        bucket: String::new(),
        ..settings.clone()
    };
    assert!(matches!(
        S3Storage::new(&no_bucket),
        Err(StorageError::Config(_))
    ));
    let no_scheme = S3Settings {
        endpoint: "s3.example.invalid".into(),
        ..settings
    };
    assert!(matches!(
        S3Storage::new(&no_scheme),
        Err(StorageError::Config(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_server_down_is_a_clear_error() {
    // A port nothing listens on: connections are refused at once.
    let port = support::free_port();
    let s = S3Storage::new(&S3Settings {
        bucket: "down".into(),
        region: "us-east-1".into(),
        endpoint: format!("http://127.0.0.1:{port}"),
        access_key: "test".into(),
        secret: "test".into(),
        force_path_style: true,
    })
    .expect("client");
    let k = key("c/r/a.txt");
    let mut body: &[u8] = b"data";
    let outcomes = [
        s.put(&k, &mut body, 100).await.map(|_| ()),
        s.get(&k, None).await.map(|_| ()),
        s.head(&k).await.map(|_| ()),
        s.delete(&k).await,
        s.list_prefix(&key("c")).await.map(|_| ()),
        s.list_all()
            .next()
            .await
            .expect("an error, not an empty listing")
            .map(|_| ()),
    ];
    for o in outcomes {
        assert!(matches!(o, Err(StorageError::Backend(_))), "{o:?}");
    }
}

fn walk(root: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut pending = vec![root.to_path_buf()];
    while let Some(p) = pending.pop() {
        if let Ok(entries) = std::fs::read_dir(&p) {
            for e in entries.flatten() {
                pending.push(e.path());
                out.push(e.file_name().to_string_lossy().into_owned());
            }
        }
    }
    out
}
