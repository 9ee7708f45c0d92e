//! Signals from the neighbourhood: the server's name and the other tools it
//! offers. A lone word is ambiguous, but a server is usually about one
//! thing: "subscription" means billing next to `create_refund`, and a tool
//! called `run` runs shell commands next to `run_command` and `read_terminal`.
//!
//! A server's tools are tallied once per theme ([`ServerProfile`]), so
//! each member's view of its siblings is derived in constant time and
//! classifying a whole server stays linear in its number of tools.

use crate::category::Category;
use crate::lexicon::{thing_meaning_any_number, Thing};
use crate::scoreboard::{Scoreboard, Source};
use crate::tokens::split_identifier;

use super::{Domain, SIBLINGS_SHELL};

/// How many sibling tools must share a theme before it colours the others.
const THEME_QUORUM: usize = 2;

/// Themes one tool name contributes to its server's profile.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Markers {
    money: bool,
    shell: bool,
}

impl Markers {
    fn of_name(name: &str) -> Markers {
        let mut markers = Markers::default();
        for word in split_identifier(name) {
            match thing_meaning_any_number(&word) {
                Some(Thing::Money) => markers.money = true,
                Some(Thing::Runnable) => markers.shell = true,
                _ => {}
            }
        }
        markers
    }
}

/// How many tools share a theme, and the first two of them (two, so that
/// an example remains when the tool being classified is the first).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    count: usize,
    first: Option<usize>,
    second: Option<usize>,
}

impl Tally {
    fn add(&mut self, index: usize) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(index);
        } else if self.second.is_none() {
            self.second = Some(index);
        }
    }

    /// The count and an example member, leaving out `excluded`.
    fn without(&self, excluded: Option<usize>) -> (usize, Option<usize>) {
        if excluded.is_some() && excluded == self.first {
            (self.count - 1, self.second)
        } else if excluded.is_some() && excluded == self.second {
            (self.count - 1, self.first)
        } else {
            (self.count, self.first)
        }
    }
}

/// Where a theme was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Clue<'a> {
    /// A word of the server's own name.
    ServerWord(&'a str),
    /// One of at least [`THEME_QUORUM`] sibling tools sharing the theme.
    Sibling(&'a str),
}

impl Clue<'_> {
    fn describe(self, theme: &str) -> String {
        match self {
            Clue::ServerWord(word) => format!("the server name word \"{word}\" {theme}"),
            Clue::Sibling(name) => format!("sibling tools (e.g. \"{name}\") {theme}"),
        }
    }
}

/// The themes of one server: its name's words and tallies over its tools.
pub(crate) struct ServerProfile<'a> {
    names: Vec<&'a str>,
    server_money: Option<&'a str>,
    server_shell: Option<&'a str>,
    money: Tally,
    shell: Tally,
}

impl<'a> ServerProfile<'a> {
    /// Profiles a server from its name's words and its tools' names.
    pub(crate) fn new(server_words: &'a [String], names: impl Iterator<Item = &'a str>) -> Self {
        let server_word = |wanted: Thing| {
            server_words
                .iter()
                .find(|word| thing_meaning_any_number(word) == Some(wanted))
                .map(String::as_str)
        };
        let mut profile = ServerProfile {
            names: names.collect(),
            server_money: server_word(Thing::Money),
            server_shell: server_word(Thing::Runnable),
            money: Tally::default(),
            shell: Tally::default(),
        };
        for (index, name) in profile.names.iter().enumerate() {
            let markers = Markers::of_name(name);
            if markers.money {
                profile.money.add(index);
            }
            if markers.shell {
                profile.shell.add(index);
            }
        }
        profile
    }

    /// The server as seen by the tool at `member` (left out of the tallies),
    /// or by an outside tool when `member` is `None`.
    pub(crate) fn neighbourhood(&self, member: Option<usize>) -> Neighbourhood<'a> {
        let clue = |server_word: Option<&'a str>, tally: &Tally| {
            server_word.map(Clue::ServerWord).or_else(|| {
                let (count, example) = tally.without(member);
                let example = example.and_then(|index| self.names.get(index).copied())?;
                (count >= THEME_QUORUM).then_some(Clue::Sibling(example))
            })
        };
        Neighbourhood {
            payments: clue(self.server_money, &self.money),
            shell: clue(self.server_shell, &self.shell),
        }
    }
}

/// The themes of a tool's server, as seen from that tool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Neighbourhood<'a> {
    payments: Option<Clue<'a>>,
    shell: Option<Clue<'a>>,
}

impl Neighbourhood<'_> {
    pub(crate) fn domain(&self) -> Domain<'static> {
        Domain {
            payments: self.payments.is_some(),
            money_parameter: None,
        }
    }
}

/// Records what the neighbourhood says about this tool. `name_words` are
/// the tool's own name words; `name_category` what the name alone said.
pub(crate) fn add_signals(
    neighbourhood: Neighbourhood<'_>,
    name_words: &[String],
    name_category: Option<Category>,
    board: &mut Scoreboard,
) {
    if let Some(clue) = neighbourhood.payments {
        let maybe_money = name_words
            .iter()
            .find(|word| thing_meaning_any_number(word) == Some(Thing::MaybeMoney));
        if let Some(word) = maybe_money {
            board.remark(
                format!(
                    "{}, so \"{word}\" is read as money",
                    clue.describe("handle money")
                ),
                1.0,
            );
        }
    }
    if let Some(clue) = neighbourhood.shell {
        if matches!(name_category, None | Some(Category::Execute)) {
            board.support(
                Source::Siblings,
                Category::Execute,
                SIBLINGS_SHELL,
                format!(
                    "{}, so this tool likely runs them too",
                    clue.describe("run shell commands")
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile<'a>(server: &'a [String], names: &'a [&'a str]) -> ServerProfile<'a> {
        ServerProfile::new(server, names.iter().copied())
    }

    #[test]
    fn a_theme_needs_a_quorum_of_siblings() {
        let one = profile(&[], &["create_refund", "list_customers"]);
        assert!(!one.neighbourhood(None).domain().payments);
        let two = profile(&[], &["create_refund", "list_invoices"]);
        assert!(two.neighbourhood(None).domain().payments);
        assert_eq!(
            two.neighbourhood(None).payments,
            Some(Clue::Sibling("create_refund"))
        );
    }

    #[test]
    fn a_member_is_not_its_own_sibling() {
        let names = ["create_refund", "list_invoices", "list_customers"];
        let server = profile(&[], &names);
        assert_eq!(server.neighbourhood(Some(0)).payments, None);
        assert_eq!(
            server.neighbourhood(Some(2)).payments,
            Some(Clue::Sibling("create_refund"))
        );
        let three = ["create_refund", "list_invoices", "list_payments"];
        let server = profile(&[], &three);
        assert_eq!(
            server.neighbourhood(Some(0)).payments,
            Some(Clue::Sibling("list_invoices"))
        );
        assert_eq!(
            server.neighbourhood(Some(1)).payments,
            Some(Clue::Sibling("create_refund"))
        );
    }

    #[test]
    fn the_server_name_alone_can_set_a_theme() {
        let server = ["shell".to_string()];
        let hood = profile(&server, &[]).neighbourhood(None);
        assert_eq!(hood.shell, Some(Clue::ServerWord("shell")));
    }
}
