//! Generating a model's JSON Schema from its parameters, compiling it, and turning the
//! validator's errors into plain-English messages that name the field and the limit.

use jsonschema::error::{TypeKind, ValidationErrorKind};
use jsonschema::{Draft, ValidationError, Validator};
use serde_json::{json, Map, Value};

use crate::model::{ParamType, Parameter};

/// The `$schema` of every generated schema.
pub const JSON_SCHEMA_DIALECT: &str = "https://json-schema.org/draft/2020-12/schema";

/// Longest accepted image URL, in characters. Signed object-store URLs run to a couple of
/// kilobytes; anything much longer is not a URL someone meant to send.
pub const IMAGE_URL_MAX_CHARS: u64 = 4096;

/// Values quoted in error messages are cut to this many characters, so that a 5000-character
/// prompt does not come back inside its own error.
const VALUE_PREVIEW_MAX_CHARS: usize = 60;

/// ECMA-262 pattern for an http(s) URL with no whitespace.
const HTTP_URL_PATTERN: &str = "^https?://[^\\s]+$";

/// The schema of one parameter's value.
pub(crate) fn parameter_schema(p: &Parameter) -> Value {
    let mut s = Map::new();
    if let Some(label) = &p.label {
        s.insert("title".into(), json!(label));
    }
    if let Some(hint) = &p.hint {
        s.insert("description".into(), json!(hint));
    }
    match p.kind {
        ParamType::String => {
            s.insert("type".into(), json!("string"));
        }
        ParamType::Integer => {
            s.insert("type".into(), json!("integer"));
        }
        ParamType::Number => {
            s.insert("type".into(), json!("number"));
        }
        ParamType::Boolean => {
            s.insert("type".into(), json!("boolean"));
        }
        ParamType::ImageUrl => {
            s.extend(url_schema(p.max_length));
        }
        ParamType::ImageUrls => {
            s.insert("type".into(), json!("array"));
            s.insert("items".into(), Value::Object(url_schema(None)));
        }
    }
    if let Some(options) = &p.options {
        s.insert("enum".into(), Value::Array(options.clone()));
    }
    if let Some(default) = &p.default {
        s.insert("default".into(), default.clone());
    }
    match p.kind {
        ParamType::Integer | ParamType::Number => {
            if let Some(min) = &p.min {
                s.insert("minimum".into(), Value::Number(min.clone()));
            }
            if let Some(max) = &p.max {
                s.insert("maximum".into(), Value::Number(max.clone()));
            }
        }
        ParamType::ImageUrls => {
            if let Some(min) = &p.min {
                s.insert("minItems".into(), Value::Number(min.clone()));
            }
            if let Some(max) = &p.max {
                s.insert("maxItems".into(), Value::Number(max.clone()));
            }
        }
        _ => {}
    }
    if matches!(p.kind, ParamType::String | ParamType::ImageUrl) {
        if let Some(min) = p.min_length {
            s.insert("minLength".into(), json!(min));
        }
        if let Some(max) = p.max_length {
            let max = if p.kind == ParamType::ImageUrl {
                max.min(IMAGE_URL_MAX_CHARS)
            } else {
                max
            };
            s.insert("maxLength".into(), json!(max));
        }
    }
    Value::Object(s)
}

fn url_schema(max_length: Option<u64>) -> Map<String, Value> {
    let max = max_length
        .unwrap_or(IMAGE_URL_MAX_CHARS)
        .min(IMAGE_URL_MAX_CHARS);
    let Value::Object(map) = json!({
        "type": "string",
        "format": "uri",
        "pattern": HTTP_URL_PATTERN,
        "maxLength": max,
    }) else {
        unreachable!("json! of an object literal is an object")
    };
    map
}

/// The whole input's schema. Unknown keys are allowed (`additionalProperties: true`): they
/// become warnings, not errors.
pub(crate) fn model_schema(parameters: &[Parameter]) -> Value {
    let mut properties = Map::new();
    for p in parameters {
        properties.insert(p.name.clone(), parameter_schema(p));
    }
    let required: Vec<&str> = parameters
        .iter()
        .filter(|p| p.required)
        .map(|p| p.name.as_str())
        .collect();
    json!({
        "$schema": JSON_SCHEMA_DIALECT,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": true,
    })
}

/// Compiles a generated schema. Formats are asserted (off by default in 2020-12) because
/// `format: uri` is part of what an image URL must be.
pub(crate) fn compile(schema: &Value) -> Result<Validator, String> {
    jsonschema::options()
        .with_draft(Draft::Draft202012)
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| e.to_string())
}

/// A validation error in plain words.
pub(crate) struct Violation {
    /// The top-level key at fault (`None` when the whole value is).
    pub field: Option<String>,
    /// The array index below it, for items of a list parameter.
    pub index: Option<usize>,
    /// What is wrong, to follow the field's name: "must be at most 4 (got 7)".
    pub problem: String,
}

impl Violation {
    /// `prefix.field[index] problem`, or `prefix problem` with no field.
    pub fn message(&self, prefix: &str) -> String {
        format!("{} {}", self.subject(prefix), self.problem)
    }

    /// `prefix.field[index]`.
    pub fn subject(&self, prefix: &str) -> String {
        let mut out = prefix.to_string();
        if let Some(field) = &self.field {
            out.push('.');
            out.push_str(field);
        }
        if let Some(index) = self.index {
            out.push_str(&format!("[{index}]"));
        }
        out
    }
}

/// Explains a validator error. The schemas are generated by this crate, so only the keywords
/// it writes need words of their own; anything else gets a generic but honest sentence.
pub(crate) fn explain(error: &ValidationError<'_>) -> Violation {
    let mut segments = error
        .instance_path
        .as_str()
        .split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"));
    let mut field = segments.next();
    let index = segments.next().and_then(|s| s.parse::<usize>().ok());
    let value: &Value = &error.instance;
    let got = preview(value);
    let problem = match &error.kind {
        ValidationErrorKind::Required { property } => {
            field = Some(
                property
                    .as_str()
                    .map(str::to_string)
                    .unwrap_or_else(|| property.to_string()),
            );
            "is required".to_string()
        }
        ValidationErrorKind::Type { kind } => {
            let wanted = match kind {
                TypeKind::Single(t) => with_article(&t.to_string()),
                TypeKind::Multiple(set) => {
                    let names: Vec<String> =
                        set.iter().map(|t| with_article(&t.to_string())).collect();
                    names.join(" or ")
                }
            };
            format!("must be {wanted} (got {got})")
        }
        ValidationErrorKind::Enum { options } => {
            let list = match options {
                Value::Array(items) => items
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                other => other.to_string(),
            };
            format!("must be one of {list} (got {got})")
        }
        ValidationErrorKind::Constant { expected_value } => {
            format!("must be {expected_value} (got {got})")
        }
        ValidationErrorKind::Minimum { limit } => format!("must be at least {limit} (got {got})"),
        ValidationErrorKind::Maximum { limit } => format!("must be at most {limit} (got {got})"),
        ValidationErrorKind::ExclusiveMinimum { limit } => {
            format!("must be greater than {limit} (got {got})")
        }
        ValidationErrorKind::ExclusiveMaximum { limit } => {
            format!("must be less than {limit} (got {got})")
        }
        ValidationErrorKind::MinLength { limit } => {
            let n = value.as_str().map(|s| s.chars().count()).unwrap_or(0);
            if *limit == 1 {
                "must not be empty".to_string()
            } else {
                format!("must be at least {limit} characters long (got {n})")
            }
        }
        ValidationErrorKind::MaxLength { limit } => {
            let n = value.as_str().map(|s| s.chars().count()).unwrap_or(0);
            format!("must be at most {limit} characters long (got {n})")
        }
        ValidationErrorKind::MinItems { limit } => {
            let n = value.as_array().map(Vec::len).unwrap_or(0);
            format!(
                "must have at least {limit} {} (got {n})",
                plural(*limit, "item", "items")
            )
        }
        ValidationErrorKind::MaxItems { limit } => {
            let n = value.as_array().map(Vec::len).unwrap_or(0);
            format!(
                "must have at most {limit} {} (got {n})",
                plural(*limit, "item", "items")
            )
        }
        ValidationErrorKind::Format { .. } | ValidationErrorKind::Pattern { .. } => {
            format!("must be an http(s) URL (got {got})")
        }
        ValidationErrorKind::MultipleOf { multiple_of } => {
            format!("must be a multiple of {multiple_of} (got {got})")
        }
        _ => format!("is not valid (got {got})"),
    };
    Violation {
        field,
        index,
        problem,
    }
}

fn plural(n: u64, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// "an integer", "a string", …
pub(crate) fn with_article(noun: &str) -> String {
    let vowel = noun.chars().next().is_some_and(|c| "aeiou".contains(c));
    format!("{} {noun}", if vowel { "an" } else { "a" })
}

/// A short rendering of a value for messages: scalars as JSON (cut to a preview), containers
/// by kind.
pub(crate) fn preview(value: &Value) -> String {
    match value {
        Value::Array(_) => "an array".to_string(),
        Value::Object(_) => "an object".to_string(),
        Value::String(s) if s.chars().count() > VALUE_PREVIEW_MAX_CHARS => {
            let cut: String = s.chars().take(VALUE_PREVIEW_MAX_CHARS).collect();
            format!(
                "{}…\"",
                &Value::String(cut).to_string().trim_end_matches('"')
            )
        }
        other => other.to_string(),
    }
}

/// The JSON type name of a value, with its article, for messages about the input as a whole.
pub(crate) fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
