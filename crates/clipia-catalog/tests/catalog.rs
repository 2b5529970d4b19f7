//! Behaviour of the shipped catalog and of the loader, through the public API only.

use clipia_catalog::{
    image_dimensions, Backend, BillingUnit, Catalog, CatalogError, InputError, ModelKind,
    ParamType, INPUT_MAX_BYTES, INPUT_MAX_KEYS,
};
use serde_json::{json, Value};

fn catalog() -> Catalog {
    Catalog::builtin()
}

fn check(slug: &str, input: Value) -> Result<clipia_catalog::CheckedInput, InputError> {
    let c = catalog();
    let model = c.get(slug).expect("model exists");
    c.check_input(model, &input)
}

fn reject(slug: &str, input: Value) -> InputError {
    check(slug, input).expect_err("input should be rejected")
}

#[test]
fn builtin_catalog_loads_in_order_with_expected_prices() {
    let c = catalog();
    let slugs: Vec<&str> = c.models().iter().map(|m| m.slug.as_str()).collect();
    assert_eq!(
        slugs,
        [
            "nano-banana-2",
            "seedance-2-fast-t2v",
            "clipia-landscape",
            "clipia-mosaic"
        ]
    );

    let nano = c.get("nano-banana-2").unwrap();
    assert_eq!(nano.kind, ModelKind::Image);
    assert_eq!(nano.pricing.credits, 12);
    assert_eq!(nano.pricing.billing_unit, BillingUnit::Image);
    assert_eq!(
        nano.backend,
        Backend::Upstream {
            provider: "clipia".into(),
            model: "nano-banana-2".into()
        }
    );
    assert_eq!(nano.capabilities, ["text-to-image", "image-to-image"]);

    let seedance = c.get("seedance-2-fast-t2v").unwrap();
    assert_eq!(seedance.kind, ModelKind::Video);
    assert_eq!(seedance.sandbox, ModelKind::Video);
    assert_eq!(seedance.pricing.billing_unit.as_str(), "second");
    assert_eq!(seedance.pricing.credits, 20);

    let landscape = c.get("clipia-landscape").unwrap();
    assert_eq!(
        landscape.backend,
        Backend::Builtin {
            engine: "landscape".into()
        }
    );
    assert_eq!(landscape.pricing.credits, 2);
    assert!(landscape.description.contains("not a neural model"));
    assert!(landscape.parameter("output_format").is_none());

    let mosaic = c.get("clipia-mosaic").unwrap();
    assert_eq!(
        mosaic.backend,
        Backend::Builtin {
            engine: "mosaic".into()
        }
    );
    assert_eq!(mosaic.pricing.credits, 1);
    assert!(mosaic.description.contains("not a neural model"));

    assert!(c.get("no-such-model").is_none());
}

#[test]
fn every_example_input_validates_without_warnings() {
    let c = catalog();
    for model in c.models() {
        let checked = c
            .check_input(model, &model.example_input)
            .unwrap_or_else(|e| panic!("{}: {}", model.slug, e));
        assert!(
            checked.warnings.is_empty(),
            "{}: {:?}",
            model.slug,
            checked.warnings
        );
        assert!(model.price(&checked) > 0, "{}", model.slug);
    }
}

#[test]
fn defaults_are_applied_in_parameter_order() {
    let checked = check("nano-banana-2", json!({"prompt": "a cat"})).unwrap();
    assert!(checked.warnings.is_empty());
    assert_eq!(
        Value::Object(checked.input),
        json!({"prompt": "a cat", "aspect_ratio": "1:1", "resolution": "1K", "num_images": 1, "output_format": "png"})
    );
    let keys: Vec<String> = check("seedance-2-fast-t2v", json!({"seed": 3, "prompt": "waves"}))
        .unwrap()
        .input
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        [
            "prompt",
            "duration",
            "aspect_ratio",
            "resolution",
            "generate_audio",
            "seed"
        ]
    );
}

#[test]
fn given_values_win_over_defaults_and_integral_floats_become_integers() {
    let checked = check(
        "nano-banana-2",
        json!({"prompt": "x", "num_images": 3.0, "aspect_ratio": "16:9"}),
    )
    .unwrap();
    assert_eq!(checked.input["num_images"], json!(3));
    assert!(checked.input["num_images"].is_u64());
    assert_eq!(checked.input["aspect_ratio"], json!("16:9"));
}

#[test]
fn too_many_images_names_the_field_and_the_limit() {
    let e = reject("nano-banana-2", json!({"prompt": "x", "num_images": 7}));
    assert_eq!(e.param, "input.num_images");
    assert_eq!(e.message, "input.num_images must be at most 4 (got 7)");
    let e = reject("clipia-landscape", json!({"prompt": "x", "num_images": 0}));
    assert_eq!(e.param, "input.num_images");
    assert_eq!(e.message, "input.num_images must be at least 1 (got 0)");
}

#[test]
fn missing_required_prompt() {
    let e = reject("clipia-mosaic", json!({"num_images": 2}));
    assert_eq!(e.param, "input.prompt");
    assert_eq!(e.message, "input.prompt is required");
}

#[test]
fn wrong_type_is_named() {
    let e = reject("nano-banana-2", json!({"prompt": "x", "num_images": "two"}));
    assert_eq!(e.param, "input.num_images");
    assert_eq!(
        e.message,
        "input.num_images must be an integer (got \"two\")"
    );
    let e = reject(
        "seedance-2-fast-t2v",
        json!({"prompt": "x", "generate_audio": "yes"}),
    );
    assert_eq!(e.param, "input.generate_audio");
    assert_eq!(
        e.message,
        "input.generate_audio must be a boolean (got \"yes\")"
    );
    let e = reject("nano-banana-2", json!({"prompt": 5}));
    assert_eq!(e.message, "input.prompt must be a string (got 5)");
    let e = reject("nano-banana-2", json!({"prompt": "x", "num_images": 1.5}));
    assert_eq!(e.message, "input.num_images must be an integer (got 1.5)");
}

#[test]
fn enum_violation_lists_the_options() {
    let e = reject(
        "nano-banana-2",
        json!({"prompt": "x", "aspect_ratio": "5:4"}),
    );
    assert_eq!(e.param, "input.aspect_ratio");
    assert_eq!(
        e.message,
        r#"input.aspect_ratio must be one of "1:1", "16:9", "9:16", "4:3", "3:4", "3:2", "2:3", "21:9" (got "5:4")"#
    );
    let e = reject("seedance-2-fast-t2v", json!({"prompt": "x", "duration": 7}));
    assert_eq!(e.param, "input.duration");
    assert_eq!(e.message, "input.duration must be one of 5, 10 (got 7)");
}

#[test]
fn string_length_limits() {
    let e = reject("nano-banana-2", json!({"prompt": ""}));
    assert_eq!(e.param, "input.prompt");
    assert_eq!(e.message, "input.prompt must not be empty");
    let long = "é".repeat(5001);
    let e = reject("nano-banana-2", json!({"prompt": long}));
    assert_eq!(e.param, "input.prompt");
    assert_eq!(
        e.message,
        "input.prompt must be at most 5000 characters long (got 5001)"
    );
    // Exactly at the limit, counted in characters rather than bytes, passes.
    check("nano-banana-2", json!({"prompt": "é".repeat(5000)})).unwrap();
}

#[test]
fn image_urls_are_checked_item_by_item_and_by_count() {
    let ok = check(
        "nano-banana-2",
        json!({"prompt": "x", "image_urls": ["https://example.com/a.png"]}),
    );
    assert!(ok.is_ok());
    let e = reject(
        "nano-banana-2",
        json!({"prompt": "x", "image_urls": ["https://example.com/a.png", "ftp://example.com/b.png"]}),
    );
    assert_eq!(e.param, "input.image_urls");
    assert_eq!(
        e.message,
        "input.image_urls[1] must be an http(s) URL (got \"ftp://example.com/b.png\")"
    );
    let e = reject(
        "nano-banana-2",
        json!({"prompt": "x", "image_urls": ["not a url"]}),
    );
    assert_eq!(e.param, "input.image_urls");
    let five: Vec<String> = (0..5)
        .map(|i| format!("https://example.com/{i}.png"))
        .collect();
    let e = reject("nano-banana-2", json!({"prompt": "x", "image_urls": five}));
    assert_eq!(e.param, "input.image_urls");
    assert_eq!(
        e.message,
        "input.image_urls must have at most 4 items (got 5)"
    );
    let e = reject(
        "nano-banana-2",
        json!({"prompt": "x", "image_urls": "https://example.com/a.png"}),
    );
    assert_eq!(
        e.message,
        "input.image_urls must be an array (got \"https://example.com/a.png\")"
    );
}

#[test]
fn input_must_be_a_bounded_object() {
    let e = reject("clipia-landscape", json!(["prompt"]));
    assert_eq!(e.param, "input");
    assert_eq!(e.message, "input must be a JSON object (got an array)");
    let e = reject("clipia-landscape", Value::Null);
    assert_eq!(e.param, "input");

    let mut many = serde_json::Map::new();
    many.insert("prompt".into(), json!("x"));
    for i in 0..INPUT_MAX_KEYS {
        many.insert(format!("extra_{i}"), json!(i));
    }
    let e = reject("clipia-landscape", Value::Object(many));
    assert_eq!(e.param, "input");
    assert_eq!(
        e.message,
        format!("input must have at most {INPUT_MAX_KEYS} keys (got 65)")
    );

    let e = reject(
        "clipia-landscape",
        json!({"prompt": "x", "blob": "a".repeat(INPUT_MAX_BYTES)}),
    );
    assert_eq!(e.param, "input");
    assert!(
        e.message.starts_with("input must be at most 65536 bytes"),
        "{}",
        e.message
    );
}

#[test]
fn long_values_are_cut_in_messages() {
    let e = reject(
        "nano-banana-2",
        json!({"prompt": "x", "aspect_ratio": "w".repeat(1000)}),
    );
    assert!(e.message.len() < 300, "{}", e.message);
    assert!(e.message.contains('…'));
}

#[test]
fn unknown_and_unsupported_keys_are_warnings() {
    let checked = check(
        "clipia-landscape",
        json!({"prompt": "x", "duration": 5, "output_format": "jpeg", "colour": "red", "num_image": 2}),
    )
    .unwrap();
    let got: Vec<(&str, &str)> = checked
        .warnings
        .iter()
        .map(|w| (w.code, w.parameter.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("unsupported_parameter", "duration"),
            ("unsupported_parameter", "output_format"),
            ("unknown_parameter", "colour"),
            ("unknown_parameter", "num_image"),
        ]
    );
    assert!(checked.warnings[0].message.contains("clipia-landscape"));
    assert!(
        checked.warnings[3]
            .message
            .contains("Did you mean \"num_images\"?"),
        "{}",
        checked.warnings[3].message
    );
    // Kept as given, after the model's own parameters.
    assert_eq!(checked.input["duration"], json!(5));
    assert_eq!(checked.input["colour"], json!("red"));
    // Unknown keys do not change the price.
    let c = catalog();
    assert_eq!(c.get("clipia-landscape").unwrap().price(&checked), 2);
    let w = serde_json::to_value(&checked.warnings[2]).unwrap();
    assert_eq!(w["code"], "unknown_parameter");
    assert_eq!(w["parameter"], "colour");
    assert!(w["message"].is_string());
}

#[test]
fn prices() {
    let c = catalog();
    let nano = c.get("nano-banana-2").unwrap();
    let three = c
        .check_input(nano, &json!({"prompt": "x", "num_images": 3}))
        .unwrap();
    assert_eq!(nano.price(&three), 36);
    let one = c.check_input(nano, &json!({"prompt": "x"})).unwrap();
    assert_eq!(nano.price(&one), 12);

    let seedance = c.get("seedance-2-fast-t2v").unwrap();
    let ten = c
        .check_input(seedance, &json!({"prompt": "x", "duration": 10}))
        .unwrap();
    assert_eq!(seedance.price(&ten), 200);
    let default = c.check_input(seedance, &json!({"prompt": "x"})).unwrap();
    assert_eq!(seedance.price(&default), 100);

    let mosaic = c.get("clipia-mosaic").unwrap();
    let four = c
        .check_input(mosaic, &json!({"prompt": "x", "num_images": 4}))
        .unwrap();
    assert_eq!(mosaic.price(&four), 4);
}

#[test]
fn unit_size_rounds_up_and_huge_prices_saturate() {
    let text = catalog_with(|m| {
        m["pricing"] = json!({"credits": 7, "billing_unit": "image", "unit_size": 2});
    });
    let c = Catalog::from_json(&text).unwrap();
    let m = c.get("test-model").unwrap();
    let three = c
        .check_input(m, &json!({"prompt": "x", "num_images": 3}))
        .unwrap();
    assert_eq!(m.price(&three), 14);

    let text = catalog_with(|m| {
        m["pricing"] = json!({"credits": u64::MAX, "billing_unit": "image", "unit_size": 1});
    });
    let c = Catalog::from_json(&text).unwrap();
    let m = c.get("test-model").unwrap();
    let four = c
        .check_input(m, &json!({"prompt": "x", "num_images": 4}))
        .unwrap();
    assert_eq!(m.price(&four), u64::MAX);
}

#[test]
fn json_schema_and_input_schema_agree() {
    let c = catalog();
    for model in c.models() {
        let form = model.input_schema();
        let form_params = form["parameters"].as_array().unwrap();
        let names: Vec<&str> = form_params
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let schema = model.json_schema();
        assert_eq!(
            schema["$schema"],
            "https://json-schema.org/draft/2020-12/schema"
        );
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["additionalProperties"], true);
        let props: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(names, props, "{}", model.slug);
        let required: Vec<&str> = form_params
            .iter()
            .filter(|p| p["required"] == true)
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let schema_required: Vec<&str> = schema["required"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(required, schema_required, "{}", model.slug);
        for p in form_params {
            // Null fields are omitted, never rendered as null.
            assert!(p.as_object().unwrap().values().all(|v| !v.is_null()), "{p}");
            let prop = &schema["properties"][p["name"].as_str().unwrap()];
            assert_eq!(prop.get("default"), p.get("default"));
            let option_values = p.get("options").map(|o| {
                Value::Array(o.as_array().unwrap().iter().map(|opt| opt["value"].clone()).collect())
            });
            assert_eq!(prop.get("enum"), option_values.as_ref());
            assert_eq!(prop.get("title"), p.get("label"));
            assert_eq!(prop.get("description"), p.get("hint"));
        }
    }
    let nano = c.get("nano-banana-2").unwrap();
    let props = &nano.json_schema()["properties"];
    assert_eq!(props["num_images"]["minimum"], 1);
    assert_eq!(props["num_images"]["maximum"], 4);
    assert_eq!(props["prompt"]["maxLength"], 5000);
    assert_eq!(props["image_urls"]["type"], "array");
    assert_eq!(props["image_urls"]["maxItems"], 4);
    assert_eq!(props["image_urls"]["items"]["format"], "uri");
    assert!(props["image_urls"]["items"]["pattern"]
        .as_str()
        .unwrap()
        .starts_with("^https?://"));
    let seed = nano.parameter("seed").unwrap();
    assert_eq!(seed.kind, ParamType::Integer);
    assert_eq!(
        nano.input_schema()["parameters"][5],
        json!({
            "name": "seed", "type": "integer", "required": false, "label": "Seed",
            "hint": "The same seed and prompt give similar results.", "min": 0, "max": 2147483647
        })
    );
}

#[test]
fn api_object_has_the_spec_fields() {
    let c = catalog();
    let m = c.get("seedance-2-fast-t2v").unwrap();
    let up = m.to_api_json(true, None);
    assert_eq!(up["id"], "seedance-2-fast-t2v");
    assert_eq!(up["slug"], "seedance-2-fast-t2v");
    assert_eq!(up["object"], "model");
    assert_eq!(up["type"], "video");
    assert_eq!(
        up["pricing"],
        json!({"credits": 20, "billing_unit": "second", "unit_size": 1, "available": true})
    );
    assert!(up.get("unavailable_reason").is_none());
    let down = m.to_api_json(false, Some("No Clipia provider key is configured."));
    assert_eq!(down["pricing"]["available"], false);
    assert_eq!(
        down["unavailable_reason"],
        "No Clipia provider key is configured."
    );
}

// ---- the loader -------------------------------------------------------------------------

/// A one-model catalog, modified by `edit`.
fn catalog_with(edit: impl FnOnce(&mut Value)) -> String {
    let mut model = json!({
        "slug": "test-model",
        "type": "image",
        "name": "Test",
        "description": "A test model.",
        "capabilities": ["text-to-image"],
        "pricing": {"credits": 3, "billing_unit": "image", "unit_size": 1},
        "backend": {"kind": "worker"},
        "parameters": [
            {"name": "prompt", "type": "string", "required": true, "minLength": 1},
            {"name": "num_images", "type": "integer", "default": 1, "min": 1, "max": 4}
        ],
        "example_input": {"prompt": "hello"}
    });
    edit(&mut model);
    json!({"version": 1, "models": [model]}).to_string()
}

fn load_error(text: &str) -> String {
    Catalog::from_json(text)
        .expect_err("catalog should be rejected")
        .to_string()
}

#[test]
fn minimal_catalog_loads_and_sandbox_defaults_to_type() {
    let c = Catalog::from_json(&catalog_with(|_| {})).unwrap();
    let m = c.get("test-model").unwrap();
    assert_eq!(m.sandbox, ModelKind::Image);
    assert_eq!(m.backend, Backend::Worker);
}

#[test]
fn duplicate_slugs_are_rejected_naming_the_model() {
    let one = serde_json::from_str::<Value>(&catalog_with(|_| {})).unwrap()["models"][0].clone();
    let text = json!({"version": 1, "models": [one.clone(), one]}).to_string();
    let e = Catalog::from_json(&text).unwrap_err();
    assert_eq!(
        e,
        CatalogError::DuplicateSlug {
            model: "test-model".into()
        }
    );
    assert!(e.to_string().contains("\"test-model\""));
}

#[test]
fn bad_defaults_are_rejected_naming_model_and_field() {
    let e = load_error(&catalog_with(|m| m["parameters"][1]["default"] = json!(9)));
    assert!(e.contains("\"test-model\""), "{e}");
    assert!(e.contains("parameters.num_images.default"), "{e}");
    assert!(e.contains("at most 4"), "{e}");

    let e = load_error(&catalog_with(|m| {
        m["parameters"][1]["default"] = json!("one")
    }));
    assert!(
        e.contains("parameters.num_images.default must be an integer"),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| {
        m["parameters"][0]["options"] = json!(["a", "b"]);
        m["parameters"][0]["default"] = json!("c");
    }));
    assert!(
        e.contains("parameters.prompt.default must be one of the options"),
        "{e}"
    );
}

#[test]
fn parameter_sanity() {
    let e = load_error(&catalog_with(|m| {
        m["parameters"][1]["min"] = json!(5);
    }));
    assert!(
        e.contains("parameters.num_images.min must not be greater than max"),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| {
        m["parameters"][1]["type"] = json!("float")
    }));
    assert!(
        e.contains("parameters.num_images.type must be one of"),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| m["parameters"][0]["max"] = json!(3)));
    assert!(e.contains("parameters.prompt.max does not apply"), "{e}");

    let e = load_error(&catalog_with(|m| {
        m["parameters"][1]["options"] = json!([1, 2, 9])
    }));
    assert!(
        e.contains("parameters.num_images.options[2] must be at most 4"),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| {
        m["parameters"][1]["name"] = json!("prompt")
    }));
    assert!(
        e.contains("parameters.prompt is listed more than once"),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| m["parameters"][1]["maximum"] = json!(3)));
    assert!(
        e.contains("parameters[1].maximum is not a known field"),
        "{e}"
    );
}

#[test]
fn model_level_checks_name_the_field() {
    let e = load_error(&catalog_with(|m| m["type"] = json!("audio")));
    assert!(
        e.contains("\"test-model\": type must be \"image\" or \"video\""),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| m["pricing"]["unit_size"] = json!(0)));
    assert!(e.contains("pricing.unit_size must be at least 1"), "{e}");

    let e = load_error(&catalog_with(|m| m["pricing"]["credits"] = json!(-1)));
    assert!(
        e.contains("pricing.credits must be a non-negative integer"),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| {
        m["pricing"]["billing_unit"] = json!("second")
    }));
    assert!(e.contains("pricing.billing_unit"), "{e}");
    assert!(e.contains("duration"), "{e}");

    let e = load_error(&catalog_with(|m| {
        m["backend"] = json!({"kind": "upstream", "provider": "acme", "model": "x"})
    }));
    assert!(e.contains("backend.provider must be one of"), "{e}");

    let e = load_error(&catalog_with(|m| {
        m["example_input"] = json!({"prompt": "x", "num_images": 5})
    }));
    assert!(
        e.contains("example_input does not validate: input.num_images must be at most 4 (got 5)"),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| {
        m["example_input"] = json!({"prompt": "x", "colour": 1})
    }));
    assert!(
        e.contains("example_input has a key the model does not take"),
        "{e}"
    );

    let e = load_error(&catalog_with(|m| m["slug"] = json!("Bad Slug")));
    assert!(e.contains("slug must be lower-case"), "{e}");

    let e = load_error(&catalog_with(|m| {
        m.as_object_mut().unwrap().remove("slug");
    }));
    assert!(e.contains("\"#1\": slug is required"), "{e}");
}

#[test]
fn file_level_checks() {
    assert!(load_error("{").contains("not valid JSON"));
    assert!(load_error("[]").contains("must be a JSON object"));
    assert!(load_error(r#"{"models": []}"#).contains("\"version\": 1"));
    assert!(load_error(r#"{"version": 1, "models": []}"#).contains("lists no models"));
    assert!(load_error(r#"{"version": 1, "models": [], "extra": 1}"#).contains("\"extra\""));
}

#[test]
fn dimensions() {
    assert_eq!(image_dimensions("1:1", "1K"), Some((1024, 1024)));
    assert_eq!(image_dimensions("16:9", "1K"), Some((1024, 576)));
    assert_eq!(image_dimensions("9:16", "2K"), Some((1152, 2048)));
    assert_eq!(image_dimensions("4:3", "512"), Some((512, 384)));
    assert_eq!(image_dimensions("3:2", "4K"), Some((4096, 2728)));
    assert_eq!(image_dimensions("21:9", "1024"), Some((1024, 440)));
    assert_eq!(image_dimensions("16:9", "720p"), Some((1280, 720)));
    assert_eq!(image_dimensions("9:16", "1080p"), Some((1080, 1920)));
    for (w, h) in [
        image_dimensions("3:4", "1K").unwrap(),
        image_dimensions("21:9", "2K").unwrap(),
    ] {
        assert_eq!(w % 8, 0);
        assert_eq!(h % 8, 0);
    }
    assert_eq!(image_dimensions("16:9", "8K"), None);
    assert_eq!(image_dimensions("0:9", "1K"), None);
    assert_eq!(image_dimensions("wide", "1K"), None);
    assert_eq!(image_dimensions("1:100000", "1K"), None);
}

#[test]
fn every_shipped_ratio_and_resolution_has_dimensions() {
    let c = catalog();
    for model in c.models().iter().filter(|m| m.kind == ModelKind::Image) {
        let ratios = model
            .parameter("aspect_ratio")
            .unwrap()
            .options
            .clone()
            .unwrap();
        let sizes = model
            .parameter("resolution")
            .unwrap()
            .options
            .clone()
            .unwrap();
        for r in &ratios {
            for s in &sizes {
                assert!(
                    image_dimensions(r.as_str().unwrap(), s.as_str().unwrap()).is_some(),
                    "{} {r} {s}",
                    model.slug
                );
            }
        }
    }
}
