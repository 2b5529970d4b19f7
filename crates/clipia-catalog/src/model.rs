//! The catalog's types — a model, its pricing, its backend and its parameters — and the two
//! things a model computes by itself: its Clipia `input_schema` and the price of a job.

use std::sync::Arc;

use serde_json::{json, Map, Number, Value};

use crate::input::CheckedInput;

/// What a model produces, and which sandbox sample a test key gets (SPEC §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    Image,
    Video,
}

impl ModelKind {
    pub fn as_str(&self) -> &'static str {
        match self {
            ModelKind::Image => "image",
            ModelKind::Video => "video",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ModelKind> {
        match text {
            "image" => Some(ModelKind::Image),
            "video" => Some(ModelKind::Video),
            _ => None,
        }
    }
}

/// What one priced unit of a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BillingUnit {
    Image,
    Second,
    Request,
}

impl BillingUnit {
    pub fn as_str(&self) -> &'static str {
        match self {
            BillingUnit::Image => "image",
            BillingUnit::Second => "second",
            BillingUnit::Request => "request",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<BillingUnit> {
        match text {
            "image" => Some(BillingUnit::Image),
            "second" => Some(BillingUnit::Second),
            "request" => Some(BillingUnit::Request),
            _ => None,
        }
    }
}

/// `credits` per `unit_size` units of `billing_unit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pricing {
    pub credits: u64,
    pub billing_unit: BillingUnit,
    /// At least 1 (checked at load).
    pub unit_size: u64,
}

/// Who runs a model's jobs (SPEC §12).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A CPU engine compiled into the server, by name (e.g. `landscape`, `mosaic`).
    Builtin { engine: String },
    /// External workers pull the jobs over HTTP.
    Worker,
    /// A hosted provider's API (`clipia`, `fal`, `openai`) and that provider's model id.
    Upstream { provider: String, model: String },
}

impl Backend {
    /// `builtin` | `worker` | `upstream`, as in the file.
    pub fn kind_str(&self) -> &'static str {
        match self {
            Backend::Builtin { .. } => "builtin",
            Backend::Worker => "worker",
            Backend::Upstream { .. } => "upstream",
        }
    }

    /// The backend as the catalog file writes it.
    pub fn to_json(&self) -> Value {
        match self {
            Backend::Builtin { engine } => json!({"kind": "builtin", "engine": engine}),
            Backend::Worker => json!({"kind": "worker"}),
            Backend::Upstream { provider, model } => {
                json!({"kind": "upstream", "provider": provider, "model": model})
            }
        }
    }
}

/// The value type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamType {
    String,
    Integer,
    Number,
    Boolean,
    /// One http(s) URL string.
    ImageUrl,
    /// A list of http(s) URL strings; `min`/`max` bound the item count.
    ImageUrls,
}

impl ParamType {
    pub fn as_str(&self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Integer => "integer",
            ParamType::Number => "number",
            ParamType::Boolean => "boolean",
            ParamType::ImageUrl => "image_url",
            ParamType::ImageUrls => "image_urls",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<ParamType> {
        match text {
            "string" => Some(ParamType::String),
            "integer" => Some(ParamType::Integer),
            "number" => Some(ParamType::Number),
            "boolean" => Some(ParamType::Boolean),
            "image_url" => Some(ParamType::ImageUrl),
            "image_urls" => Some(ParamType::ImageUrls),
            _ => None,
        }
    }
}

/// One input parameter, in Clipia's form-friendly shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub kind: ParamType,
    pub required: bool,
    pub default: Option<Value>,
    pub label: Option<String>,
    pub hint: Option<String>,
    /// The allowed values, when the parameter is an enum.
    pub options: Option<Vec<Value>>,
    /// Lower bound of a number, or of the item count of `image_urls`.
    pub min: Option<Number>,
    /// Upper bound of a number, or of the item count of `image_urls`.
    pub max: Option<Number>,
    /// A slider hint; not enforced.
    pub step: Option<Number>,
    /// In characters.
    pub min_length: Option<u64>,
    /// In characters.
    pub max_length: Option<u64>,
}

impl Parameter {
    /// `{name, type, required, default, label, hint, options, min, max, step, minLength,
    /// maxLength}` with absent fields omitted.
    pub fn to_json(&self) -> Value {
        fn option_json(value: &Value) -> Value {
            let label = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            json!({"value": value, "label": label})
        }
        let mut out = Map::new();
        out.insert("name".into(), json!(self.name));
        out.insert("type".into(), json!(self.kind.as_str()));
        out.insert("required".into(), json!(self.required));
        let optional: [(&str, Option<Value>); 9] = [
            ("default", self.default.clone()),
            ("label", self.label.clone().map(Value::String)),
            ("hint", self.hint.clone().map(Value::String)),
            // Clipia's form format lists options as objects a form can show directly.
            ("options", self.options.as_ref().map(|opts| opts.iter().map(option_json).collect())),
            ("min", self.min.clone().map(Value::Number)),
            ("max", self.max.clone().map(Value::Number)),
            ("step", self.step.clone().map(Value::Number)),
            ("minLength", self.min_length.map(Value::from)),
            ("maxLength", self.max_length.map(Value::from)),
        ];
        for (key, value) in optional {
            if let Some(value) = value {
                out.insert(key.into(), value);
            }
        }
        Value::Object(out)
    }
}

/// One catalog model. Built only by [`crate::Catalog`], which checks it and compiles its
/// validator; changing the public fields afterwards does not recompile the validator.
#[derive(Debug, Clone)]
pub struct Model {
    pub slug: String,
    pub kind: ModelKind,
    pub name: String,
    pub description: String,
    pub capabilities: Vec<String>,
    pub pricing: Pricing,
    pub backend: Backend,
    pub parameters: Vec<Parameter>,
    pub example_input: Value,
    pub sandbox: ModelKind,
    pub(crate) json_schema: Value,
    // Shared so that cloning a catalog does not recompile every schema.
    pub(crate) validator: Arc<jsonschema::Validator>,
}

impl Model {
    /// Clipia's form-friendly description: `{"parameters": [...]}`, absent fields omitted.
    pub fn input_schema(&self) -> Value {
        let parameters: Vec<Value> = self.parameters.iter().map(Parameter::to_json).collect();
        json!({ "parameters": parameters })
    }

    /// The JSON Schema (draft 2020-12) the input is validated with, generated from
    /// `parameters` at load.
    pub fn json_schema(&self) -> &Value {
        &self.json_schema
    }

    /// The parameter called `name`, if the model has one.
    pub fn parameter(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name)
    }

    /// Credits for a checked input: `credits × ceil(units / unit_size)`. Saturates instead of
    /// overflowing and never panics, whatever the input holds.
    pub fn price(&self, input: &CheckedInput) -> u64 {
        let units = match self.pricing.billing_unit {
            BillingUnit::Image => unit_count(input.input.get("num_images")),
            BillingUnit::Second => unit_count(input.input.get("duration")),
            BillingUnit::Request => 1,
        };
        let blocks = units.div_ceil(self.pricing.unit_size.max(1));
        self.pricing.credits.saturating_mul(blocks)
    }

    /// The model object of `GET /v1/models` (SPEC §4): `id`, `slug`, `object`, `type`, `name`,
    /// `description`, `capabilities`, `pricing` (with `available`), `input_schema`, and the
    /// extensions `json_schema`, `example_input`, `unavailable_reason` (only when unavailable).
    pub fn to_api_json(&self, available: bool, unavailable_reason: Option<&str>) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.slug));
        out.insert("slug".into(), json!(self.slug));
        out.insert("object".into(), json!("model"));
        out.insert("type".into(), json!(self.kind.as_str()));
        out.insert("name".into(), json!(self.name));
        out.insert("description".into(), json!(self.description));
        out.insert("capabilities".into(), json!(self.capabilities));
        out.insert(
            "pricing".into(),
            json!({
                "credits": self.pricing.credits,
                "billing_unit": self.pricing.billing_unit.as_str(),
                "unit_size": self.pricing.unit_size,
                "available": available,
            }),
        );
        out.insert("input_schema".into(), self.input_schema());
        out.insert("json_schema".into(), self.json_schema.clone());
        out.insert("example_input".into(), self.example_input.clone());
        if !available {
            let reason = unavailable_reason.unwrap_or("The model's backend is not available.");
            out.insert("unavailable_reason".into(), json!(reason));
        }
        Value::Object(out)
    }
}

/// How many units a count-like value stands for: absent means 1 (the parameter's default
/// would have been applied if the model had one); fractions round up; zero or negative counts
/// are 0 units (validation keeps them out); a non-number counts as 1 so that a job is never
/// free by accident.
fn unit_count(value: Option<&Value>) -> u64 {
    let Some(value) = value else { return 1 };
    if let Some(n) = value.as_u64() {
        return n;
    }
    match value.as_f64() {
        Some(f) if f.is_finite() && f > 0.0 => {
            // `as` saturates on overflow, which is what we want here.
            f.ceil() as u64
        }
        Some(_) => 0,
        None => 1,
    }
}
