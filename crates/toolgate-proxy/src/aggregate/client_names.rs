//! The names a client of the aggregated view sees, when they are not the aggregated ones:
//! one server alone at `/mcp/<server>` (the server's own names), or `tool_names:
//! bare_when_unique` (a name that only one server uses is left bare).
//!
//! A view sits at the two edges of the client's session at the front gateway: the name a
//! request carries is turned into the aggregated name as the request enters the pipeline
//! (before any policy reads it), and listing answers are renamed as they leave it. So the
//! gateway-wide policy, its counters and the audit see `<server>__<tool>` whatever the client
//! calls the tool, and nothing past the front gateway knows the view exists.
//!
//! A request is renamed in place: only the bytes of its name change, and the result is read
//! again by the same strict reader, so the pipeline decides on exactly what it forwards.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use serde_json::Value;
use toolgate_policy::gateway_config::{aggregated_name, split_aggregated_name, NAME_SEPARATOR};

use super::merge::Listing;
use super::names::named_in;
use crate::message::{ClientMessage, ClientRequest, Method, Route, ToClient};

/// Bare names remembered per session (`bare_when_unique`): past this, new names stay
/// prefixed, so a server listing ever new tools cannot grow the map without end.
const MAX_BARE_NAMES: usize = 100_000;

/// How one client session names tools and prompts.
pub struct ClientNames {
    view: View,
    state: Mutex<ViewState>,
}

enum View {
    /// Every server, named `<server>__<name>`; with `bare` (`tool_names: bare_when_unique`,
    /// which a reload of the config may switch), a name only one server lists stays bare.
    Aggregated { bare: AtomicBool },
    /// One server alone, under its own names (`/mcp/<server>`).
    OneServer(String),
}

#[derive(Default)]
struct ViewState {
    /// The client's listings waiting for their answers, by id key.
    listings: HashMap<String, Listing>,
    /// Which servers list each bare name, as far as the listings so far tell.
    owners: HashMap<(Listing, String), Vec<String>>,
    /// Bare names the client has been shown: if another server lists one later, the client
    /// is told to list again (and sees both prefixed).
    shown_bare: HashSet<(Listing, String)>,
}

/// What a listing answer turned into: the answer, and whether the client must list again
/// because a name it was shown bare is no longer unique.
pub(crate) struct Outbound {
    pub message: ToClient,
    pub relist: Option<Listing>,
}

impl ClientNames {
    pub fn aggregated(bare_when_unique: bool) -> ClientNames {
        ClientNames::new(View::Aggregated {
            bare: AtomicBool::new(bare_when_unique),
        })
    }

    pub fn one_server(server: &str) -> ClientNames {
        ClientNames::new(View::OneServer(server.to_string()))
    }

    fn new(view: View) -> ClientNames {
        ClientNames {
            view,
            state: Mutex::new(ViewState::default()),
        }
    }

    /// Switches `bare_when_unique` on or off; true when that changes what the client sees
    /// (it must then be told to list again).
    pub fn set_bare_when_unique(&self, on: bool) -> bool {
        match &self.view {
            View::Aggregated { bare } => bare.swap(on, Ordering::Relaxed) != on,
            View::OneServer(_) => false,
        }
    }

    fn renames(&self) -> bool {
        match &self.view {
            View::Aggregated { bare } => bare.load(Ordering::Relaxed),
            View::OneServer(_) => true,
        }
    }

    /// The aggregated name of a name the client used, when it is not one already.
    fn aggregated_name_of(&self, listing: Listing, name: &str) -> Option<String> {
        match &self.view {
            View::OneServer(server) => Some(aggregated_name(server, name)),
            View::Aggregated { .. } => {
                if name.contains(NAME_SEPARATOR) {
                    return None;
                }
                let state = self.state.lock();
                match state.owners.get(&(listing, name.to_string()))?.as_slice() {
                    [only] => Some(aggregated_name(only, name)),
                    _ => None,
                }
            }
        }
    }

    /// A request as it enters the front gateway: a call, `prompts/get` or a prompt's
    /// completion under the client's name comes out under the aggregated one; a listing is
    /// remembered so its answer is renamed. Anything the strict reader refuses is left as it
    /// is, for the pipeline to refuse.
    pub(crate) fn inbound(&self, request: ClientRequest) -> ClientRequest {
        if !self.renames() {
            return request;
        }
        let listing = match &request.method {
            Method::ToolsList | Method::PromptsList => {
                let listing = match request.method {
                    Method::ToolsList => Listing::Tools,
                    _ => Listing::Prompts,
                };
                self.state
                    .lock()
                    .listings
                    .insert(request.key.clone(), listing);
                return request;
            }
            Method::ToolsCall => Listing::Tools,
            Method::PromptsGet => Listing::Prompts,
            Method::Other(method) if &**method == "completion/complete" => Listing::Prompts,
            _ => return request,
        };
        if !matches!(request.strict_params(), Some(Ok(_))) {
            return request;
        }
        let renamed = request
            .params()
            .and_then(|params| named_in(params, request.method.as_str()))
            .and_then(|part| {
                let name: String = serde_json::from_str(part.get()).ok()?;
                let aggregated = self.aggregated_name_of(listing, &name)?;
                let quoted = serde_json::to_string(&aggregated).ok()?;
                request.with_part_replaced(part.get(), &quoted)
            });
        let Some(text) = renamed else {
            return request;
        };
        match ClientMessage::read(text).map(ClientMessage::into_request) {
            Ok(Ok(renamed)) => renamed,
            // (Cannot happen: only a string in a message that read strictly changed.)
            _ => request,
        }
    }

    /// A message as it leaves the front gateway: a listing's answer is renamed into the
    /// client's names.
    pub(crate) fn outbound(&self, message: ToClient) -> Outbound {
        let unchanged = |message| Outbound {
            message,
            relist: None,
        };
        // (Prefixed names, the default, rename nothing: no answer is looked at.)
        if !self.renames() {
            return unchanged(message);
        }
        let listing = match &message.route {
            Route::Answer { id_key, .. } => self.state.lock().listings.remove(id_key),
            _ => None,
        };
        let Some(listing) = listing else {
            return unchanged(message);
        };
        let Ok(mut answer) = serde_json::from_str::<Value>(&message.text) else {
            return unchanged(message);
        };
        let Some(Value::Array(items)) =
            answer.pointer_mut(&format!("/result/{}", listing.items_key()))
        else {
            return unchanged(message);
        };
        let relist = self.learn(listing, items);
        for item in items.iter_mut() {
            let Some(name) = item.get("name").and_then(Value::as_str) else {
                continue;
            };
            if let Some(shown) = self.shown(listing, name) {
                item["name"] = Value::String(shown);
            }
        }
        let mut message = message;
        message.text = answer.to_string();
        Outbound {
            message,
            relist: relist.then_some(listing),
        }
    }

    /// Records which servers list each bare name; true when a name the client was shown
    /// bare is now listed by a second server.
    fn learn(&self, listing: Listing, items: &[Value]) -> bool {
        if !matches!(self.view, View::Aggregated { .. }) {
            return false;
        }
        let mut state = self.state.lock();
        let mut relist = false;
        for item in items {
            let Some((server, bare)) = item
                .get("name")
                .and_then(Value::as_str)
                .and_then(split_aggregated_name)
            else {
                continue;
            };
            let key = (listing, bare.to_string());
            if !state.owners.contains_key(&key) && state.owners.len() >= MAX_BARE_NAMES {
                continue;
            }
            let owners = state.owners.entry(key.clone()).or_default();
            if !owners.iter().any(|o| o == server) {
                owners.push(server.to_string());
                relist |= owners.len() > 1 && state.shown_bare.contains(&key);
            }
        }
        relist
    }

    /// The name the client is shown for an aggregated name, when it is another.
    fn shown(&self, listing: Listing, aggregated: &str) -> Option<String> {
        let (server, bare) = split_aggregated_name(aggregated)?;
        match &self.view {
            View::OneServer(only) => (only == server).then(|| bare.to_string()),
            View::Aggregated { .. } => {
                if bare.contains(NAME_SEPARATOR) {
                    return None;
                }
                let mut state = self.state.lock();
                let key = (listing, bare.to_string());
                let unique =
                    matches!(state.owners.get(&key).map(Vec::as_slice), Some([o]) if o == server);
                if !unique {
                    return None;
                }
                state.shown_bare.insert(key);
                Some(bare.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::value::RawValue;

    fn request(text: &str) -> ClientRequest {
        ClientMessage::read(text.to_string())
            .expect("reads")
            .into_request()
            .expect("a request")
    }

    fn listing_answer(id: u64, names: &[&str]) -> ToClient {
        let tools: Vec<Value> = names
            .iter()
            .map(|n| serde_json::json!({"name": n}))
            .collect();
        let text = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": {"tools": tools}});
        let id = RawValue::from_string(id.to_string()).expect("raw");
        ToClient::answer(text.to_string(), Some(&id), None)
    }

    fn shown_names(out: &Outbound) -> Vec<String> {
        let answer: Value = serde_json::from_str(&out.message.text).expect("json");
        answer["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_string())
            .collect()
    }

    #[test]
    fn one_server_renames_only_the_name_bytes() {
        let names = ClientNames::one_server("files");
        let text = r#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"arguments":{"n":1.50000000000000000001,"name":"x"},"name":"write_file"}}"#;
        let renamed = names.inbound(request(text));
        assert_eq!(
            renamed.text(),
            text.replace("\"write_file\"", "\"files__write_file\"")
        );
    }

    #[test]
    fn escaped_names_are_read_as_the_server_reads_them() {
        let names = ClientNames::one_server("files");
        let text =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"write\u005ffile"}}"#;
        let renamed = names.inbound(request(text));
        assert!(renamed.text().contains(r#""name":"files__write_file""#));
    }

    #[test]
    fn what_the_strict_reader_refuses_is_left_for_the_pipeline() {
        let names = ClientNames::one_server("files");
        let text =
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","name":"b"}}"#;
        assert_eq!(names.inbound(request(text)).text(), text);
    }

    #[test]
    fn prompt_completions_are_renamed_and_resource_ones_are_not() {
        let names = ClientNames::one_server("files");
        let prompt = r#"{"jsonrpc":"2.0","id":1,"method":"completion/complete","params":{"ref":{"type":"ref/prompt","name":"greet"},"argument":{"name":"a","value":""}}}"#;
        assert!(names
            .inbound(request(prompt))
            .text()
            .contains(r#""name":"files__greet""#));
        let resource = r#"{"jsonrpc":"2.0","id":2,"method":"completion/complete","params":{"ref":{"type":"ref/resource","uri":"file:///x"},"argument":{"name":"a","value":""}}}"#;
        assert_eq!(names.inbound(request(resource)).text(), resource);
    }

    #[test]
    fn one_server_listings_show_the_servers_own_names() {
        let names = ClientNames::one_server("files");
        names.inbound(request(r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#));
        let out = names.outbound(listing_answer(3, &["files__read", "files__a__b"]));
        assert_eq!(shown_names(&out), ["read", "a__b"]);
        // An answer to anything else passes as it is.
        let other = listing_answer(4, &["files__read"]);
        assert_eq!(names.outbound(other.clone()).message.text, other.text);
    }

    #[test]
    fn bare_when_unique_names_converge_and_calls_always_reach_the_aggregated_name() {
        let names = ClientNames::aggregated(true);
        let list = |id: u64| {
            names.inbound(request(&format!(
                r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/list"}}"#
            )));
        };
        list(1);
        let first = names.outbound(listing_answer(1, &["files__read", "files__x__y"]));
        assert_eq!(shown_names(&first), ["read", "files__x__y"]);
        assert!(first.relist.is_none());
        let call = r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"read"}}"#;
        assert!(names
            .inbound(request(call))
            .text()
            .contains(r#""name":"files__read""#));

        // A second server lists `read` on a later page: the client must list again.
        list(2);
        let second = names.outbound(listing_answer(2, &["memory__read"]));
        assert_eq!(shown_names(&second), ["memory__read"]);
        assert_eq!(second.relist, Some(Listing::Tools));
        list(3);
        let again = names.outbound(listing_answer(3, &["files__read", "memory__read"]));
        assert_eq!(shown_names(&again), ["files__read", "memory__read"]);
        // The bare name no longer names one tool: it is left as it is (and refused as an
        // unknown tool by the aggregator), never guessed.
        assert_eq!(names.inbound(request(call)).text(), call);
        let prefixed = call.replace("\"read\"", "\"memory__read\"");
        assert_eq!(names.inbound(request(&prefixed)).text(), prefixed);
    }

    #[test]
    fn prefixed_views_rename_nothing() {
        let names = ClientNames::aggregated(false);
        names.inbound(request(r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#));
        let answer = listing_answer(1, &["files__read"]);
        assert_eq!(names.outbound(answer.clone()).message.text, answer.text);
        assert!(names.set_bare_when_unique(true));
        assert!(!names.set_bare_when_unique(true));
    }
}
