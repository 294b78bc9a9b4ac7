//! The identity API's operations: their paths, their AWS names, and which handler runs each.

use super::{
    ApiError, Call, Reply, access_tokens, credential_providers, resource_credentials, token_vault,
    workload_identities,
};

/// The operations, by path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Operation {
    GetWorkloadAccessToken,
    GetWorkloadAccessTokenForJwt,
    GetWorkloadAccessTokenForUserId,
    GetResourceOauth2Token,
    GetResourceApiKey,
    CompleteResourceTokenAuth,
    CreateWorkloadIdentity,
    GetWorkloadIdentity,
    UpdateWorkloadIdentity,
    ListWorkloadIdentities,
    DeleteWorkloadIdentity,
    CreateOauth2CredentialProvider,
    GetOauth2CredentialProvider,
    UpdateOauth2CredentialProvider,
    ListOauth2CredentialProviders,
    DeleteOauth2CredentialProvider,
    CreateApiKeyCredentialProvider,
    GetApiKeyCredentialProvider,
    UpdateApiKeyCredentialProvider,
    ListApiKeyCredentialProviders,
    DeleteApiKeyCredentialProvider,
    GetTokenVault,
    SetTokenVaultCmk,
}

use Operation::*;

const OPERATIONS: &[(&str, Operation)] = &[
    ("/identities/GetWorkloadAccessToken", GetWorkloadAccessToken),
    (
        "/identities/GetWorkloadAccessTokenForJWT",
        GetWorkloadAccessTokenForJwt,
    ),
    (
        "/identities/GetWorkloadAccessTokenForUserId",
        GetWorkloadAccessTokenForUserId,
    ),
    ("/identities/oauth2/token", GetResourceOauth2Token),
    ("/identities/api-key", GetResourceApiKey),
    (
        "/identities/CompleteResourceTokenAuth",
        CompleteResourceTokenAuth,
    ),
    ("/identities/CreateWorkloadIdentity", CreateWorkloadIdentity),
    ("/identities/GetWorkloadIdentity", GetWorkloadIdentity),
    ("/identities/UpdateWorkloadIdentity", UpdateWorkloadIdentity),
    ("/identities/ListWorkloadIdentities", ListWorkloadIdentities),
    ("/identities/DeleteWorkloadIdentity", DeleteWorkloadIdentity),
    (
        "/identities/CreateOauth2CredentialProvider",
        CreateOauth2CredentialProvider,
    ),
    (
        "/identities/GetOauth2CredentialProvider",
        GetOauth2CredentialProvider,
    ),
    (
        "/identities/UpdateOauth2CredentialProvider",
        UpdateOauth2CredentialProvider,
    ),
    (
        "/identities/ListOauth2CredentialProviders",
        ListOauth2CredentialProviders,
    ),
    (
        "/identities/DeleteOauth2CredentialProvider",
        DeleteOauth2CredentialProvider,
    ),
    (
        "/identities/CreateApiKeyCredentialProvider",
        CreateApiKeyCredentialProvider,
    ),
    (
        "/identities/GetApiKeyCredentialProvider",
        GetApiKeyCredentialProvider,
    ),
    (
        "/identities/UpdateApiKeyCredentialProvider",
        UpdateApiKeyCredentialProvider,
    ),
    (
        "/identities/ListApiKeyCredentialProviders",
        ListApiKeyCredentialProviders,
    ),
    (
        "/identities/DeleteApiKeyCredentialProvider",
        DeleteApiKeyCredentialProvider,
    ),
    ("/identities/get-token-vault", GetTokenVault),
    ("/identities/set-token-vault-cmk", SetTokenVaultCmk),
];

impl Operation {
    pub(crate) fn from_path(path: &str) -> Option<Operation> {
        OPERATIONS
            .iter()
            .find(|(p, _)| *p == path)
            .map(|(_, op)| *op)
    }

    /// The operation's name, as AWS spells it (the audit event).
    pub(crate) fn name(self) -> &'static str {
        match self {
            GetWorkloadAccessTokenForJwt => "GetWorkloadAccessTokenForJWT",
            SetTokenVaultCmk => "SetTokenVaultCMK",
            GetWorkloadAccessToken => "GetWorkloadAccessToken",
            GetWorkloadAccessTokenForUserId => "GetWorkloadAccessTokenForUserId",
            GetResourceOauth2Token => "GetResourceOauth2Token",
            GetResourceApiKey => "GetResourceApiKey",
            CompleteResourceTokenAuth => "CompleteResourceTokenAuth",
            CreateWorkloadIdentity => "CreateWorkloadIdentity",
            GetWorkloadIdentity => "GetWorkloadIdentity",
            UpdateWorkloadIdentity => "UpdateWorkloadIdentity",
            ListWorkloadIdentities => "ListWorkloadIdentities",
            DeleteWorkloadIdentity => "DeleteWorkloadIdentity",
            CreateOauth2CredentialProvider => "CreateOauth2CredentialProvider",
            GetOauth2CredentialProvider => "GetOauth2CredentialProvider",
            UpdateOauth2CredentialProvider => "UpdateOauth2CredentialProvider",
            ListOauth2CredentialProviders => "ListOauth2CredentialProviders",
            DeleteOauth2CredentialProvider => "DeleteOauth2CredentialProvider",
            CreateApiKeyCredentialProvider => "CreateApiKeyCredentialProvider",
            GetApiKeyCredentialProvider => "GetApiKeyCredentialProvider",
            UpdateApiKeyCredentialProvider => "UpdateApiKeyCredentialProvider",
            ListApiKeyCredentialProviders => "ListApiKeyCredentialProviders",
            DeleteApiKeyCredentialProvider => "DeleteApiKeyCredentialProvider",
            GetTokenVault => "GetTokenVault",
        }
    }
}

pub(super) async fn run(
    operation: Operation,
    call: &mut Call,
    body: &[u8],
) -> Result<Reply, ApiError> {
    match operation {
        GetWorkloadAccessToken => access_tokens::for_workload(call, body).await,
        GetWorkloadAccessTokenForJwt => access_tokens::for_jwt(call, body).await,
        GetWorkloadAccessTokenForUserId => access_tokens::for_user_id(call, body).await,
        GetResourceOauth2Token => resource_credentials::oauth2_token(call, body).await,
        GetResourceApiKey => resource_credentials::api_key(call, body).await,
        CompleteResourceTokenAuth => resource_credentials::complete(call, body).await,
        CreateWorkloadIdentity => workload_identities::create(call, body).await,
        GetWorkloadIdentity => workload_identities::get(call, body).await,
        UpdateWorkloadIdentity => workload_identities::update(call, body).await,
        ListWorkloadIdentities => workload_identities::list(call, body).await,
        DeleteWorkloadIdentity => workload_identities::delete(call, body).await,
        CreateOauth2CredentialProvider => credential_providers::create_oauth2(call, body).await,
        GetOauth2CredentialProvider => credential_providers::get_oauth2(call, body).await,
        UpdateOauth2CredentialProvider => credential_providers::update_oauth2(call, body).await,
        ListOauth2CredentialProviders => credential_providers::list_oauth2(call, body).await,
        DeleteOauth2CredentialProvider => credential_providers::delete_oauth2(call, body).await,
        CreateApiKeyCredentialProvider => credential_providers::create_api_key(call, body).await,
        GetApiKeyCredentialProvider => credential_providers::get_api_key(call, body).await,
        UpdateApiKeyCredentialProvider => credential_providers::update_api_key(call, body).await,
        ListApiKeyCredentialProviders => credential_providers::list_api_key(call, body).await,
        DeleteApiKeyCredentialProvider => credential_providers::delete_api_key(call, body).await,
        GetTokenVault => token_vault::get(call, body).await,
        SetTokenVaultCmk => token_vault::set_cmk(call, body).await,
    }
}
