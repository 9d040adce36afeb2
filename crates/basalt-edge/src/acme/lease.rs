//! One issuer per certificate across nodes sharing a store: a lease file (owner id and
//! expiry) that only its holder refreshes and that anyone may take once it has expired.
//! Reading and writing it happens under an advisory lock on a sibling file, so two nodes
//! can never both decide they took over.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub struct Lease {
    path: PathBuf,
    lock: PathBuf,
    owner: String,
    ttl: Duration,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Lease {
    pub fn new(store: &Path, primary: &str, owner: &str, ttl: Duration) -> Self {
        Self {
            path: store.join(format!("{primary}.lease")),
            lock: store.join(format!("{primary}.lock")),
            owner: owner.to_string(),
            ttl,
        }
    }

    /// Takes the lease if it is free, expired or already ours; refreshes it in the last case.
    pub fn acquire(&self) -> std::io::Result<bool> {
        self.locked(|holder| match holder {
            Some((owner, expiry)) if owner != self.owner && expiry > now_secs() => Ok(false),
            _ => self.write().map(|()| true),
        })
    }

    /// Extends the lease while issuing; `false` when another node has taken it.
    pub fn refresh(&self) -> std::io::Result<bool> {
        self.locked(|holder| match holder {
            Some((owner, _)) if owner == self.owner => self.write().map(|()| true),
            _ => Ok(false),
        })
    }

    /// Gives the lease up (if still ours) so another node need not wait for its expiry.
    pub fn release(&self) -> std::io::Result<()> {
        self.locked(|holder| match holder {
            Some((owner, _)) if owner == self.owner => match std::fs::remove_file(&self.path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            _ => Ok(()),
        })
    }

    fn locked<T>(
        &self,
        f: impl FnOnce(Option<(String, u64)>) -> std::io::Result<T>,
    ) -> std::io::Result<T> {
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock)?;
        lock.lock()?;
        let result = f(self.read());
        let _ = lock.unlock();
        result
    }

    /// `None` when absent or unreadable: a torn or foreign file is treated as free.
    fn read(&self) -> Option<(String, u64)> {
        let mut s = String::new();
        std::fs::File::open(&self.path)
            .ok()?
            .read_to_string(&mut s)
            .ok()?;
        let (owner, expiry) = s.trim().split_once(' ')?;
        Some((owner.to_string(), expiry.parse().ok()?))
    }

    fn write(&self) -> std::io::Result<()> {
        let body = format!("{} {}\n", self.owner, now_secs() + self.ttl.as_secs());
        super::store::write_atomic(&self.path, body.as_bytes(), true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_and_release_frees_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = Lease::new(dir.path(), "example.com", "node-a", Duration::from_secs(60));
        let b = Lease::new(dir.path(), "example.com", "node-b", Duration::from_secs(60));
        assert!(a.acquire().unwrap());
        assert!(!b.acquire().unwrap());
        assert!(a.acquire().unwrap(), "the holder may take it again");
        assert!(a.refresh().unwrap());
        assert!(!b.refresh().unwrap(), "only the holder refreshes");
        b.release().unwrap();
        assert!(
            !b.acquire().unwrap(),
            "a stranger's release changes nothing"
        );
        a.release().unwrap();
        assert!(b.acquire().unwrap());
    }

    #[test]
    fn an_expired_lease_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("example.com.lease"), "crashed-node 1\n").unwrap();
        let b = Lease::new(dir.path(), "example.com", "node-b", Duration::from_secs(60));
        assert!(b.acquire().unwrap());
        let a = Lease::new(
            dir.path(),
            "example.com",
            "crashed-node",
            Duration::from_secs(60),
        );
        assert!(
            !a.refresh().unwrap(),
            "the old holder learns it lost the lease"
        );
    }

    #[test]
    fn racing_nodes_get_exactly_one_lease() {
        let dir = tempfile::tempdir().unwrap();
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|i| {
                    let path = dir.path();
                    s.spawn(move || {
                        Lease::new(
                            path,
                            "example.com",
                            &format!("n{i}"),
                            Duration::from_secs(60),
                        )
                        .acquire()
                        .unwrap()
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| usize::from(h.join().unwrap()))
                .sum()
        });
        assert_eq!(winners, 1);
    }
}
