//! JUnit XML, the report format CI systems read test results from.
//!
//! Only what readers use: `testsuites` > `testsuite` (one per test file) > `testcase`, with a
//! `failure` for a failed case and an `error` for a file that could not be run.

use std::fmt::Write as _;
use std::time::Duration;

pub struct Suite {
    /// The test file.
    pub name: String,
    pub cases: Vec<Case>,
    /// Why the file could not be run at all.
    pub error: Option<String>,
}

pub struct Case {
    pub name: String,
    pub time: Duration,
    /// The failure's one-line message and its details.
    pub failure: Option<(String, String)>,
}

pub fn render(suites: &[Suite]) -> String {
    let tests: usize = suites.iter().map(|s| s.cases.len()).sum();
    let failures: usize = suites.iter().map(failure_count).sum();
    let errors = suites.iter().filter(|s| s.error.is_some()).count();
    let time: Duration = suites.iter().map(total_time).sum();
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"toolgate test\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" time=\"{:.6}\">",
        time.as_secs_f64()
    );
    for suite in suites {
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{}\" errors=\"{}\" skipped=\"0\" time=\"{:.6}\">",
            escape(&suite.name),
            suite.cases.len(),
            failure_count(suite),
            usize::from(suite.error.is_some()),
            total_time(suite).as_secs_f64()
        );
        if let Some(error) = &suite.error {
            let _ = writeln!(
                xml,
                "    <error message=\"{}\" type=\"load\">{}</error>",
                escape(first_line(error)),
                escape(error)
            );
        }
        for case in &suite.cases {
            let _ = write!(
                xml,
                "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.6}\"",
                escape(&case.name),
                escape(&suite.name),
                case.time.as_secs_f64()
            );
            match &case.failure {
                None => xml.push_str("/>\n"),
                Some((message, details)) => {
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"{}\" type=\"decision\">{}</failure>\n    </testcase>",
                        escape(message),
                        escape(details)
                    );
                }
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    xml
}

fn failure_count(suite: &Suite) -> usize {
    suite.cases.iter().filter(|c| c.failure.is_some()).count()
}

fn total_time(suite: &Suite) -> Duration {
    suite.cases.iter().map(|c| c.time).sum()
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

/// Text as XML attribute or element content. Characters XML 1.0 cannot hold at all (most
/// control characters, which a tool name or argument may contain) become U+FFFD.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_characters_xml_cannot_hold() {
        assert_eq!(escape("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(
            escape("tab\there\u{1}\u{FFFF}"),
            "tab\there\u{FFFD}\u{FFFD}"
        );
    }

    #[test]
    fn counts_failures_and_errors() {
        let suites = [
            Suite {
                name: "a.yaml".into(),
                cases: vec![
                    Case {
                        name: "passes".into(),
                        time: Duration::from_millis(1),
                        failure: None,
                    },
                    Case {
                        name: "fails".into(),
                        time: Duration::from_millis(2),
                        failure: Some(("expected allow, got deny".into(), "trace".into())),
                    },
                ],
                error: None,
            },
            Suite {
                name: "b.yaml".into(),
                cases: Vec::new(),
                error: Some("b.yaml:1:1: missing `policy`".into()),
            },
        ];
        let xml = render(&suites);
        assert!(xml.contains("tests=\"2\" failures=\"1\" errors=\"1\" time=\"0.003000\""));
        assert!(xml.contains(
            "<failure message=\"expected allow, got deny\" type=\"decision\">trace</failure>"
        ));
        assert!(xml.contains("<error message=\"b.yaml:1:1: missing `policy`\" type=\"load\">"));
    }
}
