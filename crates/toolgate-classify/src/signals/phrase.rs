//! Reading a verb together with its object. Shared by the name, title and
//! description so that "create_refund" and "Creates a refund" are judged by
//! the same rules:
//!
//! - moving-money verbs (pay, refund) are Financial on their own;
//! - any changing verb on money ("create refund", "process payment") is
//!   Financial, but reading money ("list charges") stays Read;
//! - plumbing verbs on session parts ("close tab", "new page") are Other;
//! - "take"/"capture" read a readout ("take screenshot");
//! - a vague verb ("generate", "manage") says nothing without money;
//! - with no verb at all, the noun speaks: a shell runs things, a status
//!   is read.

use crate::category::Category;
use crate::lexicon::{Action, Thing, Verb};

use super::Domain;

/// Why a phrase was read the way it was; decides the evidence wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Why {
    Verb,
    VerbOnCode,
    VerbOnReadout,
    VerbOnMoney,
    ReadOfMoney,
    Plumbing,
    ThingOnly,
}

/// One interpretation of a verb (and maybe object) as a category.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reading<'w> {
    pub category: Category,
    verb: Option<&'w str>,
    object: Option<&'w str>,
    why: Why,
}

impl Reading<'_> {
    /// Plain-English evidence, `source` being "name", "title" or "description".
    pub(crate) fn describe(&self, source: &str) -> String {
        let verb = self.verb.unwrap_or_default();
        let object = self.object.unwrap_or_default();
        let category = self.category;
        match self.why {
            Why::Verb => format!("{source} verb \"{verb}\" suggests {category}"),
            Why::VerbOnCode => {
                format!("{source} verb \"{verb}\" on code \"{object}\" suggests {category}")
            }
            Why::VerbOnReadout => {
                format!("{source} verb \"{verb}\" on \"{object}\" suggests {category}")
            }
            Why::VerbOnMoney => {
                format!("{source} verb \"{verb}\" on money object \"{object}\" suggests Financial")
            }
            Why::ReadOfMoney => format!(
                "{source} verb \"{verb}\" only reads \"{object}\"; reading financial data is Read"
            ),
            Why::Plumbing if self.object.is_some() => {
                format!("{source} verb \"{verb}\" on \"{object}\" is session plumbing, so Other")
            }
            Why::Plumbing => format!("{source} verb \"{verb}\" is session plumbing, so Other"),
            Why::ThingOnly => format!("{source} word \"{object}\" suggests {category}"),
        }
    }

    /// True when the reading rests on a verb rather than a lone noun.
    pub(crate) fn has_verb(&self) -> bool {
        self.why != Why::ThingOnly
    }
}

/// Interprets `verb` (if any) applied to `things`, the meaningful nouns
/// around it. Returns `None` when neither says anything.
pub(crate) fn interpret<'w>(
    verb: Option<(&'w str, Verb)>,
    things: &[(&'w str, Thing)],
    domain: Domain<'w>,
) -> Option<Reading<'w>> {
    let find = |wanted: &dyn Fn(Thing) -> bool| {
        things
            .iter()
            .find(|(_, thing)| wanted(*thing))
            .map(|(word, _)| *word)
    };
    let money =
        find(&|thing| thing == Thing::Money || (thing == Thing::MaybeMoney && domain.payments))
            .or(domain.money_parameter);
    let code = find(&|thing| matches!(thing, Thing::Runnable | Thing::CodeText));
    let session_part = find(&|thing| thing == Thing::SessionPart);
    let readout = find(&|thing| thing == Thing::Readout);

    let Some((verb_word, meaning)) = verb else {
        return thing_only(things);
    };
    let reading = |category, why, object| {
        Some(Reading {
            category,
            verb: Some(verb_word),
            object,
            why,
        })
    };
    match meaning.action {
        Action::Pay => reading(Category::Financial, Why::Verb, None),
        Action::Session => reading(Category::Other, Why::Plumbing, None),
        _ if meaning.plumbing && session_part.is_some() => {
            reading(Category::Other, Why::Plumbing, session_part)
        }
        Action::Read if money.is_some() => reading(Category::Read, Why::ReadOfMoney, money),
        Action::Read => reading(Category::Read, Why::Verb, None),
        Action::Destroy => reading(Category::Destructive, Why::Verb, None),
        Action::Write | Action::Interact | Action::Execute | Action::Capture | Action::Vague
            if money.is_some() =>
        {
            reading(Category::Financial, Why::VerbOnMoney, money)
        }
        Action::Write | Action::Interact => reading(Category::Write, Why::Verb, None),
        Action::Execute if code.is_some() => reading(Category::Execute, Why::VerbOnCode, code),
        Action::Execute => reading(Category::Execute, Why::Verb, None),
        Action::Capture if readout.is_some() => {
            reading(Category::Read, Why::VerbOnReadout, readout)
        }
        Action::Capture | Action::Vague => None,
    }
}

/// What the nouns alone say: things that run by themselves are Execute,
/// things only ever looked at are Read. Program text such as "sql" says
/// nothing alone: a tool named after a language may only manage databases.
fn thing_only<'w>(things: &[(&'w str, Thing)]) -> Option<Reading<'w>> {
    let lone = |wanted: Thing, category| {
        things
            .iter()
            .find(|(_, thing)| *thing == wanted)
            .map(|(word, _)| Reading {
                category,
                verb: None,
                object: Some(*word),
                why: Why::ThingOnly,
            })
    };
    lone(Thing::Runnable, Category::Execute).or_else(|| lone(Thing::Readout, Category::Read))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lexicon::{thing_meaning_any_number, verb_meaning};

    fn read(verb: &str, nouns: &[&'static str], payments: bool) -> Option<Category> {
        let things: Vec<(&str, Thing)> = nouns
            .iter()
            .filter_map(|noun| thing_meaning_any_number(noun).map(|thing| (*noun, thing)))
            .collect();
        let meaning = verb_meaning(verb).map(|meaning| (verb, meaning));
        interpret(
            meaning,
            &things,
            Domain {
                payments,
                money_parameter: None,
            },
        )
        .map(|reading| reading.category)
    }

    #[test]
    fn money_changes_writes_but_not_reads() {
        assert_eq!(
            read("create", &["refund"], false),
            Some(Category::Financial)
        );
        assert_eq!(
            read("process", &["payment"], false),
            Some(Category::Financial)
        );
        assert_eq!(read("list", &["charges"], false), Some(Category::Read));
        assert_eq!(read("pay", &["order"], false), Some(Category::Financial));
    }

    #[test]
    fn maybe_money_needs_a_payments_server() {
        assert_eq!(
            read("cancel", &["subscription"], false),
            Some(Category::Write)
        );
        assert_eq!(
            read("cancel", &["subscription"], true),
            Some(Category::Financial)
        );
    }

    #[test]
    fn plumbing_verbs_depend_on_their_object() {
        assert_eq!(read("close", &["tab"], false), Some(Category::Other));
        assert_eq!(read("close", &["issue"], false), Some(Category::Write));
        assert_eq!(read("start", &["session"], false), Some(Category::Other));
        assert_eq!(
            read("start", &["container"], false),
            Some(Category::Execute)
        );
    }

    #[test]
    fn vague_verbs_need_a_telling_object() {
        assert_eq!(read("take", &["screenshot"], false), Some(Category::Read));
        assert_eq!(
            read("capture", &["payment"], false),
            Some(Category::Financial)
        );
        assert_eq!(read("generate", &["diagram"], false), None);
        assert_eq!(read("generate", &["script"], false), None);
        assert_eq!(read("manage", &["history"], false), None);
    }
}
