//! Active health checks: a task per pool probes each target (HTTP GET with an expected
//! status, or a TCP connect) and flips it after `rise` successes or `fall` failures. The
//! task holds only a weak reference, so it ends when a reload drops the pool.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::{Pool, Target};
use crate::config::HealthConfig;

pub fn spawn(pool: &Arc<Pool>) {
    let Some(cfg) = pool.health.clone() else {
        return;
    };
    let weak: Weak<Pool> = Arc::downgrade(pool);
    tokio::spawn(async move {
        // By target address, as DNS discovery may change the set between ticks.
        // > 0: consecutive successes, < 0: failures.
        let mut streaks: HashMap<String, i64> = HashMap::new();
        let mut interval = tokio::time::interval(Duration::from_millis(cfg.interval_ms));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let Some(pool) = weak.upgrade() else {
                return;
            };
            let targets = pool.targets();
            let n = targets.len();
            streaks.retain(|a, _| targets.iter().any(|t| &t.address == a));
            let mut set = tokio::task::JoinSet::new();
            for (i, t) in targets.iter().enumerate() {
                let (t, cfg) = (t.clone(), cfg.clone());
                set.spawn(async move { (i, check(&t, &cfg).await) });
            }
            let mut results = vec![false; n];
            while let Some(r) = set.join_next().await {
                if let Ok((i, ok)) = r {
                    results[i] = ok;
                }
            }
            drop(pool);
            let Some(pool) = weak.upgrade() else {
                return;
            };
            for (i, ok) in results.into_iter().enumerate() {
                let t = &targets[i];
                let streak = streaks.entry(t.address.clone()).or_insert(0);
                *streak = match (ok, *streak) {
                    (true, s) if s > 0 => s + 1,
                    (true, _) => 1,
                    (false, s) if s < 0 => s - 1,
                    (false, _) => -1,
                };
                let was = t.is_healthy();
                if !was && *streak >= i64::from(cfg.rise) {
                    t.set_healthy(true);
                    tracing::info!(pool = %pool.name, target = %t.address, "target healthy");
                } else if was && -*streak >= i64::from(cfg.fall) {
                    t.set_healthy(false);
                    tracing::warn!(pool = %pool.name, target = %t.address, "target unhealthy");
                }
                pool.metrics
                    .set_health(&pool.name, &t.address, t.is_healthy());
            }
        }
    });
}

async fn check(t: &Target, cfg: &HealthConfig) -> bool {
    let timeout = Duration::from_millis(cfg.timeout_ms);
    tokio::time::timeout(timeout, probe(t, cfg))
        .await
        .unwrap_or(false)
}

async fn probe(t: &Target, cfg: &HealthConfig) -> bool {
    let Ok(mut stream) = TcpStream::connect(t.authority.as_str()).await else {
        return false;
    };
    let Some(path) = &cfg.path else {
        return true;
    };
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: basalt-edge-health\r\nConnection: close\r\n\r\n",
        t.authority
    );
    if stream.write_all(req.as_bytes()).await.is_err() {
        return false;
    }
    let mut buf = vec![0u8; 1024];
    let mut len = 0;
    loop {
        match stream.read(&mut buf[len..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => len += n,
        }
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut resp = httparse::Response::new(&mut headers);
        match resp.parse(&buf[..len]) {
            Ok(_) if resp.code.is_some() => return resp.code == Some(cfg.expect_status),
            // The status line is all we need; it fits in the buffer or the reply is bogus.
            Err(httparse::Error::TooManyHeaders) => return resp.code == Some(cfg.expect_status),
            Err(_) => return false,
            Ok(_) if len == buf.len() => return false,
            Ok(_) => continue,
        }
    }
}
