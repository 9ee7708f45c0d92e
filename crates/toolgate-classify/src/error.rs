//! Errors for the only fallible parts of the crate: reading tool definitions
//! and parsing category names. Classification itself never fails.

use thiserror::Error;

/// Why a tools document or tool definition could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ClassifyError {
    /// The text is not JSON at all.
    #[error("not valid JSON: {0}")]
    InvalidJson(String),

    /// The JSON is valid but has none of the accepted shapes.
    #[error(
        "expected a tools/list result {{\"tools\": [...]}}, a JSON-RPC response \
         {{\"result\": {{\"tools\": [...]}}}} or an array of tools, found {found}"
    )]
    NotAToolsDocument {
        /// A short description of what was found instead.
        found: String,
    },

    /// The document is a JSON-RPC error response rather than a tool list.
    #[error("the JSON-RPC response carries an error instead of tools: {0}")]
    RpcError(String),

    /// One tool definition is malformed; `location` is a JSON path such as `tools[3]`.
    #[error("{location}: {problem}")]
    InvalidTool {
        /// Where the tool sits in the document, e.g. `result.tools[3]`.
        location: String,
        /// What is wrong with it, e.g. `missing "name"`.
        problem: String,
    },

    /// A category name that is not one of the six known spellings.
    #[error(
        "unknown category {0:?}: expected Read, Write, Execute, Destructive, Financial or Other"
    )]
    UnknownCategory(String),
}
