//! Route handlers, one file per resource. Each handler parses, calls one service function and
//! renders the answer; none holds business rules.

pub mod account;
pub mod events;
pub mod files;
pub mod keys;
pub mod models;
pub mod ops;
pub mod requests;
pub mod submit;
pub mod webhooks;
