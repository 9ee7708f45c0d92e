//! Agreement with Intercept's labels on 967 real MCP tools from 53 servers.
//!
//! Intercept's labels are a reference point, not ground truth: some are
//! wrong (`list_charges` labelled Financial only reads), and 234 of the 967
//! tools are labelled Other although most have a clear verb (`git_commit`,
//! `brave_web_search`, `d1_database_delete`). toolgate classifies those by
//! what they do, so overall agreement is bounded by Intercept's use of
//! Other; agreement on the tools Intercept did put in a definite category
//! is the sharper measure. Both are asserted as floors below the measured
//! values, so a regression fails the test. Deliberate disagreements are
//! listed in docs/CLASSIFICATION.md.
//!
//! Run with `--nocapture` to see the numbers, and set
//! `TOOLGATE_LIST_DISAGREEMENTS=1` to print every disagreement with
//! toolgate's main reason (tab-separated).

#![allow(clippy::unwrap_used)]

mod support;

use support::scaffolds::{self, Scaffold};
use toolgate_classify::{classify_all, Category, Classification, ToolDef};

/// Floor for agreement over all tools (measured: 77.0%).
const REQUIRED_OVERALL_AGREEMENT: f64 = 0.75;
/// Floor for agreement over tools Intercept did not label Other (measured: 94.4%).
const REQUIRED_DECIDED_AGREEMENT: f64 = 0.90;

/// Share of `results` (restricted by `include`) where toolgate agrees.
fn agreement(
    results: &[(&Scaffold, Classification)],
    include: impl Fn(&Scaffold) -> bool,
) -> (usize, usize) {
    let considered: Vec<_> = results
        .iter()
        .filter(|(scaffold, _)| include(scaffold))
        .collect();
    let agreeing = considered
        .iter()
        .filter(|(scaffold, verdict)| scaffold.label == verdict.category)
        .count();
    (agreeing, considered.len())
}

fn percent((agreeing, total): (usize, usize)) -> f64 {
    100.0 * agreeing as f64 / total as f64
}

fn classify_corpus(scaffolds: &[Scaffold]) -> Vec<(&Scaffold, Classification)> {
    let mut results = Vec::with_capacity(scaffolds.len());
    for (server, members) in scaffolds::by_server(scaffolds) {
        let tools: Vec<ToolDef> = members.iter().map(|member| member.tool.clone()).collect();
        let verdicts = classify_all(&tools, Some(server));
        results.extend(members.into_iter().zip(verdicts));
    }
    results
}

fn print_matrix(results: &[(&Scaffold, Classification)]) {
    let mut matrix = [[0usize; 6]; 6];
    let position = |category: Category| Category::ALL.iter().position(|c| *c == category).unwrap();
    for (scaffold, verdict) in results {
        matrix[position(scaffold.label)][position(verdict.category)] += 1;
    }
    println!("rows: Intercept label; columns: toolgate");
    print!("{:<12}", "");
    for category in Category::ALL {
        print!("{:>12}", category.as_str());
    }
    println!("{:>8}", "total");
    for (row, category) in Category::ALL.iter().enumerate() {
        print!("{:<12}", category.as_str());
        for count in matrix[row] {
            print!("{count:>12}");
        }
        println!("{:>8}", matrix[row].iter().sum::<usize>());
    }
}

#[test]
fn agrees_with_intercept_on_most_scaffolds() {
    let scaffolds = match scaffolds::load() {
        Ok(Some(scaffolds)) => scaffolds,
        Ok(None) => {
            println!(
                "skipped: {} does not exist (the shared corpus is not checked out next to the repository)",
                scaffolds::corpus_path().display()
            );
            return;
        }
        Err(problem) => panic!("cannot read the scaffold corpus: {problem}"),
    };
    let results = classify_corpus(&scaffolds);
    let overall = agreement(&results, |_| true);
    let decided = agreement(&results, |scaffold| scaffold.label != Category::Other);
    println!(
        "agreement with Intercept: {}/{} = {:.1}%",
        overall.0,
        overall.1,
        percent(overall)
    );
    println!(
        "agreement where Intercept chose a category other than Other: {}/{} = {:.1}%",
        decided.0,
        decided.1,
        percent(decided)
    );
    print_matrix(&results);
    if std::env::var_os("TOOLGATE_LIST_DISAGREEMENTS").is_some() {
        for (scaffold, verdict) in results.iter().filter(|(s, v)| s.label != v.category) {
            println!(
                "{}\t{}\t{}\t{}\t{}",
                scaffold.policy_file,
                scaffold.tool.name,
                scaffold.label,
                verdict.category,
                verdict.evidence.first().map_or("", String::as_str)
            );
        }
    }
    assert!(
        percent(overall) >= REQUIRED_OVERALL_AGREEMENT * 100.0,
        "overall agreement {:.1}% is below {:.0}%",
        percent(overall),
        REQUIRED_OVERALL_AGREEMENT * 100.0
    );
    assert!(
        percent(decided) >= REQUIRED_DECIDED_AGREEMENT * 100.0,
        "agreement on decided labels {:.1}% is below {:.0}%",
        percent(decided),
        REQUIRED_DECIDED_AGREEMENT * 100.0
    );
}
