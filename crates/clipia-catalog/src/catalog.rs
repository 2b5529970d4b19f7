//! Loading and checking a catalog file (the embedded one or an operator's), and looking models
//! up. Every check names the model and the field at fault, because the person reading the
//! error is an operator editing that file.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde_json::{Map, Number, Value};

use crate::input::{self, CheckedInput, InputError};
use crate::model::{Backend, BillingUnit, Model, ModelKind, ParamType, Parameter, Pricing};
use crate::schema::{self, explain, kind_of, preview};

/// The catalog the server ships (`crates/clipia-catalog/models.json`).
pub const BUILTIN_CATALOG_JSON: &str = include_str!("../models.json");

/// The `version` a catalog file must declare.
pub const CATALOG_FORMAT_VERSION: u64 = 1;

/// Longest model slug, in characters; slugs appear in URLs and job rows.
pub const SLUG_MAX_CHARS: usize = 64;

/// Longest parameter name, in characters.
const PARAM_NAME_MAX_CHARS: usize = 64;

/// Upstream providers the server has adapters for (SPEC §12). Engines are not listed: a
/// builtin engine the server lacks just makes the model unavailable, which the server reports.
const KNOWN_PROVIDERS: [&str; 3] = ["clipia", "fal", "openai"];

/// A catalog file that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("the model catalog is not valid JSON: {0}")]
    Json(String),
    #[error("the model catalog {0}")]
    Shape(String),
    #[error("model catalog, model {model:?}: {field} {message}")]
    Invalid {
        /// The slug, or `#N` (1-based position) when the entry has no usable slug.
        model: String,
        /// Dotted path inside the entry, e.g. `pricing.unit_size`, `parameters.seed.default`.
        field: String,
        message: String,
    },
    #[error(
        "model catalog, model {model:?}: the slug is listed more than once; slugs must be unique"
    )]
    DuplicateSlug { model: String },
}

/// The loaded, checked catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: Vec<Model>,
    by_slug: HashMap<String, usize>,
    // Every parameter name of every model: an unknown key found here is "unsupported".
    all_parameters: BTreeSet<String>,
}

impl Catalog {
    /// The embedded catalog. A unit test proves it loads.
    pub fn builtin() -> Catalog {
        Catalog::from_json(BUILTIN_CATALOG_JSON).expect("the embedded models.json is valid")
    }

    /// Parses and checks a catalog file's text (see the crate docs for the format).
    pub fn from_json(text: &str) -> Result<Catalog, CatalogError> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| CatalogError::Json(e.to_string()))?;
        let Value::Object(root) = root else {
            return Err(CatalogError::Shape(format!(
                "must be a JSON object with \"version\" and \"models\" (got {})",
                kind_of(&root)
            )));
        };
        for key in root.keys() {
            if key != "version" && key != "models" && key != "$comment" {
                return Err(CatalogError::Shape(format!(
                    "has an unknown top-level field {key:?}; expected \"version\" and \"models\""
                )));
            }
        }
        match root.get("version").and_then(Value::as_u64) {
            Some(CATALOG_FORMAT_VERSION) => {}
            _ => {
                return Err(CatalogError::Shape(format!(
                    "must declare \"version\": {CATALOG_FORMAT_VERSION}"
                )))
            }
        }
        let Some(Value::Array(entries)) = root.get("models") else {
            return Err(CatalogError::Shape(
                "must have a \"models\" array".to_string(),
            ));
        };
        if entries.is_empty() {
            return Err(CatalogError::Shape("lists no models".to_string()));
        }

        let mut models = Vec::with_capacity(entries.len());
        let mut by_slug = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            let model = parse_model(entry).map_err(|(field, message)| CatalogError::Invalid {
                model: entry_label(entry, i),
                field,
                message,
            })?;
            if by_slug.insert(model.slug.clone(), models.len()).is_some() {
                return Err(CatalogError::DuplicateSlug { model: model.slug });
            }
            models.push(model);
        }
        let all_parameters = models
            .iter()
            .flat_map(|m| m.parameters.iter().map(|p| p.name.clone()))
            .collect();
        let catalog = Catalog {
            models,
            by_slug,
            all_parameters,
        };

        // An example that fails, or that carries keys the model ignores, would teach users the
        // wrong thing; refuse it.
        for model in &catalog.models {
            let invalid = |message: String| CatalogError::Invalid {
                model: model.slug.clone(),
                field: "example_input".to_string(),
                message,
            };
            let checked = catalog
                .check_input(model, &model.example_input)
                .map_err(|e| invalid(format!("does not validate: {}", e.message)))?;
            if let Some(w) = checked.warnings.first() {
                return Err(invalid(format!(
                    "has a key the model does not take: {}",
                    w.message
                )));
            }
        }
        Ok(catalog)
    }

    pub fn get(&self, slug: &str) -> Option<&Model> {
        self.by_slug.get(slug).map(|&i| &self.models[i])
    }

    /// In file order.
    pub fn models(&self) -> &[Model] {
        &self.models
    }

    /// Validates `input` (a JSON object) for `model`, applies defaults and collects warnings
    /// for keys the model does not take.
    pub fn check_input(&self, model: &Model, input: &Value) -> Result<CheckedInput, InputError> {
        input::check(model, input, &self.all_parameters)
    }
}

/// What to call entry `i` in an error: its slug if it has one that is a string.
fn entry_label(entry: &Value, i: usize) -> String {
    match entry.get("slug").and_then(Value::as_str) {
        Some(slug) if !slug.is_empty() => slug.to_string(),
        _ => format!("#{}", i + 1),
    }
}

/// (field, message): the error of one entry, before the model's name is attached.
type FieldError = (String, String);

fn err<T>(field: impl Into<String>, message: impl Into<String>) -> Result<T, FieldError> {
    Err((field.into(), message.into()))
}

/// Reads fields of one JSON object, with error paths relative to the entry.
struct Fields<'a> {
    map: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    fn new(value: &'a Value, path: &str, allowed: &[&str]) -> Result<Fields<'a>, FieldError> {
        let Value::Object(map) = value else {
            return err(
                path,
                format!("must be a JSON object (got {})", kind_of(value)),
            );
        };
        let prefix = if path.is_empty() {
            String::new()
        } else {
            format!("{path}.")
        };
        for key in map.keys() {
            if !allowed.contains(&key.as_str()) {
                return err(
                    format!("{prefix}{key}"),
                    format!(
                        "is not a known field (expected one of: {})",
                        allowed.join(", ")
                    ),
                );
            }
        }
        Ok(Fields { map, prefix })
    }

    fn path(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Absent and `null` are the same: the file may spell out "no value".
    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key).filter(|v| !v.is_null())
    }

    fn required(&self, key: &str) -> Result<&'a Value, FieldError> {
        self.get(key)
            .map_or_else(|| err(self.path(key), "is required"), Ok)
    }

    fn string(&self, key: &str) -> Result<Option<String>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => err(
                self.path(key),
                format!("must be a string (got {})", kind_of(other)),
            ),
        }
    }

    fn nonempty_string(&self, key: &str) -> Result<String, FieldError> {
        match self.string(key)? {
            Some(s) if !s.trim().is_empty() => Ok(s),
            Some(_) => err(self.path(key), "must not be empty"),
            None => err(self.path(key), "is required"),
        }
    }

    fn boolean(&self, key: &str) -> Result<Option<bool>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => err(
                self.path(key),
                format!("must be true or false (got {})", preview(other)),
            ),
        }
    }

    fn number(&self, key: &str) -> Result<Option<Number>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => Ok(Some(n.clone())),
            Some(other) => err(
                self.path(key),
                format!("must be a number (got {})", preview(other)),
            ),
        }
    }

    fn count(&self, key: &str) -> Result<Option<u64>, FieldError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) => Ok(Some(n)),
                None => err(
                    self.path(key),
                    format!("must be a non-negative integer (got {})", preview(v)),
                ),
            },
        }
    }
}

const MODEL_FIELDS: [&str; 11] = [
    "slug",
    "type",
    "name",
    "description",
    "capabilities",
    "pricing",
    "backend",
    "parameters",
    "example_input",
    "sandbox",
    "$comment",
];

fn parse_model(entry: &Value) -> Result<Model, FieldError> {
    let f = Fields::new(entry, "", &MODEL_FIELDS)?;
    let slug = f.nonempty_string("slug")?;
    if !is_identifier(
        &slug,
        SLUG_MAX_CHARS,
        |c| c.is_ascii_lowercase() || c.is_ascii_digit(),
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'),
    ) {
        return err(
            "slug",
            format!(
                "must be lower-case letters, digits, '-', '_' or '.', start with a letter or digit, \
                 and be at most {SLUG_MAX_CHARS} characters (got {slug:?})"
            ),
        );
    }
    let kind = parse_kind(&f, "type")?.map_or_else(|| err("type", "is required"), Ok)?;
    let sandbox = parse_kind(&f, "sandbox")?.unwrap_or(kind);
    let name = f.nonempty_string("name")?;
    let description = f.nonempty_string("description")?;
    let capabilities = parse_capabilities(f.required("capabilities")?)?;
    let pricing = parse_pricing(f.required("pricing")?)?;
    let backend = parse_backend(f.required("backend")?)?;
    let parameters = parse_parameters(f.required("parameters")?)?;

    if pricing.billing_unit == BillingUnit::Second {
        let duration = parameters.iter().find(|p| p.name == "duration");
        if !duration.is_some_and(|p| matches!(p.kind, ParamType::Integer | ParamType::Number)) {
            return err(
                "pricing.billing_unit",
                "is \"second\", which needs an integer or number parameter named \"duration\"",
            );
        }
    }

    let example_input = match f.get("example_input") {
        Some(v @ Value::Object(_)) => v.clone(),
        Some(other) => {
            return err(
                "example_input",
                format!("must be a JSON object (got {})", kind_of(other)),
            )
        }
        None => return err("example_input", "is required"),
    };

    let json_schema = schema::model_schema(&parameters);
    let validator = schema::compile(&json_schema).map_err(|e| {
        (
            "parameters".to_string(),
            format!("do not make a valid JSON Schema: {e}"),
        )
    })?;

    Ok(Model {
        slug,
        kind,
        name,
        description,
        capabilities,
        pricing,
        backend,
        parameters,
        example_input,
        sandbox,
        json_schema,
        validator: Arc::new(validator),
    })
}

fn parse_kind(f: &Fields<'_>, key: &str) -> Result<Option<ModelKind>, FieldError> {
    match f.string(key)? {
        None => Ok(None),
        Some(s) => match ModelKind::parse(&s) {
            Some(k) => Ok(Some(k)),
            None => err(key, format!("must be \"image\" or \"video\" (got {s:?})")),
        },
    }
}

fn parse_capabilities(value: &Value) -> Result<Vec<String>, FieldError> {
    let Value::Array(items) = value else {
        return err(
            "capabilities",
            format!("must be a list of strings (got {})", kind_of(value)),
        );
    };
    if items.is_empty() {
        return err(
            "capabilities",
            "must list at least one capability, e.g. \"text-to-image\"",
        );
    }
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(s)
                if !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-') =>
            {
                out.push(s.to_string())
            }
            _ => {
                return err(
                    format!("capabilities[{i}]"),
                    format!(
                        "must be lower-case words joined by '-', e.g. \"text-to-image\" (got {})",
                        preview(item)
                    ),
                )
            }
        }
    }
    Ok(out)
}

fn parse_pricing(value: &Value) -> Result<Pricing, FieldError> {
    let f = Fields::new(value, "pricing", &["credits", "billing_unit", "unit_size"])?;
    let credits = f
        .count("credits")?
        .map_or_else(|| err("pricing.credits", "is required"), Ok)?;
    let unit = f
        .string("billing_unit")?
        .map_or_else(|| err("pricing.billing_unit", "is required"), Ok)?;
    let Some(billing_unit) = BillingUnit::parse(&unit) else {
        return err(
            "pricing.billing_unit",
            format!("must be \"image\", \"second\" or \"request\" (got {unit:?})"),
        );
    };
    let unit_size = f.count("unit_size")?.unwrap_or(1);
    if unit_size < 1 {
        return err(
            "pricing.unit_size",
            format!("must be at least 1 (got {unit_size})"),
        );
    }
    Ok(Pricing {
        credits,
        billing_unit,
        unit_size,
    })
}

fn parse_backend(value: &Value) -> Result<Backend, FieldError> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match kind {
        "builtin" => {
            let f = Fields::new(value, "backend", &["kind", "engine"])?;
            let engine = f.nonempty_string("engine")?;
            if !is_identifier(
                &engine,
                SLUG_MAX_CHARS,
                |c| c.is_ascii_lowercase(),
                |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_',
            ) {
                return err(
                    "backend.engine",
                    format!("must be an engine name like \"landscape\" (got {engine:?})"),
                );
            }
            Ok(Backend::Builtin { engine })
        }
        "worker" => {
            Fields::new(value, "backend", &["kind"])?;
            Ok(Backend::Worker)
        }
        "upstream" => {
            let f = Fields::new(value, "backend", &["kind", "provider", "model"])?;
            let provider = f.nonempty_string("provider")?;
            if !KNOWN_PROVIDERS.contains(&provider.as_str()) {
                return err(
                    "backend.provider",
                    format!(
                        "must be one of {} (got {provider:?})",
                        quoted_list(&KNOWN_PROVIDERS)
                    ),
                );
            }
            let model = f.nonempty_string("model")?;
            Ok(Backend::Upstream { provider, model })
        }
        _ => err(
            "backend.kind",
            format!(
                "must be \"builtin\", \"worker\" or \"upstream\" (got {})",
                value
                    .get("kind")
                    .map_or_else(|| "nothing".to_string(), preview)
            ),
        ),
    }
}

const PARAMETER_FIELDS: [&str; 12] = [
    "name",
    "type",
    "required",
    "default",
    "label",
    "hint",
    "options",
    "min",
    "max",
    "step",
    "minLength",
    "maxLength",
];

fn parse_parameters(value: &Value) -> Result<Vec<Parameter>, FieldError> {
    let Value::Array(items) = value else {
        return err(
            "parameters",
            format!("must be a list (got {})", kind_of(value)),
        );
    };
    let mut out: Vec<Parameter> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let p = parse_parameter(item, i)?;
        if out.iter().any(|q| q.name == p.name) {
            return err(format!("parameters.{}", p.name), "is listed more than once");
        }
        out.push(p);
    }
    Ok(out)
}

fn parse_parameter(value: &Value, index: usize) -> Result<Parameter, FieldError> {
    // Until the name is known the parameter is called by its position.
    let f = Fields::new(value, &format!("parameters[{index}]"), &PARAMETER_FIELDS)?;
    let name = f.nonempty_string("name")?;
    if !is_identifier(
        &name,
        PARAM_NAME_MAX_CHARS,
        |c| c.is_ascii_lowercase() || c == '_',
        |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_',
    ) {
        return err(
            f.path("name"),
            format!("must be snake_case, at most {PARAM_NAME_MAX_CHARS} characters (got {name:?})"),
        );
    }
    let map = value
        .as_object()
        .expect("Fields::new checked it is an object");
    let f = Fields {
        map,
        prefix: format!("parameters.{name}."),
    };
    let type_name = f
        .string("type")?
        .map_or_else(|| err(f.path("type"), "is required"), Ok)?;
    let Some(kind) = ParamType::parse(&type_name) else {
        return err(
            f.path("type"),
            format!(
                "must be one of \"string\", \"integer\", \"number\", \"boolean\", \"image_url\", \
                 \"image_urls\" (got {type_name:?})"
            ),
        );
    };
    let p = Parameter {
        required: f.boolean("required")?.unwrap_or(false),
        default: f.get("default").cloned(),
        label: f.string("label")?,
        hint: f.string("hint")?,
        options: match f.get("options") {
            None => None,
            Some(Value::Array(items)) => Some(items.clone()),
            Some(other) => {
                return err(
                    f.path("options"),
                    format!("must be a list (got {})", kind_of(other)),
                )
            }
        },
        min: f.number("min")?,
        max: f.number("max")?,
        step: f.number("step")?,
        min_length: f.count("minLength")?,
        max_length: f.count("maxLength")?,
        name,
        kind,
    };
    check_parameter(&p, &f)?;
    Ok(p)
}

/// Which fields make sense for which type, bounds in order, options and default that fit.
fn check_parameter(p: &Parameter, f: &Fields<'_>) -> Result<(), FieldError> {
    let numeric = matches!(p.kind, ParamType::Integer | ParamType::Number);
    let stringy = matches!(p.kind, ParamType::String | ParamType::ImageUrl);
    let not_for = |field: &str| {
        err::<()>(
            f.path(field),
            format!(
                "does not apply to a parameter of type {:?}",
                p.kind.as_str()
            ),
        )
    };
    if p.options.is_some()
        && !matches!(
            p.kind,
            ParamType::String | ParamType::Integer | ParamType::Number
        )
    {
        return not_for("options");
    }
    if (p.min.is_some() || p.max.is_some()) && !numeric && p.kind != ParamType::ImageUrls {
        return not_for(if p.min.is_some() { "min" } else { "max" });
    }
    if p.step.is_some() && !numeric {
        return not_for("step");
    }
    if (p.min_length.is_some() || p.max_length.is_some()) && !stringy {
        return not_for(if p.min_length.is_some() {
            "minLength"
        } else {
            "maxLength"
        });
    }
    if let (Some(min), Some(max)) = (&p.min, &p.max) {
        if min.as_f64() > max.as_f64() {
            return err(
                f.path("min"),
                format!("must not be greater than max ({min} > {max})"),
            );
        }
    }
    if let (Some(min), Some(max)) = (p.min_length, p.max_length) {
        if min > max {
            return err(
                f.path("minLength"),
                format!("must not be greater than maxLength ({min} > {max})"),
            );
        }
    }
    if p.kind == ParamType::Integer {
        for (field, n) in [("min", &p.min), ("max", &p.max), ("step", &p.step)] {
            if n.as_ref().is_some_and(|n| !n.is_i64() && !n.is_u64()) {
                return err(
                    f.path(field),
                    "must be a whole number for an integer parameter",
                );
            }
        }
    }
    if p.kind == ParamType::ImageUrls {
        for (field, n) in [("min", &p.min), ("max", &p.max)] {
            if n.as_ref().is_some_and(|n| n.as_u64().is_none()) {
                return err(
                    f.path(field),
                    "counts URLs here and must be a non-negative integer",
                );
            }
        }
    }
    if p.step
        .as_ref()
        .is_some_and(|s| s.as_f64().is_none_or(|s| s <= 0.0))
    {
        return err(f.path("step"), "must be greater than 0");
    }

    let own = schema::parameter_schema(&Parameter {
        options: None,
        default: None,
        ..p.clone()
    });
    let validator =
        schema::compile(&own).map_err(|e| (f.path("type"), format!("cannot be checked: {e}")))?;
    if let Some(options) = &p.options {
        if options.is_empty() {
            return err(f.path("options"), "must list at least one value");
        }
        for (i, option) in options.iter().enumerate() {
            if let Err(e) = validator.validate(option) {
                return err(format!("{}[{i}]", f.path("options")), explain(&e).problem);
            }
            if options[..i].contains(option) {
                return err(
                    format!("{}[{i}]", f.path("options")),
                    format!("repeats {}", preview(option)),
                );
            }
        }
    }
    if let Some(default) = &p.default {
        if let Err(e) = validator.validate(default) {
            return err(f.path("default"), explain(&e).problem);
        }
        if let Some(options) = &p.options {
            if !options.iter().any(|o| same_value(o, default)) {
                return err(
                    f.path("default"),
                    format!("must be one of the options (got {})", preview(default)),
                );
            }
        }
    }
    Ok(())
}

/// Equality as JSON Schema's `enum` sees it: `5` and `5.0` are the same number.
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn is_identifier(
    text: &str,
    max_chars: usize,
    first: impl Fn(char) -> bool,
    rest: impl Fn(char) -> bool,
) -> bool {
    let mut chars = text.chars();
    chars.next().is_some_and(first) && chars.all(rest) && text.chars().count() <= max_chars
}

fn quoted_list(items: &[&str]) -> String {
    items
        .iter()
        .map(|s| format!("{s:?}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalog_parses() {
        let catalog = Catalog::from_json(BUILTIN_CATALOG_JSON).unwrap();
        assert_eq!(catalog.models().len(), 4);
        assert_eq!(Catalog::builtin().models().len(), 4);
    }
}
