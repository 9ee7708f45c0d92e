//! The two verdict vocabularies: what a tool does ([`Category`]) and how much
//! harm a wrong call can do ([`Risk`]).
//!
//! Both are closed enums with stable spellings ("Read", "Critical", ...)
//! because policies, reports and JSON output all quote them verbatim.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::error::ClassifyError;

/// What a tool does to the world when it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Category {
    /// Retrieves data without side effects (including reading financial data).
    Read,
    /// Creates or changes data in a way that can be undone.
    Write,
    /// Runs code, commands, queries or workflows.
    Execute,
    /// Deletes data or overwrites it irreversibly.
    Destructive,
    /// Moves money: payments, refunds, transfers, purchases.
    Financial,
    /// Session plumbing (login, connect, switch tab) or nothing recognisable.
    Other,
}

impl Category {
    /// Every category, in declaration order.
    pub const ALL: [Category; 6] = [
        Category::Read,
        Category::Write,
        Category::Execute,
        Category::Destructive,
        Category::Financial,
        Category::Other,
    ];

    /// The risk a starter policy should assume for this category.
    pub fn risk(self) -> Risk {
        match self {
            Category::Read | Category::Other => Risk::Low,
            Category::Write => Risk::Medium,
            Category::Execute => Risk::High,
            Category::Destructive | Category::Financial => Risk::Critical,
        }
    }

    /// The stable spelling used in reports, JSON and policies.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Read => "Read",
            Category::Write => "Write",
            Category::Execute => "Execute",
            Category::Destructive => "Destructive",
            Category::Financial => "Financial",
            Category::Other => "Other",
        }
    }

    /// Position in [`Category::ALL`], used to index per-category score tables.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// Rank used to break score ties: when the evidence is balanced, a
    /// gateway is safer assuming the more harmful reading.
    pub(crate) fn severity(self) -> u8 {
        match self {
            Category::Other => 0,
            Category::Read => 1,
            Category::Write => 2,
            Category::Execute => 3,
            Category::Financial => 4,
            Category::Destructive => 5,
        }
    }
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Category {
    type Err = ClassifyError;

    /// Accepts the stable spelling in any letter case ("read", "READ").
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Category::ALL
            .into_iter()
            .find(|category| category.as_str().eq_ignore_ascii_case(text.trim()))
            .ok_or_else(|| ClassifyError::UnknownCategory(text.to_string()))
    }
}

/// How much harm a wrongly allowed call can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Risk {
    /// Reads or plumbing.
    Low,
    /// Reversible changes.
    Medium,
    /// Running code or workflows.
    High,
    /// Irreversible loss or money movement.
    Critical,
}

impl Risk {
    /// The stable spelling used in reports and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "Low",
            Risk::Medium => "Medium",
            Risk::High => "High",
            Risk::Critical => "Critical",
        }
    }
}

impl fmt::Display for Risk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        for category in Category::ALL {
            let text = category.to_string();
            assert_eq!(text.parse::<Category>().unwrap(), category);
            assert_eq!(text.to_lowercase().parse::<Category>().unwrap(), category);
        }
    }

    #[test]
    fn unknown_category_is_an_error_naming_the_input() {
        let error = "Dangerous".parse::<Category>().unwrap_err();
        assert!(error.to_string().contains("Dangerous"));
    }

    #[test]
    fn serialises_as_plain_names() {
        assert_eq!(
            serde_json::to_string(&Category::Financial).unwrap(),
            "\"Financial\""
        );
        assert_eq!(
            serde_json::to_string(&Risk::Critical).unwrap(),
            "\"Critical\""
        );
    }

    #[test]
    fn risk_follows_category() {
        assert_eq!(Category::Read.risk(), Risk::Low);
        assert_eq!(Category::Other.risk(), Risk::Low);
        assert_eq!(Category::Write.risk(), Risk::Medium);
        assert_eq!(Category::Execute.risk(), Risk::High);
        assert_eq!(Category::Destructive.risk(), Risk::Critical);
        assert_eq!(Category::Financial.risk(), Risk::Critical);
    }
}
