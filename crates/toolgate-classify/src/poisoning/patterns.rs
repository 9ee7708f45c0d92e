//! The patterns behind each finding kind. Phrases rather than words: "do not tell the user",
//! not "user"; `~/.ssh/id_rsa`, not "key".

use std::sync::OnceLock;

use regex::Regex;

use super::{visible, Finding, FindingKind, Severity};

struct Pattern {
    kind: FindingKind,
    severity: Severity,
    confidence: f32,
    regex: &'static str,
}

const PATTERNS: &[Pattern] = &[
    // ── Concealment and overriding: addressed to the model, against the user ──────────────
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::High,
        confidence: 0.95,
        regex: r"(?i)\b(?:do\s+not|don'?t|never|must\s+not|should\s+not)\s+(?:tell|inform|mention|reveal|show|disclose|alert|notify|let)\b[^.\n]{0,40}\b(?:the\s+)?(?:user|human|operator|person)",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::High,
        confidence: 0.95,
        regex: r"(?i)\bwithout\s+(?:telling|informing|notifying|alerting|asking)\s+(?:the\s+)?(?:user|human|operator)",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::High,
        confidence: 0.95,
        regex: r"(?i)\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:(?:the|your)\s+)?(?:previous|prior|above|earlier|other|system)\s+(?:instructions|prompts?|rules|guidelines|directions)",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::High,
        confidence: 0.9,
        regex: r"(?i)<\s*/?\s*(?:important|system|secret|hidden|instructions?|admin)\s*>",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::High,
        confidence: 0.85,
        regex: r"(?i)\b(?:before|prior\s+to)\s+(?:using|calling|invoking|running)\s+(?:this|any\s+other|another|any)\s+tool\b[^.\n]{0,80}\b(?:must|always|first|read|call|send|pass|include)",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::High,
        confidence: 0.85,
        regex: r"(?i)\b(?:when|whenever|if)\s+(?:the\s+)?(?:\w+\s+){0,2}tool\s+is\s+(?:available|present|called|used)\b[^.\n]{0,80}\b(?:must|always|instead|should)",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::High,
        confidence: 0.8,
        regex: r"(?i)\b(?:secretly|silently|covertly|quietly|discreetly)\s+(?:\w+\s+){0,2}(?:send|copy|forward|include|add|read|upload|call|exfiltrate|pass|run|execute)",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::High,
        confidence: 0.8,
        regex: r"(?i)\b(?:the\s+)?(?:user|human)\s+(?:must|should|need)\s+not\s+(?:know|see|be\s+told|notice|find\s+out)",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::Medium,
        confidence: 0.7,
        regex: r"(?i)\b(?:otherwise|or\s+else)\s+(?:the\s+)?tool\s+(?:will\s+not|won'?t|cannot|can'?t)\s+work",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::Medium,
        confidence: 0.7,
        regex: r"(?i)\b(?:you\s+are\s+now|act\s+as|from\s+now\s+on\s+you|new\s+instructions?:|system\s+prompt:)",
    },
    Pattern {
        kind: FindingKind::HiddenInstruction,
        severity: Severity::Medium,
        confidence: 0.65,
        regex: r"(?i)\b(?:instead\s+of|rather\s+than)\s+(?:using|calling)\s+(?:the\s+)?[`'\x22]?\w+[`'\x22]?\s+tool\b",
    },
    // ── Credentials ──────────────────────────────────────────────────────────────────────
    Pattern {
        kind: FindingKind::CredentialReference,
        severity: Severity::High,
        confidence: 0.9,
        regex: r"(?i)(?:~|\$HOME|/home/\w+|/root)/\.(?:ssh|aws|gnupg|kube|docker|config/gcloud|cursor|netrc|npmrc|pypirc|git-credentials)\b|\bid_(?:rsa|ed25519|ecdsa|dsa)\b|\.aws/credentials\b|\bmcp\.json\b|claude_desktop_config\.json",
    },
    Pattern {
        kind: FindingKind::CredentialReference,
        severity: Severity::Medium,
        confidence: 0.75,
        regex: r"(?i)(?:^|[\s`'\x22(/])\.env(?:\.\w+)?\b|/etc/(?:passwd|shadow|sudoers)\b|\bkeychain\b|\bwallet\.dat\b|\b(?:private|secret)\s+keys?\s+(?:file|from|at|in)\b",
    },
    Pattern {
        kind: FindingKind::CredentialReference,
        severity: Severity::Medium,
        confidence: 0.7,
        regex: r"(?i)\b(?:read|send|pass|include|attach|copy|upload|forward|extract|collect)\b[^.\n]{0,40}\b(?:api[\s_-]?keys?|access\s+tokens?|credentials|passwords?|session\s+cookies?|secrets?|private\s+keys?|seed\s+phrase)\b",
    },
    // ── Where data would go ──────────────────────────────────────────────────────────────
    Pattern {
        kind: FindingKind::ExfiltrationSink,
        severity: Severity::Medium,
        confidence: 0.75,
        regex: r"(?i)\b(?:send|post|forward|upload|transmit|email|exfiltrate|report|copy)\s+(?:\w+\s+){0,5}(?:to|at)\s+(?:https?://|[\w.+-]+@[\w-]+\.[\w.]+|the\s+(?:following\s+)?(?:url|endpoint|address|webhook|server))",
    },
    Pattern {
        kind: FindingKind::ExfiltrationSink,
        severity: Severity::Medium,
        confidence: 0.7,
        regex: r"(?i)\b(?:pass|put|include|add|append|embed)\s+(?:\w+\s+){0,5}(?:as|in|into)\s+(?:the\s+)?[`'\x22]?(?:sidenote|notes?|metadata|context|comment|extra|debug|annotation|feedback)[`'\x22]?\s*(?:parameter|argument|field)?",
    },
    Pattern {
        kind: FindingKind::ExfiltrationSink,
        severity: Severity::Medium,
        confidence: 0.6,
        regex: r"(?i)\b(?:bcc|cc|forward|redirect)\s+(?:all\s+|every\s+)?(?:emails?|messages?|copies)\s+to\s+[\w.+-]+@",
    },
    Pattern {
        kind: FindingKind::ExfiltrationSink,
        severity: Severity::Low,
        confidence: 0.3,
        regex: r"(?i)https?://[^\s)>\x22']+",
    },
];

fn compiled() -> &'static [(Regex, &'static Pattern)] {
    static COMPILED: OnceLock<Vec<(Regex, &'static Pattern)>> = OnceLock::new();
    COMPILED.get_or_init(|| {
        PATTERNS
            .iter()
            .filter_map(|p| Regex::new(p.regex).ok().map(|r| (r, p)))
            .collect()
    })
}

/// Zero-width characters, bidirectional controls, tag characters, and other format
/// characters that render as nothing.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}'      // zero-width space, joiners, LRM/RLM
        | '\u{202A}'..='\u{202E}'    // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'    // word joiner, invisible operators
        | '\u{2066}'..='\u{2069}'    // bidi isolates
        | '\u{FEFF}'                 // zero-width no-break space
        | '\u{180E}'                 // Mongolian vowel separator
        | '\u{E0000}'..='\u{E007F}'  // tag characters: ASCII in disguise
    )
}

pub(super) fn text_findings(text: &str, place: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    // Instructions hidden in tag characters decode to ASCII: read them as text too.
    let decoded = decode_tags(text);
    for source in std::iter::once(text).chain(decoded.as_deref()) {
        for (regex, pattern) in compiled() {
            if let Some(m) = regex.find(source) {
                let finding = Finding {
                    kind: pattern.kind,
                    severity: pattern.severity,
                    place: place.to_string(),
                    evidence: visible(m.as_str()),
                    confidence: pattern.confidence,
                };
                if !findings
                    .iter()
                    .any(|f: &Finding| f.kind == finding.kind && f.evidence == finding.evidence)
                {
                    findings.push(finding);
                }
            }
        }
    }
    let invisible: Vec<char> = text.chars().filter(|c| is_invisible(*c)).collect();
    if !invisible.is_empty() {
        let tags = invisible
            .iter()
            .filter(|c| ('\u{E0000}'..='\u{E007F}').contains(*c))
            .count();
        findings.push(Finding {
            kind: FindingKind::InvisibleUnicode,
            severity: Severity::High,
            place: place.to_string(),
            evidence: match &decoded {
                Some(hidden) if tags > 0 => format!("{tags} tag characters spelling {hidden:?}"),
                _ => format!(
                    "{} invisible characters: {}",
                    invisible.len(),
                    visible(&invisible.iter().take(8).collect::<String>())
                ),
            },
            confidence: 0.95,
        });
    }
    if text.contains('\u{1b}') {
        findings.push(Finding {
            kind: FindingKind::AnsiEscape,
            severity: Severity::High,
            place: place.to_string(),
            evidence: visible(
                &text
                    .chars()
                    .skip_while(|c| *c != '\u{1b}')
                    .take(16)
                    .collect::<String>(),
            ),
            confidence: 0.95,
        });
    }
    findings
}

/// The ASCII that Unicode tag characters (U+E0020–E007E) spell, if there are any.
fn decode_tags(text: &str) -> Option<String> {
    let hidden: String = text
        .chars()
        .filter_map(|c| {
            let code = c as u32;
            (0xE0020..=0xE007E)
                .contains(&code)
                .then(|| char::from_u32(code - 0xE0000))
                .flatten()
        })
        .collect();
    (!hidden.is_empty()).then_some(hidden)
}

/// A name that mixes Latin letters with letters of other scripts that look like them
/// (Cyrillic `а`, Greek `ο`): made to pass for another tool's name.
pub(super) fn name_findings(name: &str) -> Vec<Finding> {
    let latin = name.chars().any(|c| c.is_ascii_alphabetic());
    let lookalike = name.chars().any(|c| matches!(c as u32, 0x0370..=0x03FF | 0x0400..=0x04FF | 0x0500..=0x052F | 0xFF21..=0xFF5A));
    let mut findings = Vec::new();
    if latin && lookalike {
        findings.push(Finding {
            kind: FindingKind::HomoglyphName,
            severity: Severity::High,
            place: "name".to_string(),
            evidence: name
                .chars()
                .map(|c| {
                    if c.is_ascii() {
                        c.to_string()
                    } else {
                        format!("\\u{{{:x}}}", c as u32)
                    }
                })
                .collect(),
            confidence: 0.9,
        });
    }
    if name.chars().any(is_invisible) {
        findings.push(Finding {
            kind: FindingKind::InvisibleUnicode,
            severity: Severity::High,
            place: "name".to_string(),
            evidence: visible(name),
            confidence: 0.95,
        });
    }
    findings
}
