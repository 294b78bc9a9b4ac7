"""keygate's /metrics as Prometheus reads it: the official `prometheus_client` text parser
accepts every line, the contract's metric families are there with their labels, and no label
value carries a user id, a token or another unbounded value."""

import re

import requests
from prometheus_client.parser import text_string_to_metric_families

from helpers import WEATHER_KEY

CONTRACT_FAMILIES = {
    # name: the labels each sample must carry (histograms add `le` on buckets).
    "keygate_requests": {"route", "status"},
    "keygate_request_duration_seconds": {"route"},
    "keygate_inbound_auth_failures": {"reason"},
    "keygate_vault_lookups": {"result"},
    "keygate_token_requests": {"provider", "grant", "result"},
    "keygate_consent_sessions": {"result"},
}
EXTRA_FAMILIES = [
    "keygate_upstream_duration_seconds",
    "keygate_jwks_fetches",
    "keygate_vault_cache_hit_ratio",
    "keygate_consent_sessions_pending",
    "keygate_build_info",
]


def scrape(keygate) -> dict:
    response = requests.get(f"{keygate.admin_url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def test_metrics_parse_and_cover_the_contract(keygate, dp, cp, wat, unique):
    # Some traffic first, so the counters have samples: an API key fetch (a vault lookup), a
    # consent session started, an M2M token, and a proxied request refused for its token.
    token = wat()
    started = dp.get_resource_oauth2_token(
        workloadIdentityToken=wat(user_id=unique("metrics-user")),
        resourceCredentialProviderName="idp",
        scopes=["openid"],
        oauth2Flow="USER_FEDERATION",
    )
    assert started["sessionStatus"] == "IN_PROGRESS"
    assert dp.get_resource_api_key(
        workloadIdentityToken=token, resourceCredentialProviderName="weather"
    )["apiKey"] == WEATHER_KEY
    dp.get_resource_oauth2_token(
        workloadIdentityToken=token,
        resourceCredentialProviderName="m2m",
        scopes=[],
        oauth2Flow="M2M",
    )
    refused = requests.get(
        f"{keygate.url}/tools/anything", headers={"authorization": "Bearer x.y.z"}, timeout=5
    )
    assert refused.status_code == 401

    families = scrape(keygate)
    for name, labels in CONTRACT_FAMILIES.items():
        assert name in families, f"{name} missing; have {sorted(families)}"
        samples = families[name].samples
        assert samples, f"{name} has no samples"
        for sample in samples:
            assert labels <= set(sample.labels), (name, sample.labels)
    for name in EXTRA_FAMILIES:
        assert name in families, f"{name} missing; have {sorted(families)}"
    assert families["keygate_build_info"].samples[0].value == 1
    ratio = families["keygate_vault_cache_hit_ratio"].samples[0].value
    assert 0.0 <= ratio <= 1.0
    assert families["keygate_consent_sessions_pending"].samples[0].value >= 1
    consent = {s.labels["result"]: s.value for s in families["keygate_consent_sessions"].samples
               if s.name == "keygate_consent_sessions_total"}
    assert consent.get("started", 0) >= 1, consent


def test_no_label_carries_an_unbounded_value(keygate, dp, unique):
    # Users and workloads by the dozen: none of their names may become a label value.
    names = []
    for i in range(20):
        user = f"user-{unique('u')}-{i}"
        names.append(user)
        dp.get_workload_access_token_for_user_id(workloadName="ConfigAgent", userId=user)
    families = scrape(keygate)
    bounded = re.compile(r"^[A-Za-z0-9_.:/+\-]{0,64}$")
    for family in families.values():
        for sample in family.samples:
            for label, value in sample.labels.items():
                assert not any(n in value for n in names), (sample.name, label, value)
                assert "eyJ" not in value, (sample.name, label, "a JWT in a label")
                assert bounded.match(value), (sample.name, label, value)
