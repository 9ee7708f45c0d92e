//! Every validation error the loader and the compilers can emit, each pinned to its line,
//! column, policy path and message; and files with several errors report all of them, in
//! file order.
#![allow(clippy::unwrap_used)]

mod common;

use common::{errors, located};

/// Asserts the exact diagnostics, as `(line, column, path, message)`.
fn assert_errors(text: &str, expected: &[Diagnostic<'_>]) {
    let actual = located(text);
    let expected: Vec<(usize, usize, String, String)> = expected
        .iter()
        .map(|(l, c, p, m)| (*l, *c, p.to_string(), m.to_string()))
        .collect();
    assert_eq!(actual, expected, "policy:\n{text}");
}

/// One diagnostic: `(line, column, path, message)`.
type Diagnostic<'a> = (usize, usize, &'a str, &'a str);

/// Each policy with the exact diagnostics it must produce, as a table.
fn assert_each(cases: &[(String, &[Diagnostic<'_>])]) {
    for (text, expected) in cases {
        assert_errors(text, expected);
    }
}

/// A one-tool Intercept policy whose rules start on line 5, column 7.
fn rules(body: &str) -> String {
    let indented: String = body.lines().map(|l| format!("      {l}\n")).collect();
    format!("version: \"1\"\ntools:\n  t:\n    rules:\n{indented}")
}

/// A one-tool PolicyLayer policy whose tool body starts on line 4, column 5.
fn policylayer_tool(body: &str) -> String {
    let indented: String = body.lines().map(|l| format!("    {l}\n")).collect();
    format!("version: \"1\"\ntools:\n  t:\n{indented}")
}

// ── The document: size, syntax, structure limits ─────────────────────────────────────────

#[test]
fn oversized_files_are_refused_before_parsing() {
    let text = format!("version: \"1\"\n#{}\n", "x".repeat(4 * 1024 * 1024));
    let e = errors(&text);
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].location.line, e[0].location.column), (1, 1));
    assert_eq!(
        e[0].message,
        format!(
            "policy file is {} bytes, more than the 4194304 byte limit",
            text.len()
        )
    );
}

#[test]
fn syntax_errors_say_where() {
    let e = errors("version: \"1\"\ntools:\n  a: [1, 2\n");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].message.starts_with("not valid YAML or JSON: "),
        "{}",
        e[0].message
    );
    // At the end of input, which is the start of line 4.
    assert_eq!((e[0].location.line, e[0].location.column), (4, 1));
    assert_eq!(
        e[0].hint.as_deref(),
        Some("check the indentation and quoting around this position")
    );
    // Without a final newline the end of input is still on the last line.
    let text = "{\"version\": \"1\", \"tools\": {\"a\": }";
    let e = errors(text);
    assert_eq!(e.len(), 1);
    assert!(e[0].message.starts_with("not valid YAML or JSON: "));
    assert_eq!(
        (e[0].location.line, e[0].location.column),
        (1, text.len() + 1)
    );
}

#[test]
fn empty_files_and_extra_documents_are_refused() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from(""), &[(1, 1, "", "the policy file is empty")]),
        (String::from("# only a comment\n"), &[(1, 1, "", "the policy file is empty")]),
        (String::from("version: \"1\"\n---\nversion: \"1\"\n"), &[(2, 1, "", "the file holds more than one YAML document")]),
    ];
    assert_each(cases);
}

#[test]
fn the_root_must_be_a_mapping() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from("- version\n"), &[(1, 1, "", "expected a mapping, found a list ([…])")]),
        (String::from("\"just text\""), &[(1, 1, "", "expected a mapping, found a string (\"just text\")")]),
    ];
    assert_each(cases);
}

#[test]
fn nesting_depth_and_expansion_are_limited() {
    let deep = format!("version: \"1\"\nx: {}{}\n", "[".repeat(70), "]".repeat(70));
    assert_errors(
        &deep,
        &[(2, 68, "", "values are nested more than 64 levels deep")],
    );
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let e = errors(&bomb);
    assert_eq!(e.len(), 1);
    assert_eq!(
        e[0].message,
        "the document expands to more than 500000 values"
    );
    assert_eq!(e[0].location.line, 6);
    // An alias copies its anchor's value, and the copy must fit the depth limit too.
    let mut chain = String::from("version: \"1\"\nx0: &x0 [v]\n");
    for i in 1..70 {
        chain.push_str(&format!("x{i}: &x{i} [*x{}]\n", i - 1));
    }
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from(&chain), &[(65, 12, "", "values are nested more than 64 levels deep")]),
        (String::from("version: \"1\"\ndescription: *nope\n"), &[(2, 14, "", "not valid YAML or JSON: while parsing node, found unknown anchor")]),
    ];
    assert_each(cases);
}

#[test]
fn tags_are_refused_on_scalars_lists_and_mappings() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from("version: !!str 1\n"), &[(1, 10, "", "YAML tags are not supported (found `!!str`)")]),
        (String::from("version: \"1\"\nhide: !!seq [a]\n"), &[(2, 7, "", "YAML tags are not supported (found `!!seq`)")]),
        (String::from("version: \"1\"\ntools: !custom {}\n"), &[(2, 8, "", "YAML tags are not supported (found `!custom`)")]),
    ];
    assert_each(cases);
}

#[test]
fn mapping_keys_must_be_strings() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from("version: \"1\"\n[a]: 1\n"), &[(2, 1, "", "a mapping key must be a string, found a list")]),
        (String::from("version: \"1\"\n~: 1\n"), &[(2, 1, "", "a mapping key must be a string, found null")]),
    ];
    assert_each(cases);
}

#[test]
fn every_duplicate_key_is_reported_with_the_first_one() {
    let text = "version: \"1\"\ntools:\n  a:\n    rules: []\n  a:\n    rules: []\nversion: \"1\"\n";
    let e = errors(text);
    assert_eq!(e.len(), 2);
    assert_eq!(
        (
            e[0].location.line,
            e[0].location.column,
            e[0].message.as_str()
        ),
        (
            5,
            3,
            "duplicate key \"a\" (first written at line 3, column 3)"
        )
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some("remove one of the two; toolgate never guesses which one you meant")
    );
    assert_eq!(
        (
            e[1].location.line,
            e[1].location.column,
            e[1].message.as_str()
        ),
        (
            7,
            1,
            "duplicate key \"version\" (first written at line 1, column 1)"
        )
    );
    // JSON too, and `true` and "true" are the same key.
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from("{\"version\": \"1\", \"version\": \"1\"}"), &[(1, 18, "", "duplicate key \"version\" (first written at line 1, column 2)")]),
        (String::from("version: \"1\"\nx:\n  true: 1\n  \"true\": 2\n"), &[(4, 3, "", "duplicate key \"true\" (first written at line 3, column 3)")]),
    ];
    assert_each(cases);
}

// ── Top level ────────────────────────────────────────────────────────────────────────────

#[test]
fn unknown_top_level_keys_suggest_the_nearest() {
    let e = errors("version: \"1\"\ndefualt: deny\ntools: {}\n");
    assert_eq!(e.len(), 1);
    assert_eq!((e[0].location.line, e[0].location.column), (2, 1));
    assert_eq!(e[0].path, "defualt");
    assert_eq!(e[0].message, "unknown key \"defualt\"");
    // The list goes on with toolgate's own top-level sections.
    let hint = e[0].hint.as_deref().unwrap();
    assert!(
        hint.starts_with(
            "did you mean `default`? Known keys here: version, description, default, hide, tools, deny_prefix, "
        ),
        "{hint}"
    );
    // Far from every known key: no guess.
    let e = errors("version: \"1\"\nzzzz: 1\n");
    let hint = e[0].hint.as_deref().unwrap();
    assert!(
        hint.starts_with(
            "known keys here: version, description, default, hide, tools, deny_prefix"
        ),
        "{hint}"
    );
}

#[test]
fn version_must_be_one() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from("tools: {}\n"), &[(1, 1, "", "missing `version`")]),
        (String::from("version: \"2\"\n"), &[(1, 10, "version", "version must be \"1\", got \"2\"")]),
        (String::from("version: 1.0\n"), &[(1, 10, "version", "version must be \"1\", got 1.0")]),
        (String::from("version: [1]\n"), &[(1, 10, "version", "version must be \"1\", got […]")]),
    ];
    assert_each(cases);
    // Written as a number, 1 is accepted (YAML users often omit the quotes).
    assert!(toolgate_policy::compile("version: 1\n").is_ok());
}

#[test]
fn top_level_values_have_types() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from("version: \"1\"\ndescription: 5\ndeny_prefix: [x]\ndefault: maybe\n"), &[(2, 14, "description", "expected a string, found a number (5)"), (3, 14, "deny_prefix", "expected a string, found a list ([…])"), (4, 10, "default", "default must be \"allow\" or \"deny\", got \"maybe\"")]),
        (String::from("version: \"1\"\ndefault: \"\"\n"), &[(2, 10, "default", "must not be empty")]),
        (String::from("version: \"1\"\ndefault: true\n"), &[(2, 10, "default", "expected a string, found a boolean (true)")]),
    ];
    assert_each(cases);
}

#[test]
fn hide_entries_are_distinct_tool_names() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from("version: \"1\"\nhide: [a, \"\", 5, a, \" \"]\n"), &[(2, 11, "hide[1]", "entry must not be empty"), (2, 15, "hide[2]", "expected a tool name, found a number"), (2, 18, "hide[3]", "duplicate entry \"a\""), (2, 21, "hide[4]", "entry must not be empty")]),
        (String::from("version: \"1\"\nhide: secret\n"), &[(2, 7, "hide", "expected a list, found a string (\"secret\")")]),
    ];
    assert_each(cases);
}

#[test]
fn tools_is_a_mapping_of_named_tools() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (String::from("version: \"1\"\ntools: [a]\n"), &[(2, 8, "tools", "expected a mapping, found a list ([…])")]),
        (String::from("version: \"1\"\ntools:\n  \"\": {}\n"), &[(3, 3, "tools[\"\"]", "tool name must not be empty")]),
        (String::from("version: \"1\"\ntools:\n  a: [x]\n"), &[(3, 6, "tools.a", "expected a mapping, found a list ([…])")]),
    ];
    assert_each(cases);
    let e = errors("version: \"1\"\ntools:\n  a:\n    rule: []\n");
    assert_eq!(
        (e[0].location.line, e[0].location.column, e[0].path.as_str()),
        (4, 5, "tools.a.rule")
    );
    assert_eq!(e[0].message, "unknown key \"rule\"");
    assert_eq!(
        e[0].hint.as_deref(),
        Some("did you mean `rules`? Known keys here: rules, idempotency_window, redact")
    );
    assert_errors(
        "version: \"1\"\ntools:\n  a:\n    rules: {x: 1}\n",
        &[(
            4,
            12,
            "tools.a.rules",
            "expected a list, found a mapping ({…})",
        )],
    );
}

// ── Intercept rules ──────────────────────────────────────────────────────────────────────

#[test]
fn a_rule_is_a_mapping_of_known_keys() {
    assert_errors(
        &rules("- just a string"),
        &[(
            5,
            9,
            "tools.t.rules[0]",
            "expected a mapping, found a string (\"just a string\")",
        )],
    );
    let e = errors(&rules("- name: r\n  action: deny\n  on_denny: no"));
    assert_eq!(
        (e[0].location.line, e[0].location.column, e[0].path.as_str()),
        (7, 9, "tools.t.rules[0].on_denny")
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some("did you mean `on_deny`? Known keys here: name, action, conditions, on_deny, reason, message, rate_limit, state, approval_timeout, approval_mode, dry_run, spend_limit, idempotency_window")
    );
}

#[test]
fn names_and_actions() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (rules("- name: \"\"\n  action: deny"), &[(5, 15, "tools.t.rules[0].name", "must not be empty")]),
        (rules("- name: [x]\n  action: deny"), &[(5, 15, "tools.t.rules[0].name", "expected a string, found a list ([…])")]),
    ];
    assert_each(cases);
    let e = errors(&rules("- name: r\n  action: block"));
    assert_eq!(
        (e[0].location.line, e[0].location.column, e[0].path.as_str()),
        (6, 17, "tools.t.rules[0].action")
    );
    assert_eq!(
        e[0].message,
        "action must be \"evaluate\", \"deny\", \"allow\" or \"require_approval\", got \"block\""
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some("use evaluate, deny, allow, or require_approval")
    );
    assert_errors(
        &rules("- name: r\n  action: 1"),
        &[(
            6,
            17,
            "tools.t.rules[0].action",
            "expected a string, found a number (1)",
        )],
    );
}

#[test]
fn what_each_action_allows() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (rules("- name: r"), &[(5, 9, "tools.t.rules[0]", "evaluate rules must have at least one condition")]),
        (rules("- name: r\n  conditions: []"), &[(5, 9, "tools.t.rules[0]", "evaluate rules must have at least one condition")]),
        (rules("- name: r\n  action: allow\n  conditions:\n    - {path: args.a, op: exists, value: true}"), &[(5, 9, "tools.t.rules[0]", "allow rules take no conditions")]),
        (rules("- name: r\n  action: deny\n  approval_timeout: 5m\n  approval_mode: hold"), &[(7, 27, "tools.t.rules[0].approval_timeout", "approval_timeout applies only to action: require_approval"), (8, 24, "tools.t.rules[0].approval_mode", "approval_mode applies only to action: require_approval")]),
    ];
    assert_each(cases);
}

#[test]
fn approval_settings_are_checked() {
    let e = errors(&rules(
        "- name: r\n  action: require_approval\n  approval_mode: later\n  approval_timeout: soon",
    ));
    assert_eq!(e.len(), 2);
    assert_eq!(
        (
            e[0].location.line,
            e[0].location.column,
            e[0].path.as_str(),
            e[0].message.as_str()
        ),
        (
            7,
            24,
            "tools.t.rules[0].approval_mode",
            "unknown approval_mode \"later\""
        )
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some("use retry (answer at once, the agent retries once approved) or hold (wait for the decision)")
    );
    assert_eq!(
        (e[1].location.line, e[1].location.column, e[1].path.as_str(), e[1].message.as_str()),
        (
            8,
            27,
            "tools.t.rules[0].approval_timeout",
            "\"soon\" is not a window: use minute, hour, day, or a duration such as 30s, 15m, 2h, 7d"
        )
    );
}

#[test]
fn one_message_key_per_rule() {
    let e = errors(&rules(
        "- name: r\n  action: deny\n  on_deny: a\n  reason: b",
    ));
    assert_eq!(e.len(), 1);
    assert_eq!(
        (
            e[0].location.line,
            e[0].location.column,
            e[0].path.as_str(),
            e[0].message.as_str()
        ),
        (
            8,
            17,
            "tools.t.rules[0].reason",
            "both `on_deny` and `reason` set the rule's message"
        )
    );
    assert_errors(
        &rules("- name: r\n  action: deny\n  message: 5"),
        &[(
            7,
            18,
            "tools.t.rules[0].message",
            "expected a string, found a number (5)",
        )],
    );
}

#[test]
fn rate_limit_strings() {
    let cases = [
        (
            "5 per hour",
            "rate_limit must be in the format \"N/window\", got \"5 per hour\"",
        ),
        (
            "0/hour",
            "rate_limit count must be a positive integer, got \"0\"",
        ),
        (
            "-1/hour",
            "rate_limit count must be a positive integer, got \"-1\"",
        ),
        (
            "x/hour",
            "rate_limit count must be a positive integer, got \"x\"",
        ),
        (
            "5/fortnight",
            "rate_limit window: \"fortnight\" is not a window: use minute, hour, day, or a duration such as 30s, 15m, 2h, 7d",
        ),
        (
            "5/500ms",
            "rate_limit window: window \"500ms\" is shorter than one second",
        ),
        (
            "5/400d",
            "rate_limit window: window \"400d\" is longer than 366 days",
        ),
    ];
    for (written, message) in cases {
        assert_errors(
            &rules(&format!("- name: r\n  rate_limit: \"{written}\"")),
            &[(6, 21, "tools.t.rules[0].rate_limit", message)],
        );
    }
    assert_errors(
        &rules("- name: r\n  rate_limit: 5"),
        &[(
            6,
            21,
            "tools.t.rules[0].rate_limit",
            "expected a rate limit, found a number",
        )],
    );
}

#[test]
fn rate_limit_combinations() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (rules("- name: r\n  rate_limit: 5/hour\n  conditions:\n    - {path: args.a, op: exists, value: true}"), &[(6, 21, "tools.t.rules[0].rate_limit", "rate_limit cannot be combined with conditions or state")]),
        (rules("- name: r\n  rate_limit: 5/hour\n  state: {counter: c, window: hour, max: 1}"), &[(6, 21, "tools.t.rules[0].rate_limit", "rate_limit cannot be combined with conditions or state")]),
        (rules("- name: r\n  action: deny\n  rate_limit: 5/hour"), &[(7, 21, "tools.t.rules[0].rate_limit", "rate_limit cannot be used with action \"deny\"")]),
        (rules("- name: a\n  rate_limit: 5/hour\n- name: b\n  rate_limit: 50/60m"), &[(7, 9, "tools.t.rules[1]", "duplicate state counter \"_rate_hour\" (also used by rules[0])")]),
    ];
    assert_each(cases);
}

#[test]
fn rate_limit_blocks() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (rules("- rate_limit: {max: 10}"), &[(5, 21, "tools.t.rules[0].rate_limit", "a rate_limit block needs both `max` and `window`")]),
        (rules("- rate_limit: {max: 10, window: 60, burst: 5}"), &[(5, 43, "tools.t.rules[0].rate_limit.burst", "unknown key \"burst\"")]),
        (rules("- rate_limit: {max: 0, window: 1.5, scope: team, mode: rolling}"), &[(5, 27, "tools.t.rules[0].rate_limit.max", "max must be greater than zero, got 0"), (5, 38, "tools.t.rules[0].rate_limit.window", "window 1.5 must be a whole number of seconds"), (5, 50, "tools.t.rules[0].rate_limit.scope", "unknown scope \"team\""), (5, 62, "tools.t.rules[0].rate_limit.mode", "unknown window mode \"rolling\"")]),
        (rules("- rate_limit: {max: \"10\", window: true}"), &[(5, 27, "tools.t.rules[0].rate_limit.max", "expected a number, found a string (\"10\")"), (5, 41, "tools.t.rules[0].rate_limit.window", "expected a window such as minute, hour, day, 15m or 60 (seconds), found a boolean")]),
        (rules("- rate_limit: {max: 0.5, window: 60}"), &[(5, 21, "tools.t.rules[0].rate_limit", "every call would be denied: each call adds 1 to counter \"_rate_minute\" but its maximum is 0.5")]),
        (rules("- rate_limit: {max: 5, window: 0}"), &[(5, 38, "tools.t.rules[0].rate_limit.window", "window \"0s\" is shorter than one second")]),
    ];
    assert_each(cases);
}

#[test]
fn state_blocks_need_a_counter_a_window_and_a_limit() {
    let e = errors(&rules("- name: r\n  state: {increment: 1}"));
    assert_eq!(
        e.iter()
            .map(|d| (
                d.location.line,
                d.location.column,
                d.path.as_str(),
                d.message.as_str()
            ))
            .collect::<Vec<_>>(),
        [
            (
                6,
                16,
                "tools.t.rules[0].state",
                "state block is missing `counter`"
            ),
            (
                6,
                16,
                "tools.t.rules[0].state",
                "state block is missing `window`"
            ),
        ]
    );
    let e = errors(&rules("- name: r\n  state: {counter: c, window: hour}"));
    assert_eq!(
        (
            e[0].location.line,
            e[0].location.column,
            e[0].path.as_str(),
            e[0].message.as_str()
        ),
        (
            6,
            16,
            "tools.t.rules[0].state",
            "counter \"c\" has no limit"
        )
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some(
            "add `max: N` to the state block, or a condition {path: state.t.c, op: lte, value: N}"
        )
    );
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (rules("- name: r\n  state: hourly"), &[(6, 16, "tools.t.rules[0].state", "expected a mapping, found a string (\"hourly\")")]),
        (rules("- name: r\n  state: {counter: c, window: hour, max: 1, reset: daily}"), &[(6, 51, "tools.t.rules[0].state.reset", "unknown key \"reset\"")]),
    ];
    assert_each(cases);
}

#[test]
fn state_block_fields_are_checked() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (rules("- name: r\n  state: {counter: \"daily spend\", window: hour, max: 1}"), &[(6, 26, "tools.t.rules[0].state.counter", "counter name \"daily spend\" contains ' '")]),
        (rules("- name: r\n  state: {counter: a.b, window: hour, max: 1}"), &[(6, 26, "tools.t.rules[0].state.counter", "counter name \"a.b\" contains '.'")]),
        (rules("- name: r\n  state: {counter: c, window: hour, max: 1, increment: 1, increment_from: args.n}"), &[(6, 62, "tools.t.rules[0].state.increment", "use either increment or increment_from, not both")]),
        (rules("- name: r\n  state: {counter: c, window: hour, max: 5, increment: -1}"), &[(6, 62, "tools.t.rules[0].state.increment", "increment must be greater than zero, got -1")]),
        (rules("- name: r\n  state: {counter: c, window: hour, max: 0.0000001}"), &[(6, 48, "tools.t.rules[0].state.max", "max: 0.0000001 has more than 6 decimal places")]),
        (rules("- name: r\n  state: {counter: c, window: hour, max: 5, increment_from: amount}"), &[(6, 67, "tools.t.rules[0].state.increment_from", "increment_from must start with \"args.\", got \"amount\"")]),
        (rules("- name: r\n  state: {counter: c, window: hour, max: 5, increment_from: args..x}"), &[(6, 67, "tools.t.rules[0].state.increment_from", "increment_from: path \"args..x\" has an empty segment")]),
        (rules("- name: r\n  state: {counter: c, window: hour, max: 5, scope: args.}"), &[(6, 58, "tools.t.rules[0].state.scope", "path \"args.\" has an empty segment")]),
        (rules("- name: r\n  state: {counter: c, window: hour, max: 2, increment: 3}"), &[(6, 16, "tools.t.rules[0].state", "every call would be denied: each call adds 3 to counter \"c\" but its maximum is 2")]),
    ];
    assert_each(cases);
}

#[test]
fn counter_conditions_must_become_a_limit() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (rules("- name: r\n  conditions:\n    - {path: state.t.c, op: lte, value: 5}"), &[(7, 35, "tools.t.rules[0].conditions[0]", "condition references state.t.c but no matching state block found")]),
        (rules("- name: r\n  conditions:\n    - {path: state.t.c, op: gte, value: 5}\n  state: {counter: c, window: hour}"), &[(7, 35, "tools.t.rules[0].conditions[0]", "a counter condition with op \"gte\" cannot be turned into a limit"), (8, 16, "tools.t.rules[0].state", "counter \"c\" has no limit")]),
        (rules("- name: r\n  conditions:\n    - {path: state.other.c, op: lte, value: 5}\n  state: {counter: c, window: hour, max: 5}"), &[(7, 39, "tools.t.rules[0].conditions[0]", "condition reads state.other.c but this rule's counter is state.t.c")]),
        (rules("- name: r\n  conditions:\n    - {path: state.t.c, op: lt, value: 1}\n  state: {counter: c, window: hour}"), &[(7, 35, "tools.t.rules[0].conditions[0]", "this limit would deny every call: the maximum must be above zero"), (8, 16, "tools.t.rules[0].state", "counter \"c\" has no limit")]),
        (rules("- name: r\n  conditions:\n    - {path: state.t.c, op: lte, value: 5}\n    - {path: state.t.c, op: lt, value: 9}\n  state: {counter: c, window: hour}"), &[(8, 35, "tools.t.rules[0].conditions[1]", "counter \"c\" has more than one limit condition")]),
        (rules("- name: r\n  conditions:\n    - {path: state.t.c, op: lte, value: 5}\n  state: {counter: c, window: hour, max: 5}"), &[(8, 16, "tools.t.rules[0].state", "counter \"c\" has both `max` and a limit condition; keep one")]),
        (rules("- name: r\n  conditions:\n    - {path: state.t.c, op: lte, value: \"5\"}\n  state: {counter: c, window: hour}"), &[(7, 47, "tools.t.rules[0].conditions[0].value", "expected a number, found a string (\"5\")"), (8, 16, "tools.t.rules[0].state", "counter \"c\" has no limit")]),
        (rules("- name: r\n  conditions:\n    - {path: state.c, op: lte, value: 5}"), &[(7, 20, "tools.t.rules[0].conditions[0].path", "state path \"state.c\" must be state.<tool or _global>.<counter>")]),
        (rules("- name: r\n  action: deny\n  state: {counter: c, window: hour, max: 1}"), &[(7, 16, "tools.t.rules[0].state", "deny rules cannot keep a counter")]),
    ];
    assert_each(cases);
}

// ── Conditions ───────────────────────────────────────────────────────────────────────────

#[test]
fn conditions_are_mappings_with_path_op_and_value() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (rules("- name: r\n  conditions: {path: args.a}"), &[(6, 21, "tools.t.rules[0].conditions", "expected a list, found a mapping ({…})")]),
        (rules("- name: r\n  conditions: [args.a]"), &[(6, 22, "tools.t.rules[0].conditions[0]", "expected a mapping, found a string (\"args.a\")")]),
        (rules("- name: r\n  conditions:\n    - {}"), &[(7, 13, "tools.t.rules[0].conditions[0]", "condition is missing `path`"), (7, 13, "tools.t.rules[0].conditions[0]", "condition is missing `op`")]),
        (rules("- name: r\n  conditions:\n    - {path: args.a, op: exists, value: true, note: x}"), &[(7, 53, "tools.t.rules[0].conditions[0].note", "unknown key \"note\"")]),
        (rules("- name: r\n  conditions:\n    - {path: args.a, op: eq}"), &[(7, 13, "tools.t.rules[0].conditions[0]", "operator \"eq\" needs a `value`")]),
    ];
    assert_each(cases);
}

#[test]
fn paths_and_operators_are_checked() {
    let e = errors(&rules(
        "- name: r\n  conditions:\n    - {path: amount, op: lte, value: 5}",
    ));
    assert_eq!(
        (
            e[0].location.line,
            e[0].location.column,
            e[0].path.as_str(),
            e[0].message.as_str()
        ),
        (
            7,
            20,
            "tools.t.rules[0].conditions[0].path",
            "path must start with \"args.\", got \"amount\""
        )
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some("argument paths look like args.amount or args.items.0.id; the caller's like identity.scopes; counters like state.<tool>.<counter>")
    );
    assert_errors(
        &rules("- name: r\n  conditions:\n    - {path: args.a..b, op: lte, value: 5}"),
        &[(
            7,
            20,
            "tools.t.rules[0].conditions[0].path",
            "path \"args.a..b\" has an empty segment",
        )],
    );
    let e = errors(&rules(
        "- name: r\n  conditions:\n    - {path: args.a, op: between, value: 5}",
    ));
    assert_eq!(
        (
            e[0].location.line,
            e[0].location.column,
            e[0].path.as_str(),
            e[0].message.as_str()
        ),
        (
            7,
            32,
            "tools.t.rules[0].conditions[0].op",
            "unknown operator \"between\""
        )
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some("use one of: eq, neq, in, not_in, lt, lte, gt, gte, regex, contains, exists")
    );
    assert_errors(
        &rules("- name: r\n  conditions:\n    - {path: 5, op: \"\", value: 5}"),
        &[(
            7,
            20,
            "tools.t.rules[0].conditions[0].path",
            "expected a string, found a number (5)",
        )],
    );
}

#[test]
fn operator_values_have_the_right_type() {
    let cases = [
        (
            "lt",
            "\"5\"",
            "operator \"lt\" needs a number, found a string (\"5\")",
        ),
        (
            "lte",
            "[5]",
            "operator \"lte\" needs a number, found a list ([…])",
        ),
        (
            "gt",
            "true",
            "operator \"gt\" needs a number, found a boolean (true)",
        ),
        (
            "gte",
            "null",
            "operator \"gte\" needs a number, found null (null)",
        ),
        ("in", "usd", "operator \"in\" needs a list, found a string"),
        (
            "not_in",
            "5",
            "operator \"not_in\" needs a list, found a number",
        ),
        ("exists", "yes", "operator \"exists\" needs true or false"),
        ("regex", "5", "operator \"regex\" needs a string pattern"),
        (
            "contains",
            "[a]",
            "operator \"contains\" needs a string (substring) or a single value (list element)",
        ),
        (
            "contains",
            "null",
            "operator \"contains\" needs a string (substring) or a single value (list element)",
        ),
    ];
    for (op, value, message) in cases {
        let column = 41 + op.len();
        assert_errors(
            &rules(&format!(
                "- name: r\n  conditions:\n    - {{path: args.a, op: {op}, value: {value}}}"
            )),
            &[(7, column, "tools.t.rules[0].conditions[0].value", message)],
        );
    }
}

#[test]
fn numbers_json_cannot_hold_are_refused_rather_than_read_as_text() {
    assert_errors(
        &rules("- name: r\n  conditions:\n    - {path: args.a, op: eq, value: [1, 1e400]}"),
        &[(
            7,
            47,
            "tools.t.rules[0].conditions[0].value",
            "number 1e400 is out of range",
        )],
    );
}

#[test]
fn regexes_must_compile_within_limits() {
    let e = errors(&rules(
        "- name: r\n  conditions:\n    - {path: args.a, op: regex, value: \"(unclosed\"}",
    ));
    assert_eq!(
        (
            e[0].location.line,
            e[0].location.column,
            e[0].path.as_str(),
            e[0].message.as_str()
        ),
        (
            7,
            46,
            "tools.t.rules[0].conditions[0].value",
            "invalid regex \"(unclosed\": error: unclosed group"
        )
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some("toolgate uses Rust regex syntax (RE2-like: no backreferences or look-around)")
    );
    let e = errors(&rules(
        "- name: r\n  conditions:\n    - {path: args.a, op: regex, value: \"(a)\\\\1\"}",
    ));
    assert_eq!(
        e[0].message,
        "invalid regex \"(a)\\\\1\": error: backreferences are not supported"
    );
    let long = "a".repeat(4097);
    assert_errors(
        &rules(&format!(
            "- name: r\n  conditions:\n    - {{path: args.a, op: regex, value: \"{long}\"}}"
        )),
        &[(
            7,
            46,
            "tools.t.rules[0].conditions[0].value",
            "regex is 4097 bytes long, more than the 4096 allowed",
        )],
    );
    let e = errors(&rules(
        "- name: r\n  conditions:\n    - {path: args.a, op: regex, value: \"\\\\w{1000}\\\\w{1000}\"}",
    ));
    assert_eq!((e[0].location.line, e[0].location.column), (7, 46));
    assert_eq!(
        e[0].message,
        "regex compiles to more than the 262144 byte limit"
    );
}

// ── PolicyLayer JSON ─────────────────────────────────────────────────────────────────────

#[test]
fn policylayer_tool_entries() {
    let e = errors(&policylayer_tool("require: []\nlimit: []"));
    assert_eq!(
        (
            e[0].location.line,
            e[0].location.column,
            e[0].path.as_str(),
            e[0].message.as_str()
        ),
        (5, 5, "tools.t.limit", "unknown key \"limit\"")
    );
    assert_eq!(
        e[0].hint.as_deref(),
        Some("did you mean `limits`? Known keys here: require, deny_if, require_approval, limits")
    );
    // `rules` marks the Intercept form, where PolicyLayer's keys are unknown.
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (policylayer_tool("require: []\nrules: []"), &[(4, 5, "tools.t.require", "unknown key \"require\"")]),
        (policylayer_tool("require: {path: args.a}"), &[(4, 14, "tools.t.require", "expected a list, found a mapping ({…})")]),
        (policylayer_tool("require:\n  - {path: state.t.c, op: lte, value: 5}"), &[(5, 31, "tools.t.require[0]", "PolicyLayer policies limit counters with `limits`, not state conditions")]),
        (policylayer_tool("deny_if:\n  - {conditions: [], on_deny: 5, when: x}"), &[(5, 35, "tools.t.deny_if[0].on_deny", "expected a string, found a number (5)"), (5, 38, "tools.t.deny_if[0].when", "unknown key \"when\"")]),
        (policylayer_tool("require_approval:\n  - {message: [x], approval_mode: later}"), &[(5, 19, "tools.t.require_approval[0].message", "expected a string, found a list ([…])"), (5, 39, "tools.t.require_approval[0].approval_mode", "unknown approval_mode \"later\"")]),
    ];
    assert_each(cases);
}

#[test]
fn policylayer_limits() {
    #[rustfmt::skip]
    let cases: &[(String, &[Diagnostic<'_>])] = &[
        (policylayer_tool("limits:\n  - {scope: grant}"), &[(5, 9, "tools.t.limits[0]", "limit is missing `counter`"), (5, 9, "tools.t.limits[0]", "limit is missing `window`"), (5, 9, "tools.t.limits[0]", "limit is missing `max`")]),
        (policylayer_tool("limits:\n  - {counter: c, window: week, max: -1, scope: team, increment: 1, increment_from: args.a}"), &[(5, 30, "tools.t.limits[0].window", "\"week\" is not a window: use minute, hour, day, or a duration such as 30s, 15m, 2h, 7d"), (5, 41, "tools.t.limits[0].max", "max must be greater than zero, got -1"), (5, 52, "tools.t.limits[0].scope", "unknown scope \"team\""), (5, 69, "tools.t.limits[0].increment", "use either increment or increment_from, not both")]),
        (policylayer_tool("limits:\n  - {counter: c, window: hour, max: 5}\n  - {counter: c, window: day, max: 50}"), &[(6, 9, "tools.t.limits[1]", "duplicate counter \"c\"")]),
        (policylayer_tool("limits:\n  - {counter: c, window: hour, max: 5, increment: 6}"), &[(5, 9, "tools.t.limits[0]", "every call would be denied: each call adds 6 to counter \"c\" but its maximum is 5")]),
        (String::from("{\"version\": \"1\", \"all_tools\": {\"limits\": [], \"require\": []}}"), &[(1, 46, "all_tools.require", "unknown key \"require\"")]),
    ];
    assert_each(cases);
}

// ── Many errors at once ──────────────────────────────────────────────────────────────────

#[test]
fn every_error_in_a_file_is_reported_in_file_order() {
    let text = r#"version: "2"
default: sometimes
hide: ["", a, a]
tools:
  create_issue:
    rules:
      - name: ok
        rate_limit: 5/hour
      - name: bad op
        conditions:
          - path: args.title
            op: startswith
            value: "x"
      - name: bad value
        conditions:
          - path: args.n
            op: lte
            value: "ten"
  "*":
    rules:
      - name: bad window
        rate_limit: 60/fortnight
"#;
    assert_errors(
        text,
        &[
            (1, 10, "version", "version must be \"1\", got \"2\""),
            (
                2,
                10,
                "default",
                "default must be \"allow\" or \"deny\", got \"sometimes\"",
            ),
            (3, 8, "hide[0]", "entry must not be empty"),
            (3, 15, "hide[2]", "duplicate entry \"a\""),
            (
                12,
                17,
                "tools.create_issue.rules[1].conditions[0].op",
                "unknown operator \"startswith\"",
            ),
            (
                18,
                20,
                "tools.create_issue.rules[2].conditions[0].value",
                "operator \"lte\" needs a number, found a string (\"ten\")",
            ),
            (
                22,
                21,
                "tools[\"*\"].rules[0].rate_limit",
                "rate_limit window: \"fortnight\" is not a window: use minute, hour, day, or a duration such as 30s, 15m, 2h, 7d",
            ),
        ],
    );
}

#[test]
fn diagnostics_render_with_file_line_column_path_and_hint() {
    let e = errors(&rules("- name: r\n  action: block"));
    assert_eq!(
        e[0].display_in("policy.yaml").to_string(),
        "policy.yaml:6:17: tools.t.rules[0].action: action must be \"evaluate\", \"deny\", \"allow\" or \"require_approval\", got \"block\"\n    help: use evaluate, deny, allow, or require_approval"
    );
    let json = serde_json::to_value(&e[0]).unwrap();
    assert_eq!(json["line"], 6);
    assert_eq!(json["column"], 17);
    assert_eq!(json["path"], "tools.t.rules[0].action");
}

// ── Identities ───────────────────────────────────────────────────────────────────────────

#[test]
fn identities_hold_distinct_sha256_hashes() {
    let text = "version: \"1\"\nidentities:\n  \"\": aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  alice:\n    token_sha256: not-a-hash\n  bob: []\n  carol:\n    token: x\n  dave: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n  erin:\n    token_sha256: [aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa]\n";
    assert_errors(
        text,
        &[
            (3, 3, "identities[\"\"]", "identity name must not be empty"),
            (
                5,
                19,
                "identities.alice.token_sha256",
                "not a SHA-256 hash (64 hex digits); tokens themselves never go in a policy",
            ),
            (6, 8, "identities.bob", "needs at least one token hash"),
            (8, 5, "identities.carol.token", "unknown key \"token\""),
            (8, 5, "identities.carol", "missing `token_sha256`"),
            (
                11,
                20,
                "identities.erin.token_sha256[0]",
                "this token hash is already used by identity \"dave\"",
            ),
        ],
    );
}
