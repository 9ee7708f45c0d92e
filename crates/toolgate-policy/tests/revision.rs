//! The revision names what a policy means: comments and layout leave it alone, any change to
//! a rule makes a new one.
#![allow(clippy::unwrap_used)]

fn revision(text: &str) -> String {
    toolgate_policy::compile(text).unwrap().revision
}

const POLICY: &str = r#"version: "1"
tools:
  create_refund:
    rules:
      - name: small refunds
        conditions:
          - {path: args.amount, op: lte, value: 500}
      - name: refund rate
        rate_limit: 10/hour
"#;

#[test]
fn comments_and_layout_keep_the_revision() {
    let commented = format!("# refunds are reviewed weekly\n{POLICY}\n\n# end\n");
    assert_eq!(revision(POLICY), revision(&commented));
    let reflowed = POLICY.replace(
        "          - {path: args.amount, op: lte, value: 500}",
        "          - path: args.amount\n            op: lte\n            value: 500",
    );
    assert_eq!(revision(POLICY), revision(&reflowed));
}

#[test]
fn any_change_of_meaning_makes_a_new_revision() {
    for changed in [
        POLICY.replace("value: 500", "value: 501"),
        POLICY.replace("10/hour", "11/hour"),
        POLICY.replace("small refunds", "small refund"),
        POLICY.replace("op: lte", "op: lt"),
        format!("{POLICY}hide: [delete_everything]\n"),
    ] {
        assert_ne!(revision(POLICY), revision(&changed), "{changed}");
    }
    assert_eq!(revision(POLICY).len(), 16);
}
