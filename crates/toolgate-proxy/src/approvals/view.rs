//! How approval records look outside the store: the JSON the admin API, the CLI and the
//! event stream show, the audit line of each transition, and the checks on what a person
//! may write into a record (a note, a reason).

use serde::Serialize;
use serde_json::{json, Value};
use toolgate_state::{ApprovalRecord, ApprovalState, Verdict};

use super::redact::redact_arguments;
use crate::audit::{format_rfc3339_ms, AuditEvent};

/// Longest note or reason accepted, in characters.
pub const MAX_TEXT_CHARS: usize = 2_000;

/// A step in an approval's life, as audited and streamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Requested,
    Approved,
    Denied,
    Consumed,
    /// The call that consumed the approval did not happen; the approval is usable again.
    Released,
    Expired,
    Withdrawn,
}

impl Transition {
    pub fn as_str(self) -> &'static str {
        match self {
            Transition::Requested => "requested",
            Transition::Approved => "approved",
            Transition::Denied => "denied",
            Transition::Consumed => "consumed",
            Transition::Released => "released",
            Transition::Expired => "expired",
            Transition::Withdrawn => "withdrawn",
        }
    }

    /// The transition a verdict makes.
    pub fn of_verdict(verdict: &Verdict) -> Transition {
        match verdict {
            Verdict::Approve { .. } => Transition::Approved,
            Verdict::Deny { .. } => Transition::Denied,
        }
    }
}

/// The JSON description of a record. `full_arguments`: the call's arguments as the agent
/// sent them (for the person deciding, behind the admin token or the state file's
/// permissions); otherwise the redacted view.
pub fn record_json(record: &ApprovalRecord, full_arguments: bool) -> Value {
    let arguments: Value = serde_json::from_str(&record.arguments).unwrap_or(Value::Null);
    let mut view = json!({
        "id": record.id,
        "state": record.state.as_str(),
        "tool": record.tool,
        "identity": record.identity,
        "rule": record.rule,
        "message": record.message,
        "policy": record.policy,
        "mode": super::mode_name(record.mode),
        "session": record.session,
        "created_at": format_rfc3339_ms(record.created_ms),
        "expires_at": format_rfc3339_ms(record.expires_ms),
        "arguments": if full_arguments { arguments } else { redact_arguments(&arguments) },
    });
    let extra = [
        ("decided_at", record.decided_ms.map(format_rfc3339_ms)),
        ("decided_by", record.decided_by.clone()),
        ("note", record.note.clone()),
        ("reason", record.reason.clone()),
        ("consumed_at", record.consumed_ms.map(format_rfc3339_ms)),
    ];
    for (key, value) in extra {
        if let Some(value) = value {
            view[key] = Value::String(value);
        }
    }
    view
}

/// The audit line's content for one transition (`"event": "approval"`). Arguments never
/// appear, nor the fingerprint (an unkeyed hash of them would let a reader of the log confirm
/// a guess).
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalAudit {
    pub approval: String,
    pub transition: &'static str,
    /// The record's state after the transition.
    pub state: &'static str,
    pub tool: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub rule: String,
    pub policy: String,
    /// Who decided (approved and denied only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub expires: String,
}

pub fn audit_event(transition: Transition, record: &ApprovalRecord) -> AuditEvent {
    let decided = matches!(transition, Transition::Approved | Transition::Denied);
    AuditEvent::Approval(ApprovalAudit {
        approval: record.id.clone(),
        transition: transition.as_str(),
        state: record.state.as_str(),
        tool: record.tool.clone(),
        identity: record.identity.clone(),
        session: record.session.clone(),
        rule: record.rule.clone(),
        policy: record.policy.clone(),
        by: record.decided_by.clone().filter(|_| decided),
        note: record
            .note
            .clone()
            .filter(|_| transition == Transition::Approved),
        reason: record
            .reason
            .clone()
            .filter(|_| matches!(transition, Transition::Denied | Transition::Withdrawn)),
        expires: format_rfc3339_ms(record.expires_ms),
    })
}

/// One audit line as the gateway's writer formats it (`ts`, `instance`, `prev`, then the
/// event), for processes that append a line or two and exit (`audit::chain::append_one`).
pub fn audit_line(instance: &str, now_ms: u64, prev: &str, event: &AuditEvent) -> Option<String> {
    let Value::Object(fields) = serde_json::to_value(event).ok()? else {
        return None;
    };
    let mut line = serde_json::Map::new();
    line.insert("ts".into(), Value::String(format_rfc3339_ms(now_ms)));
    line.insert("instance".into(), Value::String(instance.to_string()));
    line.insert("prev".into(), Value::String(prev.to_string()));
    line.extend(fields);
    serde_json::to_string(&Value::Object(line)).ok()
}

/// Checks a person's verdict before it is stored: a denial needs a reason (the agent is
/// told it), and neither text may be huge or hold control characters that would garble a
/// terminal or a log.
pub fn check_verdict(verdict: &Verdict) -> Result<(), String> {
    let (what, text) = match verdict {
        Verdict::Approve { note: None } => return Ok(()),
        Verdict::Approve { note: Some(n) } => ("note", n.as_str()),
        Verdict::Deny { reason } => ("reason", reason.as_str()),
    };
    if text.trim().is_empty() {
        return Err(format!("the {what} must not be empty"));
    }
    if text.chars().count() > MAX_TEXT_CHARS {
        return Err(format!(
            "the {what} is longer than {MAX_TEXT_CHARS} characters"
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(format!("the {what} must not contain control characters"));
    }
    Ok(())
}

/// A short human description of where a record stands, for CLI and error messages.
pub fn describe_state(record: &ApprovalRecord) -> String {
    match record.state {
        ApprovalState::Pending => format!("pending until {}", format_rfc3339_ms(record.expires_ms)),
        ApprovalState::Approved => format!(
            "approved, usable until {}",
            format_rfc3339_ms(record.expires_ms)
        ),
        ApprovalState::Denied => match &record.reason {
            Some(reason) => format!("denied: {reason}"),
            None => "denied".to_string(),
        },
        state => state.as_str().to_string(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use toolgate_policy::ir::ApprovalMode;

    fn record() -> ApprovalRecord {
        ApprovalRecord {
            id: "apr_1".into(),
            fingerprint: "sha256:ff".into(),
            state: ApprovalState::Denied,
            tool: "refund".into(),
            identity: Some("alice".into()),
            session: None,
            rule: "big refunds".into(),
            policy: "rev".into(),
            mode: ApprovalMode::Retry,
            message: None,
            arguments: r#"{"amount":500,"card":"4111"}"#.into(),
            timeout_ms: 60_000,
            created_ms: 0,
            expires_ms: 60_000,
            updated_ms: 1,
            decided_ms: Some(1),
            decided_by: Some("cli:bob".into()),
            note: None,
            reason: Some("no".into()),
            consumed_ms: None,
        }
    }

    #[test]
    fn views_redact_unless_asked_and_audit_lines_carry_no_arguments() {
        let r = record();
        assert_eq!(record_json(&r, false)["arguments"]["card"], "string");
        assert_eq!(record_json(&r, true)["arguments"]["card"], "4111");
        assert_eq!(record_json(&r, true)["decided_by"], "cli:bob");
        let line = audit_line("cli", 0, "00", &audit_event(Transition::Denied, &r)).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["event"], "approval");
        assert_eq!(v["transition"], "denied");
        assert_eq!(v["by"], "cli:bob");
        assert_eq!(v["reason"], "no");
        assert!(
            line.starts_with(r#"{"ts":"1970-01-01T00:00:00.000Z","instance":"cli","prev":"00","#)
        );
        assert!(!line.contains("4111") && !line.contains("sha256"));
    }

    #[test]
    fn verdicts_are_checked() {
        let deny = |r: &str| Verdict::Deny { reason: r.into() };
        assert!(check_verdict(&deny("not today")).is_ok());
        assert!(check_verdict(&deny("  ")).is_err());
        assert!(check_verdict(&deny("a\u{1b}[31m")).is_err());
        assert!(check_verdict(&deny(&"x".repeat(MAX_TEXT_CHARS + 1))).is_err());
        assert!(check_verdict(&Verdict::Approve { note: None }).is_ok());
    }
}
