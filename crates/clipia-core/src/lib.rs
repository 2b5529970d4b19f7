//! Clipia's domain: identifiers, API keys and scopes, job states, credits and the ledger rules, webhook signing.
//!
//! Architecture invariant: this crate does no I/O. It knows nothing of HTTP, JSON wire shapes or
//! databases; every other crate builds on the types defined here.

pub mod ids;
pub mod job;
pub mod keys;
pub mod ledger;
pub mod limits;
pub mod webhook;

pub use ids::{AccountId, KeyId, RequestId};
pub use job::{JobError, Status};
pub use keys::{ApiKey, KeyHash, Mode, Scope, Scopes};
pub use ledger::{Credits, EntryKind, Settlement};
