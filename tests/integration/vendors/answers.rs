//! Token answers keygate must not believe (issue 20 point 9), over real sockets: a provider whose
//! token endpoint answers 200 with an HTML page, a JSON object naming `access_token` twice, a
//! token type keygate cannot present, or a form where JSON is due. Each consent ends with
//! `error=provider_error` at the app and nothing vaulted; a well-formed answer still works.

use std::sync::Mutex;

use super::*;

/// A standard provider whose token endpoint answers whatever the test sets.
#[derive(Default)]
struct Scripted {
    grants: Grants,
    answer: Mutex<Option<(&'static str, &'static str)>>,
}

impl Vendor for Scripted {
    fn handle(&self, request: &Captured) -> Reply {
        match request.path.as_str() {
            "/authorize" => {
                let code = self.grants.code(Grant {
                    scopes: vec![],
                    redirect_uri: String::new(),
                    offline: false,
                    code_challenge: None,
                });
                back_to_client(request, &[("code", &code)])
            }
            _ => {
                let (content_type, body) = self.answer.lock().unwrap().unwrap();
                Reply {
                    status: 200,
                    content_type,
                    body: body.to_string(),
                    location: None,
                }
            }
        }
    }
}

#[tokio::test]
async fn token_answers_that_are_not_plain_bearer_json_are_refused() {
    let provider = Emulator::start(Scripted::default()).await;
    let journey = Journey::start(
        &format!(
            r#"vendor = "custom"
client_id = "c"
client_secret = "s"
issuer = "{0}"
authorization_endpoint = "{0}/authorize"
token_endpoint = "{0}/token""#,
            provider.url()
        ),
        &["read"],
    )
    .await;
    let json = "application/json";
    let refused: &[(&str, &str, &str)] = &[
        (
            "html",
            "text/html",
            "<html>access_token=a&token_type=bearer</html>",
        ),
        (
            "duplicate",
            json,
            r#"{"access_token":"a","access_token":"b","token_type":"Bearer"}"#,
        ),
        ("mac", json, r#"{"access_token":"a","token_type":"mac"}"#),
        (
            "form",
            "application/x-www-form-urlencoded",
            "access_token=a&token_type=bearer",
        ),
    ];
    for (user_id, content_type, body) in refused {
        *provider.vendor.answer.lock().unwrap() = Some((content_type, body));
        let consent = journey.consent(user_id).await;
        let back = consent.back.unwrap();
        assert!(back.contains("error=provider_error"), "{user_id}: {back}");
        assert!(consent.completed.unwrap().is_err(), "{user_id}");
        assert!(journey.vaulted(user_id).await.is_none(), "{user_id}");
    }
    *provider.vendor.answer.lock().unwrap() = Some((
        json,
        r#"{"access_token":"good","token_type":"BEARER","expires_in":600}"#,
    ));
    journey.consent_ok("alice").await;
    assert_eq!(journey.served("alice").await, "Bearer good");
}
