//! Hand-written tools covering every category, every annotation case,
//! naming styles, missing and non-English descriptions, parameters and
//! sibling context.

#![allow(clippy::unwrap_used)]

use serde_json::{json, Value};
use toolgate_classify::{classify, classify_all, Category, Classification, Context, Risk, ToolDef};

fn verdict(tool: &ToolDef) -> Classification {
    classify(tool, &Context::default())
}

fn category_of(name: &str, description: &str) -> Category {
    verdict(&ToolDef::new(name).with_description(description)).category
}

fn category_of_name(name: &str) -> Category {
    verdict(&ToolDef::new(name)).category
}

fn mentions(result: &Classification, needle: &str) -> bool {
    result.evidence.iter().any(|item| item.contains(needle))
}

fn schema(properties: Value) -> Value {
    json!({"type": "object", "properties": properties})
}

#[test]
fn reading_financial_data_is_read() {
    assert_eq!(category_of("list_charges", "List charges"), Category::Read);
    assert_eq!(
        category_of("get_balance", "Retrieve the current account balance"),
        Category::Read
    );
    assert_eq!(category_of_name("list_charges"), Category::Read);
    assert_eq!(category_of_name("get_balance"), Category::Read);
    let result = verdict(&ToolDef::new("list_charges"));
    assert!(
        mentions(&result, "reading financial data is Read"),
        "{result:?}"
    );
}

#[test]
fn moving_money_is_financial() {
    for name in [
        "create_refund",
        "create_payment_intent",
        "transfer_funds",
        "pay_invoice",
    ] {
        let result = verdict(&ToolDef::new(name));
        assert_eq!(result.category, Category::Financial, "{name}: {result:?}");
        assert_eq!(result.risk, Risk::Critical);
    }
    assert_eq!(
        category_of("create_refund", "Process a refund for a captured payment"),
        Category::Financial
    );
    assert_eq!(
        category_of("capture_payment", "Capture a held payment"),
        Category::Financial
    );
}

#[test]
fn amount_and_currency_parameters_suggest_money_movement() {
    let tool = ToolDef::new("send")
        .with_description("Send to a recipient")
        .with_input_schema(schema(json!({
            "amount": {"type": "integer"},
            "currency": {"type": "string"},
            "recipient": {"type": "string"}
        })));
    let result = verdict(&tool);
    assert_eq!(result.category, Category::Financial, "{result:?}");
    assert!(mentions(
        &result,
        "parameters amount and currency suggest money movement"
    ));
}

#[test]
fn running_code_is_execute() {
    for name in [
        "run_command",
        "execute_sql",
        "evaluate_script",
        "invokeLambda",
        "shell",
    ] {
        let result = verdict(&ToolDef::new(name));
        assert_eq!(result.category, Category::Execute, "{name}: {result:?}");
        assert_eq!(result.risk, Risk::High);
    }
    assert_eq!(
        category_of("execute_sql", "Executes raw SQL in the database"),
        Category::Execute
    );
}

#[test]
fn code_parameters_push_towards_execute() {
    let with_code = ToolDef::new("query")
        .with_description("Query the database")
        .with_input_schema(schema(json!({"sql": {"type": "string"}})));
    let plain = ToolDef::new("query").with_description("Query the database");
    let with_code = verdict(&with_code);
    assert!(
        mentions(&with_code, "parameter \"sql\" carries code"),
        "{with_code:?}"
    );
    // A "query" search box on a search tool is not code.
    let search = ToolDef::new("search_issues")
        .with_description("Search issues")
        .with_input_schema(schema(json!({"query": {"type": "string"}})));
    let search = verdict(&search);
    assert_eq!(search.category, Category::Read);
    assert!(!mentions(&search, "carries code"));
    // An integer "code" is a status code, not program text.
    let status =
        ToolDef::new("send_status").with_input_schema(schema(json!({"code": {"type": "integer"}})));
    assert!(!mentions(&verdict(&status), "carries code"));
    assert!(verdict(&plain).category == Category::Read);
}

#[test]
fn read_only_claims_keep_sql_tools_read() {
    assert_eq!(
        category_of(
            "query",
            "Execute a read-only SQL query against the connected database"
        ),
        Category::Read
    );
}

#[test]
fn deleting_is_destructive() {
    for name in [
        "delete_repository",
        "drop_table",
        "purge_cache",
        "wipeLogs",
        "tf_destroy",
    ] {
        let result = verdict(&ToolDef::new(name));
        assert_eq!(result.category, Category::Destructive, "{name}: {result:?}");
        assert_eq!(result.risk, Risk::Critical);
    }
    let result =
        verdict(&ToolDef::new("delete_repository").with_description("Delete a repository"));
    assert_eq!(
        result.evidence[0],
        "name verb \"delete\" suggests Destructive"
    );
}

#[test]
fn force_and_recursive_raise_destructiveness() {
    let properties = json!({"path": {"type": "string"}, "force": {"type": "boolean"}});
    let plain = ToolDef::new("move_file").with_description("Move a file");
    let forced = plain.clone().with_input_schema(schema(properties));
    let forced = verdict(&forced);
    assert!(mentions(&forced, "\"force\""), "{forced:?}");
    let plain = verdict(&plain);
    assert_eq!(plain.category, Category::Write);
    assert!(forced.confidence < plain.confidence);

    let recursive = ToolDef::new("remove_directory")
        .with_description("Remove a directory")
        .with_input_schema(schema(json!({"recursive": {"type": "boolean"}})));
    let recursive = verdict(&recursive);
    assert_eq!(recursive.category, Category::Destructive);
    assert!(mentions(&recursive, "\"recursive\""));
}

#[test]
fn changing_data_is_write() {
    for name in [
        "create_issue",
        "update_page",
        "add_comment",
        "set_label",
        "upload_file",
    ] {
        let result = verdict(&ToolDef::new(name));
        assert_eq!(result.category, Category::Write, "{name}: {result:?}");
        assert_eq!(result.risk, Risk::Medium);
    }
}

#[test]
fn session_plumbing_is_other() {
    for name in [
        "login",
        "logout",
        "session_start",
        "browser_tab_close",
        "switch_connection",
    ] {
        let result = verdict(&ToolDef::new(name));
        assert_eq!(result.category, Category::Other, "{name}: {result:?}");
        assert_eq!(result.risk, Risk::Low);
        assert!(mentions(&result, "session plumbing"), "{name}: {result:?}");
    }
    assert_eq!(category_of_name("browser_navigate_back"), Category::Other);
    // Plumbing verbs are ordinary verbs on ordinary objects.
    assert_eq!(category_of_name("close_issue"), Category::Write);
    assert_eq!(category_of_name("start_container"), Category::Execute);
}

#[test]
fn unexplained_tools_are_other_with_low_confidence() {
    let result = verdict(&ToolDef::new("frobnicate").with_description("Frobnicates the widget"));
    assert_eq!(result.category, Category::Other);
    assert!(result.confidence <= 0.3);
    assert!(result.evidence[0].contains("no name, description or schema signal"));
}

#[test]
fn every_naming_style_is_understood() {
    assert_eq!(category_of_name("fs.read_file"), Category::Read);
    assert_eq!(category_of_name("fs.delete_file"), Category::Destructive);
    assert_eq!(category_of_name("getJiraIssue"), Category::Read);
    assert_eq!(
        category_of_name("deleteConfluencePage"),
        Category::Destructive
    );
    assert_eq!(category_of_name("notion-create-page"), Category::Write);
    assert_eq!(category_of_name("Delete-Tag"), Category::Destructive);
    assert_eq!(
        category_of_name("d1_database_delete"),
        Category::Destructive
    );
    assert_eq!(category_of_name("runSEOAudit"), Category::Execute);
    let prefixed = classify(
        &ToolDef::new("asana_get_task"),
        &Context::new(Some("asana"), Vec::new()),
    );
    assert_eq!(prefixed.category, Category::Read);
}

#[test]
fn a_missing_description_lowers_confidence() {
    for (name, description) in [
        ("delete_repository", "Delete a repository"),
        ("list_issues", "List issues in a repository"),
        ("run_command", "Run a shell command"),
        ("create_refund", "Create a refund"),
    ] {
        let with = verdict(&ToolDef::new(name).with_description(description));
        let without = verdict(&ToolDef::new(name));
        let blank = verdict(&ToolDef::new(name).with_description("   "));
        assert_eq!(with.category, without.category, "{name}");
        assert!(
            without.confidence < with.confidence,
            "{name}: {without:?} vs {with:?}"
        );
        assert_eq!(blank.confidence, without.confidence, "{name}");
        assert!(mentions(&without, "no description"));
    }
}

#[test]
fn non_english_descriptions_neither_crash_nor_mislead() {
    let cases = [
        (
            "delete_file",
            "Supprime définitivement le fichier du dépôt",
            Category::Destructive,
        ),
        ("list_files", "列出目录中的所有文件", Category::Read),
        (
            "get_user",
            "Obtiene los datos del usuario por su identificador único",
            Category::Read,
        ),
        (
            "run_script",
            "Führt ein Skript auf dem Server aus und gibt die Ausgabe zurück",
            Category::Execute,
        ),
        ("create_page", "ページを作成します", Category::Write),
    ];
    for (name, description, expected) in cases {
        let result = verdict(&ToolDef::new(name).with_description(description));
        assert_eq!(result.category, expected, "{name}: {result:?}");
        assert!(
            mentions(&result, "does not look like English"),
            "{name}: {result:?}"
        );
    }
    // A foreign description must not outvote an English name.
    let result = verdict(&ToolDef::new("frobnicate").with_description("Löscht alle Daten"));
    assert_eq!(result.category, Category::Other);
}

#[test]
fn read_only_hint_on_a_delete_stays_destructive_with_lower_confidence() {
    let plain = ToolDef::new("delete_x").with_description("Delete an x");
    let hinted = plain
        .clone()
        .with_annotations(json!({"readOnlyHint": true}));
    let plain = verdict(&plain);
    let hinted = verdict(&hinted);
    assert_eq!(hinted.category, Category::Destructive);
    assert!(hinted.confidence < plain.confidence);
    assert!(mentions(
        &hinted,
        "conflict: annotation readOnlyHint=true (untrusted hint)"
    ));
}

#[test]
fn destructive_hint_on_a_get_stays_read_with_lower_confidence() {
    let plain = ToolDef::new("get_x").with_description("Get an x");
    let hinted = plain
        .clone()
        .with_annotations(json!({"destructiveHint": true}));
    let plain = verdict(&plain);
    let hinted = verdict(&hinted);
    assert_eq!(hinted.category, Category::Read);
    assert!(hinted.confidence < plain.confidence);
    assert!(mentions(
        &hinted,
        "conflict: annotation destructiveHint=true (untrusted hint)"
    ));
}

#[test]
fn agreeing_hints_raise_confidence() {
    let plain = ToolDef::new("get_x");
    let hinted = plain
        .clone()
        .with_annotations(json!({"readOnlyHint": true}));
    let hinted_result = verdict(&hinted);
    assert!(hinted_result.confidence > verdict(&plain).confidence);
    assert!(mentions(
        &hinted_result,
        "annotation readOnlyHint=true (untrusted hint)"
    ));
    assert!(!mentions(&hinted_result, "conflict"));

    let delete = ToolDef::new("delete_x");
    let hinted = delete
        .clone()
        .with_annotations(json!({"destructiveHint": true}));
    assert!(verdict(&hinted).confidence > verdict(&delete).confidence);
}

#[test]
fn hints_alone_shift_an_otherwise_silent_tool() {
    let silent = ToolDef::new("frobnicate");
    let read_only = silent
        .clone()
        .with_annotations(json!({"readOnlyHint": true}));
    let destructive = silent
        .clone()
        .with_annotations(json!({"destructiveHint": true}));
    assert_eq!(verdict(&silent).category, Category::Other);
    assert_eq!(verdict(&read_only).category, Category::Read);
    assert_eq!(verdict(&destructive).category, Category::Destructive);
}

#[test]
fn negative_hints_lower_confidence_but_do_not_override_the_name() {
    let delete = ToolDef::new("delete_x").with_description("Delete an x");
    let denied = delete
        .clone()
        .with_annotations(json!({"destructiveHint": false}));
    let denied_result = verdict(&denied);
    assert_eq!(denied_result.category, Category::Destructive);
    assert!(denied_result.confidence < verdict(&delete).confidence);
    assert!(mentions(
        &denied_result,
        "conflict: annotation destructiveHint=false"
    ));

    let get = ToolDef::new("get_x").with_description("Get an x");
    let not_read_only = get.clone().with_annotations(json!({"readOnlyHint": false}));
    let result = verdict(&not_read_only);
    assert_eq!(result.category, Category::Read);
    assert!(result.confidence < verdict(&get).confidence);
}

#[test]
fn idempotent_and_closed_world_hints_are_evidence() {
    let tool = ToolDef::new("create_refund").with_annotations(json!({
        "idempotentHint": true,
        "openWorldHint": false
    }));
    let result = verdict(&tool);
    assert_eq!(result.category, Category::Financial);
    assert!(result.confidence < verdict(&ToolDef::new("create_refund")).confidence);
    assert!(mentions(&result, "idempotentHint=true (untrusted hint)"));
    assert!(mentions(&result, "openWorldHint=false (untrusted hint)"));
}

#[test]
fn non_boolean_hints_are_ignored() {
    let tool = ToolDef::new("get_x").with_annotations(json!({"readOnlyHint": "yes"}));
    assert!(!mentions(&verdict(&tool), "readOnlyHint"));
}

#[test]
fn multi_action_descriptions_take_the_most_harmful_action() {
    assert_eq!(
        category_of(
            "manage_k8s_resource",
            "Read/create/update/delete Kubernetes resources"
        ),
        Category::Destructive
    );
    assert_eq!(
        category_of("keys", "List and create keys in the vault"),
        Category::Write
    );
}

#[test]
fn preamble_and_irreversibility_phrases_are_read() {
    let result = verdict(
        &ToolDef::new("tidy")
            .with_description("Use this tool to remove stale entries. This cannot be undone."),
    );
    assert_eq!(result.category, Category::Destructive);
    assert!(mentions(&result, "irreversible"));
}

#[test]
fn siblings_that_run_shell_commands_mark_a_bare_run_tool() {
    let tools = vec![
        ToolDef::new("run"),
        ToolDef::new("run_command"),
        ToolDef::new("read_terminal_output"),
        ToolDef::new("list_shell_sessions"),
    ];
    let results = classify_all(&tools, Some("devbox"));
    assert_eq!(results[0].category, Category::Execute);
    assert!(
        mentions(&results[0], "run shell commands"),
        "{:?}",
        results[0]
    );
    let alone = verdict(&ToolDef::new("run"));
    assert!(results[0].confidence > alone.confidence);
}

#[test]
fn payment_siblings_make_subscriptions_money() {
    let tools = vec![
        ToolDef::new("cancel_subscription"),
        ToolDef::new("create_refund"),
        ToolDef::new("list_invoices"),
    ];
    let results = classify_all(&tools, Some("billing-provider"));
    assert_eq!(results[0].category, Category::Financial, "{:?}", results[0]);
    assert!(mentions(&results[0], "is read as money"));
    // On a code host, a notification subscription is just a setting.
    let tools = vec![
        ToolDef::new("cancel_subscription"),
        ToolDef::new("list_issues"),
    ];
    assert_eq!(
        classify_all(&tools, Some("code-host"))[0].category,
        Category::Write
    );
}

#[test]
fn classify_all_matches_classify_with_explicit_context() {
    let tools = vec![
        ToolDef::new("cancel_subscription"),
        ToolDef::new("create_refund"),
        ToolDef::new("list_invoices"),
    ];
    let together = classify_all(&tools, Some("shop"));
    for (index, tool) in tools.iter().enumerate() {
        let siblings = tools
            .iter()
            .enumerate()
            .filter(|(other, _)| *other != index)
            .map(|(_, sibling)| sibling.name.clone())
            .collect();
        let alone = classify(tool, &Context::new(Some("shop"), siblings));
        assert_eq!(alone, together[index]);
    }
}

#[test]
fn every_evidence_item_is_plain_text() {
    let tool = ToolDef::new("delete_x")
        .with_title("Delete X")
        .with_description("Permanently deletes x.")
        .with_input_schema(schema(json!({"force": {"type": "boolean"}})))
        .with_annotations(json!({"readOnlyHint": true, "destructiveHint": true}));
    let result = verdict(&tool);
    assert_eq!(result.category, Category::Destructive);
    assert!(result.evidence.len() >= 4);
    for item in &result.evidence {
        assert!(!item.is_empty() && !item.contains('{'), "{item}");
    }
    assert!(mentions(&result, "title verb \"delete\""));
}
