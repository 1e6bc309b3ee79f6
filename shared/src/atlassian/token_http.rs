//! The HTTP adapter for `oauth2-rs` token requests: our one reqwest client (egress guard, no
//! redirects), with the body form-encoded (RFC 6749) or as JSON (what Atlassian documents).

use std::future::Future;
use std::pin::Pin;

use oauth2::{HttpRequest, HttpResponse};
use url::Url;

use super::Transport;

/// When a token issued at `now` and living `expires_in` expires; `None` when the provider's
/// number does not fit a date (a hostile or broken `expires_in` is refused, never a panic).
pub(crate) fn expiry(now: time::OffsetDateTime, expires_in: std::time::Duration) -> Option<time::OffsetDateTime> {
    now.checked_add(time::Duration::try_from(expires_in).ok()?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TokenBody {
    Form,
    Json,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct TokenHttpError(pub String);

pub(crate) struct TokenHttp {
    transport: Transport,
    body: TokenBody,
}

impl TokenHttp {
    pub(crate) fn new(transport: Transport, body: TokenBody) -> Self {
        Self { transport, body }
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for TokenHttp {
    type Error = TokenHttpError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, TokenHttpError>> + Send + 'c>>;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(async move {
            let url = Url::parse(&request.uri().to_string()).map_err(|e| TokenHttpError(e.to_string()))?;
            self.transport.check_url(&url).map_err(|e| TokenHttpError(e.to_string()))?;
            let mut builder = self.transport.client().request(request.method().clone(), url);
            for (name, value) in request.headers() {
                if self.body == TokenBody::Json && name == reqwest::header::CONTENT_TYPE {
                    continue;
                }
                builder = builder.header(name.as_str(), value.as_bytes());
            }
            builder = match self.body {
                TokenBody::Form => builder.body(request.body().clone()),
                TokenBody::Json => {
                    let form: serde_json::Map<String, serde_json::Value> = url::form_urlencoded::parse(request.body())
                        .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
                        .collect();
                    builder.json(&form)
                }
            };
            // A customer's identity provider is any server: the transport's first-byte timeout and
            // body cap bound it as they bound the products.
            let response = tokio::time::timeout(self.transport.first_byte_timeout(), builder.send())
                .await
                .map_err(|_| TokenHttpError("it did not answer in time".into()))?
                .map_err(|e| TokenHttpError(e.without_url().to_string()))?;
            let status = response.status();
            if status.is_redirection() {
                // Never followed (the transport's policy); say so instead of a parse error.
                let location = response.headers().get("location").and_then(|v| v.to_str().ok()).unwrap_or_default();
                let location = location.split(['?', '#']).next().unwrap_or_default();
                return Err(TokenHttpError(format!(
                    "it answered {status} redirecting to {location:?}; redirects are not followed"
                )));
            }
            let headers = response.headers().clone();
            let body = super::transport::read_capped(response, self.transport.max_body())
                .await
                .map_err(|e| TokenHttpError(e.to_string()))?;
            let mut out = oauth2::http::Response::builder().status(status.as_u16());
            for (name, value) in &headers {
                out = out.header(name.as_str(), value.as_bytes());
            }
            out.body(body).map_err(|e| TokenHttpError(e.to_string()))
        })
    }
}
