//! Weighing the evidence: signals add weight to categories, the heaviest
//! category wins, and confidence says how clearly it won.
//!
//! Each source of evidence (name, title, description lead, description body,
//! parameters, annotations, sibling tools) counts at most once per category:
//! within a source the strongest signal for a category is kept, so a
//! description saying "Search and retrieve" is not twice as sure as one
//! saying "Search". Sources then add up, so independent sources agreeing
//! raise the score.

use crate::category::Category;
use crate::classify::Classification;

/// Where a signal came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    Name,
    Title,
    DescriptionLead,
    DescriptionBody,
    Parameters,
    Annotations,
    Siblings,
}

const SOURCE_COUNT: usize = 7;
const CATEGORY_COUNT: usize = Category::ALL.len();

impl Source {
    fn index(self) -> usize {
        self as usize
    }
}

/// Below this total weight no category is explained well enough and the
/// tool is reported as Other: one weak hint (a word in the body of the
/// description, a lone annotation penalty) must not decide the category.
const MIN_DECISIVE_SCORE: f32 = 1.0;

/// The score at which evidence counts as complete: a name verb and a
/// description that agree reach it.
const FULL_STRENGTH_SCORE: f32 = 5.0;

/// Confidence reported when nothing explains the tool and it defaults to Other.
const DEFAULT_OTHER_CONFIDENCE: f32 = 0.3;

/// Confidence bounds: never certain, never zero (a verdict is still given).
const MIN_CONFIDENCE: f32 = 0.05;
const MAX_CONFIDENCE: f32 = 0.98;

struct Item {
    category: Category,
    weight: f32,
    text: String,
}

/// Accumulates signals for one tool.
pub(crate) struct Scoreboard {
    best: [[f32; CATEGORY_COUNT]; SOURCE_COUNT],
    penalty: [f32; CATEGORY_COUNT],
    items: Vec<Item>,
    notes: Vec<String>,
    confidence_factor: f32,
}

impl Scoreboard {
    pub(crate) fn new() -> Self {
        Scoreboard {
            best: [[0.0; CATEGORY_COUNT]; SOURCE_COUNT],
            penalty: [0.0; CATEGORY_COUNT],
            items: Vec::with_capacity(8),
            notes: Vec::new(),
            confidence_factor: 1.0,
        }
    }

    /// Evidence for `category` from `source`, explained by `text`.
    pub(crate) fn support(
        &mut self,
        source: Source,
        category: Category,
        weight: f32,
        text: String,
    ) {
        let slot = &mut self.best[source.index()][category.index()];
        *slot = slot.max(weight);
        self.items.push(Item {
            category,
            weight,
            text,
        });
    }

    /// Evidence against `category`, explained by `text`.
    pub(crate) fn oppose(&mut self, category: Category, weight: f32, text: String) {
        self.penalty[category.index()] += weight;
        self.items.push(Item {
            category,
            weight: -weight,
            text,
        });
    }

    /// A remark for the evidence list that favours no category and multiplies
    /// confidence by `factor` (1.0 for a plain explanation).
    pub(crate) fn remark(&mut self, text: String, factor: f32) {
        self.notes.push(text);
        self.confidence_factor *= factor;
    }

    /// Total weight for `category` so far.
    pub(crate) fn score(&self, category: Category) -> f32 {
        let index = category.index();
        let support: f32 = self.best.iter().map(|per_source| per_source[index]).sum();
        (support - self.penalty[index]).max(0.0)
    }

    /// The category the evidence favours, or `None` when nothing is decisive.
    /// Ties go to the more harmful category.
    pub(crate) fn leader(&self) -> Option<Category> {
        let (category, score) = Category::ALL
            .into_iter()
            .map(|category| (category, self.score(category)))
            .max_by(|(a, a_score), (b, b_score)| {
                a_score
                    .total_cmp(b_score)
                    .then(a.severity().cmp(&b.severity()))
            })?;
        (score >= MIN_DECISIVE_SCORE).then_some(category)
    }

    /// Final verdict: `leader` (from [`Scoreboard::leader`]) or Other by default.
    pub(crate) fn into_classification(self, leader: Option<Category>) -> Classification {
        let category = leader.unwrap_or(Category::Other);
        let confidence = match leader {
            Some(category) => self.margin_confidence(category),
            None => DEFAULT_OTHER_CONFIDENCE,
        } * self.confidence_factor;
        let mut evidence = Vec::with_capacity(self.items.len() + self.notes.len() + 1);
        if leader.is_none() {
            evidence.push(
                "no name, description or schema signal explains this tool, so Other".to_string(),
            );
        }
        let (mut supporting, mut rest): (Vec<Item>, Vec<Item>) = self
            .items
            .into_iter()
            .partition(|item| leader == Some(item.category) && item.weight > 0.0);
        supporting.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        rest.sort_by(|a, b| b.weight.abs().total_cmp(&a.weight.abs()));
        evidence.extend(supporting.into_iter().map(|item| item.text));
        evidence.extend(self.notes);
        evidence.extend(rest.into_iter().map(|item| item.text));
        Classification {
            category,
            risk: category.risk(),
            confidence: round_to_hundredths(confidence.clamp(MIN_CONFIDENCE, MAX_CONFIDENCE)),
            evidence,
        }
    }

    /// How much evidence there is (`strength`) times how much of it points
    /// at the winner (`share`): strong, unanimous evidence approaches 1.
    fn margin_confidence(&self, winner: Category) -> f32 {
        let winner_score = self.score(winner);
        let total: f32 = Category::ALL.into_iter().map(|c| self.score(c)).sum();
        let share = if total > 0.0 {
            winner_score / total
        } else {
            0.0
        };
        let strength = (winner_score / FULL_STRENGTH_SCORE).min(1.0);
        0.1 + 0.85 * strength * share
    }
}

fn round_to_hundredths(value: f32) -> f32 {
    (value * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strongest_signal_per_source_counts_once() {
        let mut board = Scoreboard::new();
        board.support(Source::DescriptionLead, Category::Read, 2.0, "a".into());
        board.support(Source::DescriptionLead, Category::Read, 1.5, "b".into());
        board.support(Source::Name, Category::Read, 3.0, "c".into());
        assert_eq!(board.score(Category::Read), 5.0);
    }

    #[test]
    fn ties_go_to_the_more_harmful_category() {
        let mut board = Scoreboard::new();
        board.support(Source::Name, Category::Read, 3.0, "read".into());
        board.support(
            Source::DescriptionLead,
            Category::Destructive,
            3.0,
            "delete".into(),
        );
        assert_eq!(board.leader(), Some(Category::Destructive));
    }

    #[test]
    fn weak_evidence_defaults_to_other() {
        let mut board = Scoreboard::new();
        board.support(
            Source::DescriptionBody,
            Category::Execute,
            0.4,
            "mentions run".into(),
        );
        assert_eq!(board.leader(), None);
        let verdict = board.into_classification(None);
        assert_eq!(verdict.category, Category::Other);
        assert!(verdict.evidence[0].contains("no name"));
    }

    #[test]
    fn penalties_never_make_scores_negative() {
        let mut board = Scoreboard::new();
        board.oppose(Category::Destructive, 1.0, "hint".into());
        assert_eq!(board.score(Category::Destructive), 0.0);
    }

    #[test]
    fn disagreement_lowers_confidence() {
        let mut unanimous = Scoreboard::new();
        unanimous.support(Source::Name, Category::Write, 3.0, "w".into());
        let mut split = Scoreboard::new();
        split.support(Source::Name, Category::Write, 3.0, "w".into());
        split.support(Source::Annotations, Category::Read, 1.5, "r".into());
        let unanimous = unanimous.into_classification(Some(Category::Write));
        let split = split.into_classification(Some(Category::Write));
        assert!(split.confidence < unanimous.confidence);
    }
}
