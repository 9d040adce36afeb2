//! A request's entry in the request log (`basalt_service::logs`), as PocketBase keeps it:
//! what is known before the handler runs is taken in [`PendingLog::capture`] (method, url,
//! addresses, `Referer`, `User-Agent`), who asked is noted by the `Caller` extractor in the
//! [`RequestLogSlot`], and the status, time and error message are added when the answer is
//! ready ([`PendingLog::finish`]). Nothing of this runs while request logging is off: the
//! policy is one atomic load per request.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, Uri, header};
use axum::response::Response;
use basalt_service::logs::{LogPolicy, RequestLogs, RequestRecord};

use crate::ApiState;
use crate::logs::RequestLogSlot;

/// The message of an error answer, put in the response by `ApiError` for the log.
#[derive(Clone)]
pub(crate) struct ErrorMessage(pub String);

/// What the log keeps of a request before its answer.
pub(crate) struct PendingLog {
    policy: LogPolicy,
    method: Method,
    uri: Uri,
    remote_ip: Option<IpAddr>,
    user_ip: Option<IpAddr>,
    referer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
    slot: Option<RequestLogSlot>,
}

impl PendingLog {
    /// Starts `req`'s entry when request logging is on, with a [`RequestLogSlot`] put in
    /// the request for the `Caller` extractor.
    pub(crate) fn capture_routed<B>(state: &ApiState, req: &mut Request<B>) -> Option<Self> {
        let mut log = Self::capture(state, req, None)?;
        let slot = RequestLogSlot::default();
        req.extensions_mut().insert(slot.clone());
        log.slot = Some(slot);
        Some(log)
    }

    /// Starts `req`'s entry when request logging is on; `peer` when the connection's
    /// address is not in the request (the hot path, whose requests are anonymous).
    pub(crate) fn capture<B>(
        state: &ApiState,
        req: &Request<B>,
        peer: Option<SocketAddr>,
    ) -> Option<Self> {
        let policy = state.service.logs.policy()?;
        let peer = peer.or_else(|| {
            req.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0)
        });
        let remote_ip = peer.map(|p| p.ip());
        let (remote_ip, user_ip) = if policy.log_ip {
            let user = remote_ip.map(|ip| state.limits.client_ip(ip, req.headers()));
            (remote_ip, user)
        } else {
            (None, None)
        };
        let headers = req.headers();
        Some(Self {
            policy,
            method: req.method().clone(),
            uri: req.uri().clone(),
            remote_ip,
            user_ip,
            referer: headers.get(header::REFERER).cloned(),
            user_agent: headers.get(header::USER_AGENT).cloned(),
            slot: None,
        })
    }

    /// Hands the entry to the log with `res`'s status and error message.
    pub(crate) fn finish(self, logs: &RequestLogs, res: &Response, start: Instant) {
        let exec_time_ms = start.elapsed().as_secs_f64() * 1000.0;
        let text = |v: &Option<HeaderValue>| -> String {
            v.as_ref()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .unwrap_or_default()
        };
        let ip = |ip: Option<IpAddr>| ip.map(|i| i.to_string()).unwrap_or_default();
        let (remote_ip, user_ip) = (ip(self.remote_ip), ip(self.user_ip));
        let (referer, user_agent) = (text(&self.referer), text(&self.user_agent));
        let url = self
            .uri
            .path_and_query()
            .map_or_else(|| self.uri.path(), |pq| pq.as_str());
        let who = self.slot.as_ref().and_then(|s| s.0.get());
        let error = res
            .extensions()
            .get::<ErrorMessage>()
            .map(|e| e.0.as_str())
            .filter(|_| res.status().as_u16() >= 400);
        logs.record(
            self.policy,
            &RequestRecord {
                method: self.method.as_str(),
                url,
                status: res.status().as_u16(),
                exec_time_ms,
                remote_ip: &remote_ip,
                user_ip: &user_ip,
                referer: &referer,
                user_agent: &user_agent,
                auth: who.map_or("", |w| w.0.as_str()),
                auth_id: who.map_or("", |w| w.1.as_str()),
                error,
            },
        );
    }
}
