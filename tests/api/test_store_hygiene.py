"""A thousand invalid identity API requests of mixed kinds, sent concurrently, are each answered
with a 4xx AWS error and leave nothing behind in the vault's store: the rows of its SQLite
database (`vault_entries`, and the change log `vault_changes`) are counted around them.

The suite's keygate is shared with the tests before this one, and the counts are only
meaningful if nothing else talks to it meanwhile: pytest runs the tests one at a time here."""

import collections
import datetime
import os
import secrets
import sqlite3
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import closing

import requests

from helpers import API_SECRET, HTTP_TIMEOUT, assert_aws_error, signed_parts

REQUESTS = 1000
THREADS = 8
SESSION_PREFIX = "urn:ietf:params:oauth:request_uri:"


def store_counts(folder) -> dict[str, int]:
    """Row counts of the vault's tables, read through a read-only connection."""
    uri = f"file:{folder / 'keygate.db'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=5)) as db:
        return {
            table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("vault_entries", "vault_changes")
        }


def invalid_requests(workload_token: str, user_token: str) -> list[tuple]:
    """(kind, path, body, signing options, expected status, expected error type) for each of the
    requests, the kinds taken in turn. Where a request would write if keygate served it (a
    create, a consent session, an M2M token it caches), that is what it asks for, under a name
    of its own."""
    run = secrets.token_hex(3)
    stale = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    denied = (403, "AccessDeniedException")
    invalid = (400, "ValidationException")
    unauthorized = (401, "UnauthorizedException")
    not_found = (404, "ResourceNotFoundException")
    conflict = (409, "ConflictException")
    create_workload = "/identities/CreateWorkloadIdentity"
    create_api_key = "/identities/CreateApiKeyCredentialProvider"
    create_oauth2 = "/identities/CreateOauth2CredentialProvider"
    oauth2_token = "/identities/oauth2/token"
    api_key = "/identities/api-key"
    complete = "/identities/CompleteResourceTokenAuth"
    oauth2_config = {
        "customOauth2ProviderConfig": {
            "oauthDiscovery": {
                "discoveryUrl": "https://idp.example.com/.well-known/openid-configuration"
            },
            "clientId": "c",
            "clientSecret": "s",
        }
    }
    m2m = {
        "workloadIdentityToken": workload_token,
        "resourceCredentialProviderName": "m2m",
        "scopes": ["tools"],
        "oauth2Flow": "M2M",
    }
    user_federation = {
        "workloadIdentityToken": user_token,
        "resourceCredentialProviderName": "idp",
        "scopes": ["openid"],
        "oauth2Flow": "USER_FEDERATION",
    }

    def kinds(i: int) -> list[tuple]:
        name = f"never-{run}-{i}"
        unknown_session = SESSION_PREFIX + secrets.token_urlsafe(16)
        broken_json = [b'{"name": "' + name.encode(), b"not json", b"[1, 2]", b'{"name": 7}']
        return [
            ("bad signature", create_workload, {"name": name},
             {"secret": API_SECRET + "x"}, *denied),
            ("unknown access key", create_api_key, {"name": name, "apiKey": "k"},
             {"access_key": "AKIDNOBODYKNOWS00000"}, *denied),
            ("stale date", create_workload, {"name": name}, {"signed_at": stale}, *denied),
            ("unsigned", oauth2_token, m2m, {"sign": False}, *denied),
            ("malformed JSON body", create_workload, broken_json[i % 4], {}, *invalid),
            ("unknown field", create_workload,
             {"name": name, "allowedResourceOauth2ReturnUrls": [], "owner": "me"}, {}, *invalid),
            ("workload name pattern", create_workload, {"name": f"bad name {i}!"}, {}, *invalid),
            ("API key provider name pattern", create_api_key,
             {"name": f"dot.{name}", "apiKey": "k"}, {}, *invalid),
            ("OAuth2 provider name pattern", create_oauth2,
             {"name": f"slash/{name}", "credentialProviderVendor": "CustomOauth2",
              "oauth2ProviderConfigInput": oauth2_config}, {}, *invalid),
            ("garbage workload access token", oauth2_token,
             {**m2m, "workloadIdentityToken": f"garbage-{i}"}, {}, *unauthorized),
            ("garbage workload access token", api_key,
             {"workloadIdentityToken": f"{name}.x.y", "resourceCredentialProviderName": "weather"},
             {}, *unauthorized),
            ("unknown provider", oauth2_token,
             {**m2m, "resourceCredentialProviderName": f"no-such-{name}"}, {}, *not_found),
            ("unknown provider", api_key,
             {"workloadIdentityToken": workload_token,
              "resourceCredentialProviderName": f"no-such-{name}"}, {}, *not_found),
            ("invalid sessionUri", oauth2_token,
             {**user_federation, "sessionUri": f"session-{name}"}, {}, *invalid),
            ("invalid sessionUri", complete,
             {"sessionUri": SESSION_PREFIX + f"bad/{name}", "userIdentifier": {"userId": "u"}},
             {}, *invalid),
            ("unknown session", complete,
             {"sessionUri": unknown_session, "userIdentifier": {"userId": "u"}}, {}, *not_found),
            ("the config's read-only workload", "/identities/DeleteWorkloadIdentity",
             {"name": "ConfigAgent"}, {}, *conflict),
        ]

    count = len(kinds(0))
    return [kinds(i)[i % count] for i in range(REQUESTS)]


def test_a_thousand_invalid_requests_leave_nothing_in_the_store(keygate, wat):
    assert "PYTEST_XDIST_WORKER" not in os.environ, "this test needs keygate to itself"
    # Tokens and signatures first (signing with a past date patches botocore's clock for the
    # whole process, so nothing is signed while the requests go out).
    planned = invalid_requests(wat(), wat(user_id="store-hygiene-user"))
    prepared = [
        (kind, path, *signed_parts(keygate.url, path, body, **{"secret": API_SECRET, **options}),
         status, error_type)
        for kind, path, body, options, status, error_type in planned
    ]

    def send(request: tuple) -> requests.Response:
        _, path, headers, data, _, _ = request
        return requests.post(keygate.url + path, data=data, headers=headers, timeout=HTTP_TIMEOUT)

    before = store_counts(keygate.folder)
    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        futures = {pool.submit(send, request): request for request in prepared}
        answered = [(futures[f], f.result()) for f in as_completed(futures, timeout=120)]
    after = store_counts(keygate.folder)

    assert len(answered) == REQUESTS
    failures = collections.defaultdict(list)
    for (kind, path, _, _, status, error_type), response in answered:
        try:
            assert_aws_error(response, status, error_type)
        except AssertionError as error:
            failures[(kind, path)].append(str(error)[:300])
    kinds = collections.Counter(kind for (kind, *_), _ in answered)
    assert len(kinds) >= 10 and min(kinds.values()) >= 50, kinds  # every kind, many times
    unexpected = {key: (len(f), f[0]) for key, f in failures.items()}
    assert (unexpected, after) == ({}, before), f"store {before} -> {after}; {unexpected}"
