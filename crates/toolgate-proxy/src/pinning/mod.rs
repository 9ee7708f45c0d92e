//! Tool definition pins (`docs/INTEGRITY.md`): what a pin covers (`definition`), how a
//! listing departs from the pins (`drift`, shown with `json_diff`), pins committed as a lock
//! file (`lock`), and the name a single server's pins go under (`server_name`). The gateway's
//! use of them at run time is `pipeline/pins.rs`.

pub mod definition;
pub mod drift;
pub mod json_diff;
pub mod lock;
pub mod server_name;

pub use definition::{instructions_entry, seen_tool, SeenTool};
pub use drift::{compare, Drift, DriftKind};
pub use lock::LockFile;
