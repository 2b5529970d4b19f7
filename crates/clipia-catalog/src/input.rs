//! Checking a job's `input` against a model: size bounds, JSON Schema validation with
//! messages that name the field and the limit, defaults, and warnings for unknown keys.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::model::{Model, ParamType};
use crate::schema::{explain, kind_of};

/// Most keys an input object may have. Every shipped model takes fewer than ten; this only
/// stops abuse of the warnings list and of stored job rows.
pub const INPUT_MAX_KEYS: usize = 64;

/// Largest input, serialized as compact JSON, in bytes. Prompts top out at a few KB and image
/// inputs are URLs, so 64 KiB leaves ample room while bounding what every job row stores.
pub const INPUT_MAX_BYTES: usize = 64 * 1024;

/// A near-miss parameter name (at most this many single-character edits away) is suggested in
/// the warning: `did you mean "num_images"?`.
const SUGGESTION_MAX_EDITS: usize = 2;

/// An input that passed validation.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedInput {
    /// The model's parameters first, in catalog order, given or defaulted; then unknown keys as
    /// given, in the order given.
    pub input: Map<String, Value>,
    pub warnings: Vec<Warning>,
}

/// A key the model does not take. Accepted, reported, otherwise ignored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// `unknown_parameter` | `unsupported_parameter`.
    pub code: &'static str,
    pub parameter: String,
    pub message: String,
}

/// Input that does not fit the model (a 422 `model_input_invalid`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InputError {
    /// `input.<field>`, or `input` when the whole object is at fault.
    pub param: String,
    pub message: String,
}

impl InputError {
    fn whole(message: String) -> InputError {
        InputError {
            param: "input".to_string(),
            message,
        }
    }
}

/// Validates `input` for `model`. `other_parameters` holds every parameter name of the catalog,
/// to tell an unsupported key (some model takes it) from an unknown one.
pub(crate) fn check(
    model: &Model,
    input: &Value,
    other_parameters: &BTreeSet<String>,
) -> Result<CheckedInput, InputError> {
    let Value::Object(given) = input else {
        return Err(InputError::whole(format!(
            "input must be a JSON object (got {})",
            kind_of(input)
        )));
    };
    if given.len() > INPUT_MAX_KEYS {
        return Err(InputError::whole(format!(
            "input must have at most {INPUT_MAX_KEYS} keys (got {})",
            given.len()
        )));
    }
    let size = serialized_len(input);
    if size > INPUT_MAX_BYTES {
        return Err(InputError::whole(format!(
            "input must be at most {INPUT_MAX_BYTES} bytes as JSON (got {size})"
        )));
    }

    if let Err(error) = model.validator.validate(input) {
        let violation = explain(&error);
        let param = match &violation.field {
            Some(field) => format!("input.{field}"),
            None => "input".to_string(),
        };
        return Err(InputError {
            param,
            message: violation.message("input"),
        });
    }

    let mut out = Map::new();
    for p in &model.parameters {
        let value = match given.get(&p.name) {
            Some(v) => Some(normalize(p.kind, v)),
            None => p.default.clone(),
        };
        if let Some(value) = value {
            out.insert(p.name.clone(), value);
        }
    }
    let mut warnings = Vec::new();
    for (key, value) in given {
        if model.parameter(key).is_some() {
            continue;
        }
        out.insert(key.clone(), value.clone());
        warnings.push(warning_for(model, key, other_parameters));
    }
    Ok(CheckedInput {
        input: out,
        warnings,
    })
}

/// JSON Schema counts `5.0` as an integer; hand the backends `5`, which is what they expect.
fn normalize(kind: ParamType, value: &Value) -> Value {
    if kind == ParamType::Integer && !value.is_i64() && !value.is_u64() {
        if let Some(f) = value.as_f64() {
            // Validation proved it integral; the bounds checked keep it in range of i64 for
            // every sane schema, and `as` saturates otherwise.
            if f >= 0.0 {
                return Value::from(f as u64);
            }
            return Value::from(f as i64);
        }
    }
    value.clone()
}

fn warning_for(model: &Model, key: &str, other_parameters: &BTreeSet<String>) -> Warning {
    let shown = Value::String(key.to_string()).to_string();
    if other_parameters.contains(key) {
        return Warning {
            code: "unsupported_parameter",
            parameter: key.to_string(),
            message: format!(
                "{shown} is not supported by {} (other models take it); it was ignored.",
                model.slug
            ),
        };
    }
    let suggestion = model
        .parameters
        .iter()
        .map(|p| (edit_distance(key, &p.name), &p.name))
        .filter(|(d, _)| *d <= SUGGESTION_MAX_EDITS)
        .min_by_key(|(d, _)| *d)
        .map(|(_, name)| format!(" Did you mean \"{name}\"?"))
        .unwrap_or_default();
    Warning {
        code: "unknown_parameter",
        parameter: key.to_string(),
        message: format!(
            "{shown} is not a parameter of {}; it was ignored.{suggestion}",
            model.slug
        ),
    }
}

/// Levenshtein distance over characters; keys are short, so the quadratic cost is nothing.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

/// Compact-JSON length without building the string.
fn serialized_len(value: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 = self.0.saturating_add(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut counter = Counter(0);
    // Serializing a `Value` into a sink that never fails cannot fail.
    let _ = serde_json::to_writer(&mut counter, value);
    counter.0
}
