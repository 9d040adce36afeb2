//! Handles of the HTTP request series, looked up once per kind of request.
//!
//! prometheus's `with_label_values` hashes every label and takes the vector's lock on each
//! call; a request kind (method, route, status) recurs endlessly, so its two handles are
//! kept here after the first lookup. Routes arrive as the router's own strings, whose
//! address is stable: the key is that address (checked against the stored route on a hit,
//! so a reused address can never mislabel a request).

use std::collections::HashMap;
use std::sync::RwLock;

use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};

/// Kinds of request remembered at most; past it (unusual methods sent on purpose, say)
/// requests take the label lookup every time instead of growing the cache.
const MAX_KINDS: usize = 1024;

/// (method packed in a word, route address, route length, status).
type Key = (u64, usize, usize, u16);

struct Series {
    route: Box<str>,
    requests: IntCounter,
    latency: Histogram,
}

#[derive(Default)]
pub(crate) struct RequestSeries {
    kinds: RwLock<HashMap<Key, Series>>,
}

/// A method of at most eight bytes as one word (every standard method fits).
fn packed(method: &str) -> Option<u64> {
    let bytes = method.as_bytes();
    (bytes.len() <= 8).then(|| {
        let mut word = [0u8; 8];
        word[..bytes.len()].copy_from_slice(bytes);
        u64::from_le_bytes(word)
    })
}

impl RequestSeries {
    pub(crate) fn observe(
        &self,
        requests: &IntCounterVec,
        latency: &HistogramVec,
        (method, route, status): (&str, &str, u16),
        seconds: f64,
    ) {
        let Some(m) = packed(method) else {
            return observe_uncached(requests, latency, (method, route, status), seconds);
        };
        let key = (m, route.as_ptr() as usize, route.len(), status);
        if let Ok(kinds) = self.kinds.read()
            && let Some(s) = kinds.get(&key).filter(|s| &*s.route == route)
        {
            s.requests.inc();
            s.latency.observe(seconds);
            return;
        }
        let series = Series {
            route: route.into(),
            requests: requests.with_label_values(&[method, route, &status.to_string()]),
            latency: latency.with_label_values(&[route]),
        };
        series.requests.inc();
        series.latency.observe(seconds);
        if let Ok(mut kinds) = self.kinds.write()
            && (kinds.len() < MAX_KINDS || kinds.contains_key(&key))
        {
            kinds.insert(key, series);
        }
    }
}

fn observe_uncached(
    requests: &IntCounterVec,
    latency: &HistogramVec,
    (method, route, status): (&str, &str, u16),
    seconds: f64,
) {
    requests
        .with_label_values(&[method, route, &status.to_string()])
        .inc();
    latency.with_label_values(&[route]).observe(seconds);
}

#[cfg(test)]
mod tests {
    use prometheus::{HistogramOpts, Opts};

    use super::*;

    fn vecs() -> (IntCounterVec, HistogramVec) {
        let requests =
            IntCounterVec::new(Opts::new("r", "r"), &["method", "route", "status"]).unwrap();
        let latency = HistogramVec::new(HistogramOpts::new("l", "l"), &["route"]).unwrap();
        (requests, latency)
    }

    #[test]
    fn repeated_kinds_count_on_the_same_series_whatever_the_string_address() {
        let (requests, latency) = vecs();
        let series = RequestSeries::default();
        let route = String::from("/api/x/{id}");
        let copy = route.clone();
        series.observe(&requests, &latency, ("GET", &route, 200), 0.001);
        series.observe(&requests, &latency, ("GET", &route, 200), 0.001);
        series.observe(&requests, &latency, ("GET", &copy, 200), 0.001);
        series.observe(&requests, &latency, ("GET", &route, 404), 0.001);
        let count = |m: &str, s: &str| requests.with_label_values(&[m, "/api/x/{id}", s]).get();
        assert_eq!(count("GET", "200"), 3);
        assert_eq!(count("GET", "404"), 1);
        assert_eq!(
            latency
                .with_label_values(&["/api/x/{id}"])
                .get_sample_count(),
            4
        );
    }

    #[test]
    fn a_long_method_is_counted_without_the_cache() {
        let (requests, latency) = vecs();
        let series = RequestSeries::default();
        series.observe(&requests, &latency, ("PROPPATCHX", "/", 405), 0.0);
        assert_eq!(
            requests
                .with_label_values(&["PROPPATCHX", "/", "405"])
                .get(),
            1
        );
        assert!(series.kinds.read().unwrap().is_empty());
    }
}
