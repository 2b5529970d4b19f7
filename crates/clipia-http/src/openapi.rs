//! The OpenAPI 3.1 description, generated from the handlers' annotations and the wire types.
//! A snapshot of it lives in `contract/openapi.json`; a test fails when the two differ.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(title = "Clipia API", description = "Self-hostable generation API for images and video, wire-compatible with Clipia's v1 API. Items marked [ext] are extensions."),
    paths(
        routes::submit::submit, routes::submit::estimate,
        routes::models::list, routes::models::get,
        routes::requests::status, routes::requests::result, routes::requests::cancel, routes::requests::list,
        routes::events::events,
        routes::webhooks::secret, routes::webhooks::rotate, routes::webhooks::deliveries, routes::webhooks::resend,
        routes::webhooks::events,
        routes::account::get, routes::account::ledger,
        routes::keys::list, routes::keys::create, routes::keys::revoke,
        routes::files::download,
        routes::ops::healthz, routes::ops::readyz, routes::ops::metrics, routes::ops::openapi,
    ),
    modifiers(&Security),
    security(("bearer" = []), ("key_header" = [])),
)]
struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
        components.add_security_scheme("key_header", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-Api-Key"))));
    }
}

/// The document as JSON, with the server's version.
pub fn document() -> serde_json::Value {
    let mut doc = ApiDoc::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    serde_json::to_value(&doc).unwrap_or_default()
}
