//! One audited action and how it is written: a JSON object on one line with the contract's
//! fields. The time is taken when the action happens and formatted by the writer thread, so a
//! request pays for neither the formatting nor its allocation.

use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Outcome {
    Success,
    Denied,
    Error,
}

/// The user an audited action was for. A user named by id (through the identity API) is written
/// as that id, a string; a JWT user as an object `{"issuer": ..., "id": ...}`. Any string can be
/// a user id (`http://idp.example#alice` too), so only the type tells them apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
enum AuditUser {
    Id(String),
    Jwt { issuer: String, id: String },
}

impl From<&crate::inbound::UserId> for AuditUser {
    fn from(user: &crate::inbound::UserId) -> Self {
        match &user.issuer {
            Some(issuer) => AuditUser::Jwt {
                issuer: issuer.clone(),
                id: user.id.clone(),
            },
            None => AuditUser::Id(user.id.clone()),
        }
    }
}

/// One audited action.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct AuditEvent {
    #[serde(serialize_with = "rfc3339_millis")]
    time: SystemTime,
    pub(crate) event: &'static str,
    request_id: String,
    workload: Option<String>,
    user: Option<AuditUser>,
    provider: Option<String>,
    outcome: Outcome,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    source_ip: Option<IpAddr>,
}

fn rfc3339_millis<S: Serializer>(time: &SystemTime, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_rfc3339_millis(*time))
}

impl AuditEvent {
    pub(crate) fn new(event: &'static str, request_id: &str, outcome: Outcome) -> Self {
        AuditEvent {
            time: SystemTime::now(),
            event,
            request_id: request_id.to_string(),
            workload: None,
            user: None,
            provider: None,
            outcome,
            reason: None,
            source_ip: None,
        }
    }

    pub(crate) fn workload(mut self, workload: Option<&str>) -> Self {
        self.workload = workload.map(str::to_string);
        self
    }

    pub(crate) fn user(mut self, user: Option<&crate::inbound::UserId>) -> Self {
        self.user = user.map(AuditUser::from);
        self
    }

    pub(crate) fn provider(mut self, provider: Option<&str>) -> Self {
        self.provider = provider.map(str::to_string);
        self
    }

    pub(crate) fn reason(mut self, reason: Option<&str>) -> Self {
        self.reason = reason.map(str::to_string);
        self
    }

    pub(crate) fn source(mut self, ip: IpAddr) -> Self {
        self.source_ip = Some(ip);
        self
    }

    /// The event as one line of JSON, appended to `out`.
    pub(crate) fn write_line(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(&mut *out, self)?;
        out.push(b'\n');
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwt_user_and_a_user_id_are_never_written_alike() {
        let line = |issuer: Option<&str>, id: &str| {
            let user = crate::inbound::UserId {
                issuer: issuer.map(str::to_string),
                id: id.to_string(),
            };
            let event = AuditEvent::new("E", "r", Outcome::Success).user(Some(&user));
            serde_json::to_value(&event).unwrap()["user"].clone()
        };
        let jwt_user = line(Some("http://idp.example"), "alice");
        let id_user = line(None, "http://idp.example#alice");
        assert_ne!(jwt_user, id_user);
        assert_eq!(id_user, "http://idp.example#alice");
        assert_eq!(jwt_user["issuer"], "http://idp.example");
        assert_eq!(jwt_user["id"], "alice");
    }

    #[test]
    fn a_line_has_the_contract_fields_time_as_rfc3339_and_the_ip_as_text() {
        let event = AuditEvent::new("GetResourceApiKey", "req-9", Outcome::Denied)
            .reason(Some("AccessDeniedException"))
            .source("::1".parse().unwrap());
        let mut out = Vec::new();
        event.write_line(&mut out).unwrap();
        assert_eq!(out.last(), Some(&b'\n'));
        let line: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert!(humantime::parse_rfc3339(line["time"].as_str().unwrap()).is_ok());
        assert_eq!(line["sourceIp"], "::1");
        assert_eq!(line["outcome"], "denied");
        assert_eq!(line["reason"], "AccessDeniedException");
        assert_eq!(line["workload"], serde_json::Value::Null);
    }
}
