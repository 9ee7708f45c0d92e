//! The entry points: run every signal extractor over a tool, in a fixed
//! order, and turn the scoreboard into a [`Classification`].
//!
//! The order matters only where later signals read earlier scores
//! (parameters ask whether a verb already suggested running code or
//! changing data); it is fixed, so results are deterministic.

use serde::Serialize;

use crate::category::{Category, Risk};
use crate::scoreboard::{Scoreboard, Source};
use crate::signals::annotations::{self, Hints};
use crate::signals::name::{self, name_words, server_words};
use crate::signals::siblings::{self, Neighbourhood, ServerProfile};
use crate::signals::{description, parameters, Domain};
use crate::tool::{Context, ToolDef};

/// The verdict for one tool.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Classification {
    /// What the tool does.
    pub category: Category,
    /// The risk implied by the category.
    pub risk: Risk,
    /// How clearly the evidence supports `category`, from 0.0 to 1.0:
    /// lowered when the description is missing or signals disagree.
    pub confidence: f32,
    /// Plain-English reasons, the decisive ones first.
    pub evidence: Vec<String>,
}

/// Classifies one tool.
///
/// ```
/// use toolgate_classify::{classify, Category, Context, ToolDef};
///
/// let tool = ToolDef::new("delete_repository").with_description("Deletes a repository.");
/// let verdict = classify(&tool, &Context::default());
/// assert_eq!(verdict.category, Category::Destructive);
/// assert_eq!(verdict.evidence[0], "name verb \"delete\" suggests Destructive");
/// ```
pub fn classify(tool: &ToolDef, ctx: &Context) -> Classification {
    let server_words = server_words(ctx.server_name.as_deref());
    let siblings = ctx
        .sibling_names
        .iter()
        .filter(|sibling| **sibling != tool.name)
        .map(String::as_str);
    let profile = ServerProfile::new(&server_words, siblings);
    classify_in(tool, &server_words, profile.neighbourhood(None))
}

/// Classifies every tool of one server; each tool's siblings are the others.
/// Results are in input order.
pub fn classify_all(tools: &[ToolDef], server_name: Option<&str>) -> Vec<Classification> {
    let server_words = server_words(server_name);
    let profile = ServerProfile::new(&server_words, tools.iter().map(|tool| tool.name.as_str()));
    tools
        .iter()
        .enumerate()
        .map(|(index, tool)| classify_in(tool, &server_words, profile.neighbourhood(Some(index))))
        .collect()
}

fn classify_in(
    tool: &ToolDef,
    server_words: &[String],
    neighbourhood: Neighbourhood<'_>,
) -> Classification {
    let domain = Domain {
        money_parameter: parameters::money_parameter(tool.input_schema.as_ref()),
        ..neighbourhood.domain()
    };
    let mut board = Scoreboard::new();

    let words = name_words(&tool.name, server_words);
    let name_category = name::add_signals(&words, Source::Name, &mut board, domain);
    if let Some(title) = tool.title.as_deref() {
        let title_words = name_words(title, server_words);
        name::add_signals(&title_words, Source::Title, &mut board, domain);
    }
    description::add_signals(tool.description.as_deref(), &mut board, domain);
    parameters::add_signals(tool.input_schema.as_ref(), &mut board);
    let hints = Hints::from_annotations(tool.annotations.as_ref());
    annotations::add_signals(hints, &mut board);
    siblings::add_signals(neighbourhood, &words, name_category, &mut board);

    let leader = board.leader();
    annotations::add_conflicts(hints, leader.unwrap_or(Category::Other), &mut board);
    board.into_classification(leader)
}
