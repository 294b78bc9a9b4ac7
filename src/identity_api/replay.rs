//! One use per signed request. A SigV4 signature is accepted for 5 minutes either side of its
//! date, so a captured request could be resent in that window: a replayed update putting a
//! rotated-away key back, a replayed delete removing a workload created again since, a
//! replayed token request minting another token. Operations that change something or mint a
//! token record each signature in the store (so every replica sharing it knows it) and refuse
//! a repeat, with one allowance: boto3 signs identical calls made within the same second
//! identically, so a repeat arriving within [`REPEAT_GRACE_MS`] of the first use is a client
//! asking twice, served as usual. Reads are not tracked.

use super::Operation::{self, *};

/// How long after a signature's first use an identical request still counts as the client's
/// own repeat (identical calls within one second are signed identically).
const REPEAT_GRACE_MS: i64 = 2_000;

/// Whether repeats of this operation are checked.
pub(crate) fn tracked(operation: Operation) -> bool {
    match operation {
        CreateWorkloadIdentity
        | UpdateWorkloadIdentity
        | DeleteWorkloadIdentity
        | CreateOauth2CredentialProvider
        | UpdateOauth2CredentialProvider
        | DeleteOauth2CredentialProvider
        | CreateApiKeyCredentialProvider
        | UpdateApiKeyCredentialProvider
        | DeleteApiKeyCredentialProvider
        | CompleteResourceTokenAuth
        | SetTokenVaultCmk
        | GetWorkloadAccessToken
        | GetWorkloadAccessTokenForJwt
        | GetWorkloadAccessTokenForUserId => true,
        GetResourceOauth2Token
        | GetResourceApiKey
        | GetWorkloadIdentity
        | ListWorkloadIdentities
        | GetOauth2CredentialProvider
        | ListOauth2CredentialProviders
        | GetApiKeyCredentialProvider
        | ListApiKeyCredentialProviders
        | GetTokenVault => false,
    }
}

/// Whether a use of a signature first used at `first_used_ms` is a replay at `now_ms`.
pub(crate) fn is_replay(first_used_ms: Option<i64>, now_ms: i64) -> bool {
    first_used_ms.is_some_and(|first| now_ms.saturating_sub(first) > REPEAT_GRACE_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_and_minting_are_tracked_reads_are_not() {
        assert!(tracked(DeleteWorkloadIdentity));
        assert!(tracked(UpdateApiKeyCredentialProvider));
        assert!(tracked(GetWorkloadAccessTokenForUserId));
        assert!(!tracked(ListWorkloadIdentities));
        assert!(!tracked(GetResourceOauth2Token));
    }

    #[test]
    fn a_repeat_is_the_clients_own_only_right_after_the_first_use() {
        assert!(!is_replay(None, 10_000));
        assert!(!is_replay(Some(10_000), 11_500));
        assert!(is_replay(Some(10_000), 12_001));
    }
}
