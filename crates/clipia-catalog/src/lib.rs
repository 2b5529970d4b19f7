//! The model catalog as data: which models exist, what they cost, what input they take, and the
//! validation of a job's `input` against them (SPEC §4 Models/Submit/Estimate, §6, §12).
//!
//! The catalog is a JSON file. The one the server ships, [`BUILTIN_CATALOG_JSON`]
//! (`crates/clipia-catalog/models.json`), is embedded in the binary; an operator replaces it with
//! `--models FILE`, whose text the caller reads and hands to [`Catalog::from_json`]. This crate
//! does no I/O.
//!
//! # File format (version 1)
//!
//! ```json
//! {
//!   "version": 1,
//!   "models": [
//!     {
//!       "slug": "clipia-landscape",          // [a-z0-9][a-z0-9._-]*, unique, at most 64 chars
//!       "type": "image",                     // "image" | "video"
//!       "name": "Clipia Landscape (built-in)",
//!       "description": "…",
//!       "capabilities": ["text-to-image"],   // e.g. text-to-image, image-to-image, text-to-video
//!       "pricing": {"credits": 2, "billing_unit": "image", "unit_size": 1},
//!       "backend": {"kind": "builtin", "engine": "landscape"},
//!       "parameters": [ {"name": "prompt", "type": "string", "required": true, "maxLength": 5000} ],
//!       "example_input": {"prompt": "a sunset over mountains, cinematic"},
//!       "sandbox": "image"                   // optional; which sample test keys get, default = type
//!     }
//!   ]
//! }
//! ```
//! (JSON has no comments; the ones above are for the reader.) Unknown fields are rejected, so
//! a typo in an operator's file fails loudly at start-up instead of being silently ignored.
//!
//! * `pricing`: a job costs `credits × ceil(units / unit_size)` where units are the number of
//!   images (`num_images`, default 1) for `"image"`, the `duration` in seconds for `"second"`
//!   (such a model must have a `duration` parameter), and 1 for `"request"`.
//! * `backend`: `{"kind":"builtin","engine":"<name>"}` (a CPU engine compiled into the server),
//!   `{"kind":"worker"}` (external workers pull the jobs), or
//!   `{"kind":"upstream","provider":"clipia"|"fal"|"openai","model":"<provider's model id>"}`.
//!   Whether a backend is available right now is the server's business, not the catalog's.
//! * `parameters`: Clipia's form-friendly shape, in display order. Each is
//!   `{name, type, required, default, label, hint, options, min, max, step, minLength, maxLength}`
//!   with only `name` and `type` mandatory. `type` is `"string"`, `"integer"`, `"number"`,
//!   `"boolean"`, `"image_url"` (one http(s) URL) or `"image_urls"` (a list of them, where
//!   `min`/`max` bound the item count). `options` is the list of allowed values (string, integer
//!   and number parameters). `min`/`max` bound numbers, `minLength`/`maxLength` bound strings
//!   (in characters). `step` is a hint for sliders and is not enforced. Each model's JSON Schema
//!   (draft 2020-12) is generated from its parameters at load; it is never written by hand, so
//!   the form description and the validator cannot disagree.
//! * `example_input` must pass the model's own validation without warnings.
//!
//! Input keys a model does not know are accepted and reported as warnings
//! (`unsupported_parameter` when another model of the catalog takes that key, else
//! `unknown_parameter`), as Clipia does.

mod catalog;
mod dimensions;
mod input;
mod model;
mod schema;

pub use catalog::{
    Catalog, CatalogError, BUILTIN_CATALOG_JSON, CATALOG_FORMAT_VERSION, SLUG_MAX_CHARS,
};
pub use dimensions::{image_dimensions, RATIO_TERM_MAX};
pub use input::{CheckedInput, InputError, Warning, INPUT_MAX_BYTES, INPUT_MAX_KEYS};
pub use model::{Backend, BillingUnit, Model, ModelKind, ParamType, Parameter, Pricing};
pub use schema::{IMAGE_URL_MAX_CHARS, JSON_SCHEMA_DIALECT};
