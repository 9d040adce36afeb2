//! Records in realtime events, shaped exactly as the record API would answer the
//! subscriber: hidden fields, email visibility, and the subscription's `expand`/`fields`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use basalt_realtime::{RecordRenderer, Subscription};
use basalt_schema::request::AuthInfo;
use basalt_schema::{Collection, RequestInfo};
use basalt_store::Record;
use serde_json::Value;

use crate::ApiState;
use crate::error::ApiError;
use crate::records::render;
use basalt_service::Caller;

/// The API's shaping, handed to the realtime hub.
pub(crate) struct ApiRenderer(pub ApiState);

impl RecordRenderer for ApiRenderer {
    fn render<'a>(
        &'a self,
        collection: &'a Arc<Collection>,
        record: &'a Record,
        auth: Option<&'a AuthInfo>,
        subscription: &'a Subscription,
    ) -> Pin<Box<dyn Future<Output = Result<Value, String>> + Send + 'a>> {
        Box::pin(async move {
            let auth = Caller(auth.cloned());
            let params: HashMap<String, String> = subscription
                .query
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect();
            let req = Arc::new(RequestInfo {
                auth: auth.0.clone(),
                body: Default::default(),
                query: subscription.query.clone(),
                headers: subscription.headers.clone(),
                method: "GET".into(),
                context: "realtime".into(),
            });
            let mut out = render(
                &self.0,
                collection,
                vec![record.clone()],
                &auth,
                &params,
                &req,
            )
            .await
            .map_err(|e| {
                let e = ApiError::from(e);
                format!("{} {}", e.status, e.message)
            })?;
            out.pop().ok_or_else(|| "nothing was rendered".to_string())
        })
    }
}

/// Builds the renderer the binary hands to [`basalt_realtime::Hub::run`].
pub fn renderer(state: ApiState) -> Arc<dyn RecordRenderer> {
    Arc::new(ApiRenderer(state))
}
