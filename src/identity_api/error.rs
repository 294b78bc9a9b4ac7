//! The identity API's errors and their one mapping to AWS's REST-JSON error shape: a status
//! code, `X-Amzn-ErrorType: <Name>` and `{"message": ...}`, so botocore raises its modelled
//! exception with that message. Messages never carry a secret.

use http::{HeaderValue, Response, StatusCode, header};

use crate::body::{self, Body};
use crate::consent::ConsentError;
use crate::consent::ObtainError;
use crate::consent::refresh::RefreshError;
use crate::directory::{DirectoryError, EntryKind};
use crate::inbound::AuthError;
use crate::providers::ProviderError;
use crate::vault::VaultError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    AccessDenied(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    QuotaExceeded(String),
    #[error("{0}")]
    Throttled(String),
    #[error("no operation at {0}")]
    UnknownOperation(String),
    #[error("{0}")]
    Unavailable(String),
    /// Logged in full, answered with a generic message.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub(crate) fn validation(
        field: impl std::fmt::Display,
        problem: impl std::fmt::Display,
    ) -> Self {
        ApiError::Validation(format!("1 validation error detected: '{field}' {problem}"))
    }

    /// The AWS error type name, as in `X-Amzn-ErrorType`.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            ApiError::Validation(_) => "ValidationException",
            ApiError::AccessDenied(_) => "AccessDeniedException",
            ApiError::Unauthorized(_) => "UnauthorizedException",
            ApiError::NotFound(_) => "ResourceNotFoundException",
            ApiError::Conflict(_) => "ConflictException",
            ApiError::QuotaExceeded(_) => "ServiceQuotaExceededException",
            ApiError::Throttled(_) => "ThrottlingException",
            ApiError::UnknownOperation(_) => "UnknownOperationException",
            ApiError::Unavailable(_) => "ServiceUnavailableException",
            ApiError::Internal(_) => "InternalServerException",
        }
    }

    fn status(&self) -> StatusCode {
        match self {
            ApiError::Validation(_) => StatusCode::BAD_REQUEST,
            ApiError::AccessDenied(_) => StatusCode::FORBIDDEN,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) | ApiError::UnknownOperation(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::QuotaExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            ApiError::Throttled(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Audit outcome for this error: refusals are `denied`, failures on our side `error`.
    pub(crate) fn is_refusal(&self) -> bool {
        !matches!(self, ApiError::Unavailable(_) | ApiError::Internal(_))
    }

    fn message(&self) -> String {
        match self {
            ApiError::Internal(_) => "internal error".to_string(),
            other => other.to_string(),
        }
    }

    pub(crate) fn into_response(self, request_id: &str) -> Response<Body> {
        let body = serde_json::json!({ "message": self.message() });
        let mut response = Response::new(body::full(body.to_string()));
        *response.status_mut() = self.status();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        headers.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.type_name()),
        );
        if let Ok(id) = HeaderValue::from_str(request_id) {
            headers.insert("x-amzn-requestid", id);
        }
        response
    }
}

impl From<VaultError> for ApiError {
    fn from(error: VaultError) -> Self {
        ApiError::from(&error)
    }
}

impl From<&VaultError> for ApiError {
    fn from(error: &VaultError) -> Self {
        match error {
            VaultError::TooLarge => {
                ApiError::Validation("a secret or token is larger than 4 KB".to_string())
            }
            VaultError::Unavailable(e) => {
                ApiError::Unavailable(format!("the token vault cannot be reached: {e}"))
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A provider's failure as callers see it: its OAuth refusal (status and sanitised error code),
/// but never the addresses or transport details behind "unreachable" (those are logged).
impl From<&ProviderError> for ApiError {
    fn from(error: &ProviderError) -> Self {
        match error {
            ProviderError::Refused { .. }
            | ProviderError::NoToken { .. }
            | ProviderError::CoolingDown { .. }
            | ProviderError::BadAnswer { .. } => ApiError::Unavailable(error.to_string()),
            ProviderError::Unreachable { provider, .. } => {
                ApiError::Unavailable(format!("credential provider {provider} cannot be reached"))
            }
            ProviderError::Config { provider, .. } => ApiError::Unavailable(format!(
                "credential provider {provider} is not usable: see keygate's log"
            )),
        }
    }
}

impl From<ConsentError> for ApiError {
    fn from(error: ConsentError) -> Self {
        match error {
            ConsentError::UnknownSession => ApiError::NotFound(
                "the session is unknown or expired (sessions live 10 minutes)".to_string(),
            ),
            ConsentError::AlreadyUsed => {
                ApiError::Validation("the session was already completed".to_string())
            }
            ConsentError::NotReady => ApiError::Validation(
                "the user has not authorized this session at the provider yet".to_string(),
            ),
            ConsentError::Failed(reason) => {
                ApiError::Validation(format!("the session failed ({reason})"))
            }
            ConsentError::TooManySessions => ApiError::Throttled(error.to_string()),
            ConsentError::UserMismatch => ApiError::AccessDenied(
                "the session was started for another user; it has been cancelled".to_string(),
            ),
            ConsentError::NoAuthorizationEndpoint => ApiError::Validation(
                "the credential provider has no authorization endpoint".to_string(),
            ),
            ConsentError::Provider(p) => ApiError::from(&p),
            ConsentError::Vault(v) => v.into(),
        }
    }
}

/// The directory's refusals as AWS names them: a missing entry is `ResourceNotFoundException`;
/// a read-only, taken or contended one `ConflictException`; a full quota
/// `ServiceQuotaExceededException`.
impl From<DirectoryError> for ApiError {
    fn from(error: DirectoryError) -> Self {
        match error {
            DirectoryError::NotFound(entry) => {
                let text = format!("{entry} not found");
                ApiError::NotFound(match entry.kind {
                    // AWS's own message for a workload starts with a capital.
                    EntryKind::Workload => capitalized(&text),
                    _ => text,
                })
            }
            DirectoryError::ReadOnly(_)
            | DirectoryError::InConfig(_)
            | DirectoryError::Exists(_)
            | DirectoryError::Contended(_) => ApiError::Conflict(error.to_string()),
            DirectoryError::QuotaExceeded { .. } => ApiError::QuotaExceeded(error.to_string()),
            DirectoryError::Vault(v) => v.into(),
        }
    }
}

fn capitalized(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<ObtainError> for ApiError {
    fn from(error: ObtainError) -> Self {
        match error {
            ObtainError::Refresh(e) => match &*e {
                RefreshError::Vault(v) => ApiError::from(v),
                RefreshError::Provider(p) => {
                    tracing::warn!(error = %p, "token refresh failed");
                    ApiError::from(p)
                }
                RefreshError::ConsentNeeded => ApiError::Internal(e.to_string()),
            },
            ObtainError::Consent(e) => e.into(),
        }
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        ApiError::Unauthorized(format!("the token was refused: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::directory::Entry;

    #[test]
    fn directory_errors_keep_their_aws_type_and_message() {
        let entry = |kind, name: &str| Entry::new(kind, name);
        let cases = [
            (
                DirectoryError::NotFound(entry(EntryKind::Workload, "w")),
                "ResourceNotFoundException",
                "Workload identity 'w' not found",
            ),
            (
                DirectoryError::NotFound(entry(EntryKind::OAuth2Provider, "p")),
                "ResourceNotFoundException",
                "OAuth2 credential provider 'p' not found",
            ),
            (
                DirectoryError::NotFound(entry(EntryKind::ApiKeyProvider, "p")),
                "ResourceNotFoundException",
                "API key credential provider 'p' not found",
            ),
            (
                DirectoryError::NotFound(entry(EntryKind::Provider, "p")),
                "ResourceNotFoundException",
                "credential provider 'p' not found",
            ),
            (
                DirectoryError::ReadOnly(entry(EntryKind::Workload, "w")),
                "ConflictException",
                "workload identity 'w' is defined in keygate's config file and is read-only here",
            ),
            (
                DirectoryError::InConfig(entry(EntryKind::Provider, "p")),
                "ConflictException",
                "credential provider 'p' already exists (in keygate's config file)",
            ),
            (
                DirectoryError::Exists(entry(EntryKind::Workload, "w")),
                "ConflictException",
                "workload identity 'w' already exists",
            ),
            (
                DirectoryError::Contended(entry(EntryKind::Provider, "p")),
                "ConflictException",
                "credential provider 'p' is being changed concurrently; retry",
            ),
            (
                DirectoryError::QuotaExceeded {
                    kind: EntryKind::Workload,
                    max: 3,
                },
                "ServiceQuotaExceededException",
                "the limit of 3 workload identities created through the API is reached \
                 ([api].max_workload_identities)",
            ),
            (
                DirectoryError::QuotaExceeded {
                    kind: EntryKind::Provider,
                    max: 2,
                },
                "ServiceQuotaExceededException",
                "the limit of 2 credential providers created through the API is reached \
                 ([api].max_credential_providers)",
            ),
        ];
        for (error, type_name, message) in cases {
            let api = ApiError::from(error);
            assert_eq!(api.type_name(), type_name, "{api}");
            assert_eq!(api.to_string(), message);
        }
    }
}
