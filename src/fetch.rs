//! The small HTTP exchanges keygate makes on its own behalf (OIDC discovery, JWKS, and later OAuth
//! token endpoints): bounded in time and in size, JSON in, nothing secret in errors.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use url::Url;

use crate::body;
use crate::upstream::UpstreamClient;

/// Largest document accepted from an IdP or provider.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("request to {host} failed: {message}")]
    Transport { host: String, message: String },
    #[error("{host} did not answer within {timeout:?}")]
    Timeout { host: String, timeout: Duration },
    #[error("{host} answered HTTP {status}")]
    Status { host: String, status: StatusCode },
    #[error("{host} sent more than {limit} bytes")]
    TooLarge { host: String, limit: usize },
    #[error("{host} sent a document that is not the expected JSON: {message}")]
    Json { host: String, message: String },
}

/// A fetched JSON document and the response headers that came with it.
pub(crate) struct Fetched {
    pub(crate) json: serde_json::Value,
    pub(crate) headers: HeaderMap,
}

/// GETs `url` and parses the body as JSON.
pub(crate) async fn get_json(client: &UpstreamClient, url: &Url) -> Result<Fetched, FetchError> {
    let request = Request::get(url.as_str())
        .header(header::ACCEPT, "application/json")
        .body(body::empty())
        .map_err(|e| transport(url, &e))?;
    send_json(client, url, request).await
}

/// A bounded response: status, headers and the whole (size-limited) body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Bytes,
}

/// Sends `request` (to `url`) and reads the answer, bounded in time and size, whatever its status.
pub(crate) async fn send(
    client: &UpstreamClient,
    url: &Url,
    request: Request<body::Body>,
) -> Result<Answer, FetchError> {
    let host = host(url);
    let exchange = async {
        let response = client
            .request(request)
            .await
            .map_err(|e| transport(url, &e))?;
        let (parts, body) = response.into_parts();
        let body: Bytes = Limited::new(body, MAX_DOCUMENT_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    FetchError::TooLarge {
                        host: host.clone(),
                        limit: MAX_DOCUMENT_BYTES,
                    }
                } else {
                    transport(url, &*e)
                }
            })?
            .to_bytes();
        Ok(Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    };
    match tokio::time::timeout(FETCH_TIMEOUT, exchange).await {
        Ok(result) => result,
        Err(_) => Err(FetchError::Timeout {
            host,
            timeout: FETCH_TIMEOUT,
        }),
    }
}

/// Sends `request` (to `url`) and parses a 2xx body as JSON.
async fn send_json(
    client: &UpstreamClient,
    url: &Url,
    request: Request<body::Body>,
) -> Result<Fetched, FetchError> {
    let answer = send(client, url, request).await?;
    if !answer.status.is_success() {
        return Err(FetchError::Status {
            host: host(url),
            status: answer.status,
        });
    }
    let json = serde_json::from_slice(&answer.body).map_err(|e| FetchError::Json {
        host: host(url),
        message: e.to_string(),
    })?;
    Ok(Fetched {
        json,
        headers: answer.headers,
    })
}

fn host(url: &Url) -> String {
    let mut host = url.host_str().unwrap_or_default().to_string();
    if let Some(port) = url.port() {
        host.push_str(&format!(":{port}"));
    }
    host
}

fn transport(url: &Url, error: &dyn std::error::Error) -> FetchError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    FetchError::Transport {
        host: host(url),
        message,
    }
}

/// `max-age` from a `Cache-Control` header, if any.
pub(crate) fn max_age(headers: &HeaderMap) -> Option<Duration> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.eq_ignore_ascii_case("max-age")
                .then(|| value.trim().parse().ok())
                .flatten()
                .map(Duration::from_secs)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CACHE_CONTROL,
            "public, max-age=300, must-revalidate".parse().unwrap(),
        );
        assert_eq!(max_age(&headers), Some(Duration::from_secs(300)));
        headers.insert(header::CACHE_CONTROL, "no-store".parse().unwrap());
        assert_eq!(max_age(&headers), None);
    }
}
