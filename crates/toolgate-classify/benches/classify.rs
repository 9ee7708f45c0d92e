//! Throughput of classification over the Intercept scaffold corpus (967
//! tools from 53 servers), or over a generated corpus of the same size when
//! the shared file is absent. Run with:
//!
//! ```text
//! cargo bench -p toolgate-classify --bench classify
//! ```
//!
//! divan reports items/s per benchmark; one item is one tool.

use std::hint::black_box;
use std::sync::LazyLock;

use divan::counter::ItemsCount;
use divan::Bencher;
use toolgate_classify::{classify, classify_all, Context, ToolDef};

// The benchmark reuses the test loader but has no use for the labels.
#[allow(dead_code)]
#[path = "../tests/support/scaffolds.rs"]
mod scaffolds;

/// Tools grouped by server, as `classify_all` wants them.
type Corpus = Vec<(String, Vec<ToolDef>)>;

const GENERATED_SERVERS: usize = 53;
const GENERATED_TOOLS: usize = 967;

static CORPUS: LazyLock<Corpus> = LazyLock::new(|| match scaffolds::load() {
    Ok(Some(scaffolds)) => scaffolds::by_server(&scaffolds)
        .into_iter()
        .map(|(server, members)| {
            let tools = members.iter().map(|member| member.tool.clone()).collect();
            (server.to_string(), tools)
        })
        .collect(),
    Ok(None) | Err(_) => {
        eprintln!(
            "{} is unavailable; benchmarking a generated corpus",
            scaffolds::corpus_path().display()
        );
        generated_corpus()
    }
});

/// A deterministic stand-in corpus: verb-object names with short descriptions.
fn generated_corpus() -> Corpus {
    const VERBS: &[&str] = &[
        "get", "list", "search", "create", "update", "delete", "run", "execute", "refund", "close",
        "manage", "generate",
    ];
    const OBJECTS: &[&str] = &[
        "issue",
        "page",
        "file",
        "payment",
        "query",
        "tab",
        "container",
        "workflow",
        "invoice",
        "comment",
        "user",
    ];
    let mut corpus: Corpus = (0..GENERATED_SERVERS)
        .map(|server| (format!("server{server}"), Vec::new()))
        .collect();
    for index in 0..GENERATED_TOOLS {
        let verb = VERBS[index % VERBS.len()];
        let object = OBJECTS[(index / VERBS.len()) % OBJECTS.len()];
        let tool = ToolDef::new(format!("{verb}_{object}_{index}")).with_description(format!(
            "{verb} a {object} in the workspace. Returns the result."
        ));
        corpus[index % GENERATED_SERVERS].1.push(tool);
    }
    corpus
}

fn tool_count(corpus: &Corpus) -> usize {
    corpus.iter().map(|(_, tools)| tools.len()).sum()
}

fn main() {
    eprintln!("benchmark corpus: {} tools", tool_count(&CORPUS));
    divan::main();
}

/// The realistic path: each server's tools classified together, so sibling
/// context is built once per server.
#[divan::bench]
fn classify_all_servers(bencher: Bencher) {
    let corpus = &*CORPUS;
    bencher
        .counter(ItemsCount::new(tool_count(corpus)))
        .bench(|| {
            for (server, tools) in corpus {
                black_box(classify_all(black_box(tools), Some(server)));
            }
        });
}

/// One tool at a time without sibling context.
#[divan::bench]
fn classify_each_without_context(bencher: Bencher) {
    let corpus = &*CORPUS;
    let context = Context::default();
    bencher
        .counter(ItemsCount::new(tool_count(corpus)))
        .bench(|| {
            for (_, tools) in corpus {
                for tool in tools {
                    black_box(classify(black_box(tool), &context));
                }
            }
        });
}
