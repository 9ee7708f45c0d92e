//! Starter policy per category, as plain data for a `scan` command to turn
//! into policy text. The numbers are conservative defaults meant to be
//! edited, not limits derived from any measurement.

use std::fmt;

use serde::Serialize;

use crate::category::Category;

/// The time window a limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Sixty seconds.
    Minute,
    /// Twenty-four hours.
    Day,
}

impl Window {
    /// The lowercase unit name, e.g. "minute".
    pub fn as_str(self) -> &'static str {
        match self {
            Window::Minute => "minute",
            Window::Day => "day",
        }
    }
}

/// An example cap on the total of a money argument over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SpendCap {
    /// The tool argument holding the amount, e.g. `amount`.
    pub argument: &'static str,
    /// The largest total allowed per window, in the argument's own units.
    pub max_total: u64,
    /// The window the total is summed over.
    pub per: Window,
}

/// What a starter policy should do with calls to tools of one category.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum RecommendedRule {
    /// Let calls through.
    Allow,
    /// Let at most `max_calls` calls through per window.
    RateLimit {
        /// Calls allowed per window.
        max_calls: u32,
        /// The window.
        per: Window,
    },
    /// Hold each call for a human's approval.
    RequireApproval {
        /// For money-moving tools, an example daily cap on the amount.
        spend_cap: Option<SpendCap>,
    },
}

/// The starter rule for `category`: reads flow freely, changes and runs are
/// rate limited, and irreversible or money-moving calls wait for a human.
pub fn recommended_rule(category: Category) -> RecommendedRule {
    let per_minute = |max_calls| RecommendedRule::RateLimit {
        max_calls,
        per: Window::Minute,
    };
    match category {
        Category::Read => RecommendedRule::Allow,
        Category::Write => per_minute(30),
        Category::Execute => per_minute(10),
        Category::Other => per_minute(60),
        Category::Destructive => RecommendedRule::RequireApproval { spend_cap: None },
        Category::Financial => RecommendedRule::RequireApproval {
            spend_cap: Some(SpendCap {
                argument: "amount",
                max_total: 500,
                per: Window::Day,
            }),
        },
    }
}

impl fmt::Display for RecommendedRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecommendedRule::Allow => f.write_str("allow"),
            RecommendedRule::RateLimit { max_calls, per } => {
                write!(f, "rate limit {max_calls}/{}", per.as_str())
            }
            RecommendedRule::RequireApproval { spend_cap: None } => f.write_str("require approval"),
            RecommendedRule::RequireApproval {
                spend_cap: Some(cap),
            } => write!(
                f,
                "require approval; cap the sum of \"{}\" at {} per {}",
                cap.argument,
                cap.max_total,
                cap.per.as_str()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn every_category_has_the_documented_rule() {
        let described: Vec<String> = Category::ALL
            .into_iter()
            .map(|category| recommended_rule(category).to_string())
            .collect();
        assert_eq!(
            described,
            [
                "allow",
                "rate limit 30/minute",
                "rate limit 10/minute",
                "require approval",
                "require approval; cap the sum of \"amount\" at 500 per day",
                "rate limit 60/minute",
            ]
        );
    }

    #[test]
    fn serialises_as_tagged_data() {
        let json = serde_json::to_value(recommended_rule(Category::Write)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"action": "rate_limit", "max_calls": 30, "per": "minute"})
        );
    }
}
