//! Every tool of every server, as last listed, with what the classifier made of it: the
//! console's Tools page and its tool pages.
//!
//! Filled from the listings the gateways read anyway (`pipeline/categories.rs`), so the
//! console never asks a server for anything. Bounded by [`MAX_TOOLS`] across servers: a
//! server listing a million tools fills the catalogue, and later names are left out.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::RwLock;
use toolgate_classify::{Classification, ToolDef};

/// Tools remembered across servers.
pub const MAX_TOOLS: usize = 10_000;

/// One tool as last listed.
#[derive(Debug, Clone)]
pub struct CatalogueEntry {
    pub server: String,
    pub definition: Arc<ToolDef>,
    pub classification: Arc<Classification>,
}

#[derive(Default)]
pub struct Catalogue {
    /// By server, then tool name: both in name order, as the pages show them.
    tools: RwLock<BTreeMap<String, BTreeMap<String, CatalogueEntry>>>,
}

impl Catalogue {
    /// Records one listing page's tools of `server` (empty: a gateway of one server).
    pub fn listed(&self, server: &str, definitions: &[ToolDef], results: &[Classification]) {
        let mut tools = self.tools.write();
        let mut total: usize = tools.values().map(BTreeMap::len).sum();
        for (definition, classification) in definitions.iter().zip(results) {
            let known = tools
                .get(server)
                .is_some_and(|s| s.contains_key(&definition.name));
            if !known && total >= MAX_TOOLS {
                continue;
            }
            total += usize::from(!known);
            let entry = CatalogueEntry {
                server: server.to_string(),
                definition: Arc::new(definition.clone()),
                classification: Arc::new(classification.clone()),
            };
            tools
                .entry(server.to_string())
                .or_default()
                .insert(definition.name.clone(), entry);
        }
    }

    /// Every tool, by server then name.
    pub fn all(&self) -> Vec<CatalogueEntry> {
        self.tools
            .read()
            .values()
            .flat_map(|s| s.values().cloned())
            .collect()
    }

    pub fn get(&self, server: &str, tool: &str) -> Option<CatalogueEntry> {
        self.tools.read().get(server)?.get(tool).cloned()
    }

    /// The tools of `server`, for a recommended policy that sees a tool's siblings.
    pub fn of_server(&self, server: &str) -> Vec<CatalogueEntry> {
        self.tools
            .read()
            .get(server)
            .map(|s| s.values().cloned().collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use toolgate_classify::classify_all;

    #[test]
    fn a_relisting_replaces_and_the_total_is_bounded() {
        let catalogue = Catalogue::default();
        let defs = vec![ToolDef::new("delete_repo").with_description("Deletes a repository")];
        catalogue.listed("git", &defs, &classify_all(&defs, None));
        let defs = vec![ToolDef::new("delete_repo").with_description("Lists repositories")];
        catalogue.listed("git", &defs, &classify_all(&defs, None));
        assert_eq!(catalogue.all().len(), 1);
        let entry = catalogue.get("git", "delete_repo").unwrap();
        assert_eq!(
            entry.definition.description.as_deref(),
            Some("Lists repositories")
        );
        let many: Vec<ToolDef> = (0..MAX_TOOLS + 5)
            .map(|i| ToolDef::new(format!("t{i}")))
            .collect();
        catalogue.listed("big", &many, &classify_all(&many, None));
        assert_eq!(catalogue.all().len(), MAX_TOOLS);
        // A tool already known is still updated when the catalogue is full.
        catalogue.listed("git", &defs, &classify_all(&defs, None));
        assert!(catalogue.get("git", "delete_repo").is_some());
    }
}
