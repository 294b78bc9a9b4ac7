//! Why a caller was not accepted. Each variant has a fixed `reason()`: the metric label of
//! `keygate_inbound_auth_failures_total` and the log field. None carries token content.

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no credential presented")]
    Missing,
    #[error("more than one credential carrier")]
    MultipleCredentials,
    #[error("the Authorization header is not a Bearer token")]
    NotBearer,
    #[error("token larger than 16 KiB")]
    TooLarge,
    #[error("malformed token")]
    Malformed,
    #[error("algorithm not allowed")]
    BadAlgorithm,
    #[error("forbidden header parameter (jwk, jku, x5u, x5c or crit)")]
    ForbiddenHeader,
    #[error("no signing key with that id")]
    UnknownKey,
    #[error("the authorizer has no signing keys yet")]
    KeysUnavailable,
    #[error("signature does not verify")]
    BadSignature,
    #[error("token expired")]
    Expired,
    #[error("token not yet valid")]
    NotYetValid,
    #[error("wrong issuer")]
    WrongIssuer,
    #[error("token issued in the future")]
    IssuedInFuture,
    #[error("token lifetime longer than the authorizer's max_token_lifetime")]
    LifetimeTooLong,
    #[error("token type (typ) is not JWT or at+jwt")]
    WrongType,
    #[error("audience not allowed")]
    WrongAudience,
    #[error("client not allowed")]
    WrongClient,
    #[error("no allowed scope")]
    MissingScope,
    #[error("a required claim does not match")]
    ClaimMismatch,
    #[error("the user claim is missing")]
    MissingUser,
    #[error("token issued for another workload")]
    WrongWorkload,
}

impl AuthError {
    /// Every variant, so the metric's series can be shown at 0 from the start. (A variant
    /// added to the enum belongs here too; the unit test below checks the labels are distinct.)
    pub(crate) const ALL: [AuthError; 22] = [
        AuthError::Missing,
        AuthError::MultipleCredentials,
        AuthError::NotBearer,
        AuthError::TooLarge,
        AuthError::Malformed,
        AuthError::BadAlgorithm,
        AuthError::ForbiddenHeader,
        AuthError::UnknownKey,
        AuthError::KeysUnavailable,
        AuthError::BadSignature,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::WrongIssuer,
        AuthError::IssuedInFuture,
        AuthError::LifetimeTooLong,
        AuthError::WrongType,
        AuthError::WrongAudience,
        AuthError::WrongClient,
        AuthError::MissingScope,
        AuthError::ClaimMismatch,
        AuthError::MissingUser,
        AuthError::WrongWorkload,
    ];

    /// Metric label and log field: a small fixed set.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::MultipleCredentials => "multiple_credentials",
            AuthError::NotBearer => "not_bearer",
            AuthError::TooLarge => "too_large",
            AuthError::Malformed => "malformed",
            AuthError::BadAlgorithm => "bad_algorithm",
            AuthError::ForbiddenHeader => "forbidden_header",
            AuthError::UnknownKey => "unknown_key",
            AuthError::KeysUnavailable => "keys_unavailable",
            AuthError::BadSignature => "bad_signature",
            AuthError::Expired => "expired",
            AuthError::NotYetValid => "not_yet_valid",
            AuthError::WrongIssuer => "wrong_issuer",
            AuthError::IssuedInFuture => "issued_in_future",
            AuthError::LifetimeTooLong => "lifetime_too_long",
            AuthError::WrongType => "wrong_type",
            AuthError::WrongAudience => "wrong_audience",
            AuthError::WrongClient => "wrong_client",
            AuthError::MissingScope => "missing_scope",
            AuthError::ClaimMismatch => "claim_mismatch",
            AuthError::MissingUser => "missing_user",
            AuthError::WrongWorkload => "wrong_workload",
        }
    }

    /// Valid token, but not allowed here: 403 `insufficient_scope` rather than 401.
    pub(crate) fn is_forbidden(self) -> bool {
        matches!(self, AuthError::MissingScope | AuthError::ClaimMismatch)
    }

    pub(crate) fn from_jwt(error: &jsonwebtoken::errors::Error) -> AuthError {
        use jsonwebtoken::errors::ErrorKind;
        match error.kind() {
            ErrorKind::InvalidSignature
            | ErrorKind::InvalidEcdsaKey
            | ErrorKind::InvalidRsaKey(_) => AuthError::BadSignature,
            ErrorKind::ExpiredSignature => AuthError::Expired,
            ErrorKind::ImmatureSignature => AuthError::NotYetValid,
            ErrorKind::InvalidIssuer => AuthError::WrongIssuer,
            ErrorKind::MissingRequiredClaim(claim) if claim == "iss" => AuthError::WrongIssuer,
            ErrorKind::InvalidAudience => AuthError::WrongAudience,
            ErrorKind::MissingRequiredClaim(claim) if claim == "aud" => AuthError::WrongAudience,
            ErrorKind::InvalidAlgorithm
            | ErrorKind::InvalidAlgorithmName
            | ErrorKind::InvalidKeyFormat => AuthError::BadAlgorithm,
            _ => AuthError::Malformed,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_reason_is_distinct() {
        let mut reasons: Vec<&str> = AuthError::ALL.iter().map(|e| e.reason()).collect();
        reasons.sort_unstable();
        reasons.dedup();
        assert_eq!(reasons.len(), AuthError::ALL.len());
    }
}
