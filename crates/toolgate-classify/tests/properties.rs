//! Property tests: classification never panics, whatever the input, is a
//! pure function of its input, and `classify_all` agrees with `classify`
//! given the same siblings.

#![allow(clippy::unwrap_used)]

use proptest::prelude::*;
use serde_json::{Map, Value};
use toolgate_classify::{classify, classify_all, parse_tools_document, Context, ToolDef};

/// Keys that steer the classifier, mixed with arbitrary ones, so generated
/// schemas and annotations reach the interesting code paths.
const INTERESTING_KEYS: &[&str] = &[
    "properties",
    "type",
    "amount",
    "currency",
    "recipient",
    "command",
    "sql",
    "query",
    "code",
    "force",
    "recursive",
    "path",
    "readOnlyHint",
    "destructiveHint",
    "idempotentHint",
    "openWorldHint",
    "title",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(
            |number| serde_json::Number::from_f64(number).map_or(Value::Null, Value::Number)
        ),
        prop_oneof![
            Just("string".to_string()),
            Just("boolean".to_string()),
            any::<String>()
        ]
        .prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        let key = prop_oneof![
            prop::sample::select(INTERESTING_KEYS).prop_map(str::to_string),
            "[a-zA-Z_]{1,12}",
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key, inner), 0..6)
                .prop_map(|entries| Value::Object(entries.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Names mixing lexicon words, separators and arbitrary text.
fn tool_name() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9_.\\-]{0,40}",
        prop::collection::vec(
            prop::sample::select(
                &[
                    "get", "delete", "run", "pay", "refund", "list", "charges", "close", "tab",
                    "and", "or", "query", "shell", "look", "up", "Über", "删除", "", "_", "X",
                ][..]
            ),
            0..6
        )
        .prop_map(|words| words.join("_")),
    ]
}

fn tool() -> impl Strategy<Value = ToolDef> {
    (
        tool_name(),
        prop::option::of(any::<String>()),
        prop::option::of(prop_oneof![any::<String>(), "[a-z ,./&-]{0,80}"]),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(
            |(name, title, description, input_schema, annotations)| ToolDef {
                name,
                title,
                description,
                input_schema,
                annotations,
            },
        )
}

fn context() -> impl Strategy<Value = Context> {
    (
        prop::option::of(any::<String>()),
        prop::collection::vec(tool_name(), 0..5),
    )
        .prop_map(|(server_name, sibling_names)| Context {
            server_name,
            sibling_names,
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn classify_is_total_and_deterministic(tool in tool(), ctx in context()) {
        let first = classify(&tool, &ctx);
        let second = classify(&tool.clone(), &ctx.clone());
        prop_assert_eq!(&first, &second);
        prop_assert!((0.0..=1.0).contains(&first.confidence));
        prop_assert!(!first.evidence.is_empty());
        prop_assert_eq!(first.risk, first.category.risk());
    }

    #[test]
    fn classify_all_agrees_with_classify(
        names in prop::collection::btree_set(tool_name(), 0..8),
        server in prop::option::of("[a-z-]{0,12}"),
    ) {
        let tools: Vec<ToolDef> = names.into_iter().map(ToolDef::new).collect();
        let together = classify_all(&tools, server.as_deref());
        prop_assert_eq!(together.len(), tools.len());
        for (index, tool) in tools.iter().enumerate() {
            let siblings = tools
                .iter()
                .filter(|other| other.name != tool.name)
                .map(|other| other.name.clone())
                .collect();
            let alone = classify(tool, &Context::new(server.as_deref(), siblings));
            prop_assert_eq!(&alone, &together[index]);
        }
    }

    #[test]
    fn parse_tools_document_never_panics(text in any::<String>()) {
        let _ = parse_tools_document(&text);
    }

    #[test]
    fn parse_tools_document_never_panics_on_json(value in json_value()) {
        let wrapped = serde_json::json!({"tools": [value.clone()]});
        let _ = parse_tools_document(&value.to_string());
        let _ = parse_tools_document(&wrapped.to_string());
    }
}
