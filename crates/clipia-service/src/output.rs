//! Job outputs as stored (file keys) and as handed out (signed, expiring absolute URLs).
//!
//! Stored outputs name files by key (`"file"`, `"original_file"`), never by URL, so that the
//! public URL, its signature and its expiry are made fresh at every read.

use serde_json::{json, Map, Value};

use crate::files::{UrlSigner, FILE_URL_TTL_S};

/// One stored image: a WebP delivery copy and the PNG original.
pub fn stored_image(webp_key: &str, png_key: &str, width: u32, height: u32, webp_size: usize) -> Value {
    json!({
        "file": webp_key,
        "original_file": png_key,
        "width": width,
        "height": height,
        "content_type": "image/webp",
        "file_size": webp_size,
    })
}

/// Replaces file keys by signed URLs under `base_url`, everywhere in `stored`.
pub fn public_output(stored: &Value, base_url: &str, signer: &UrlSigner, now_ms: i64) -> Value {
    let expires = now_ms / 1000 + FILE_URL_TTL_S;
    let url = |key: &str| format!("{base_url}/v1/files/{key}?expires={expires}&sig={}", signer.sign(key, expires));
    fn walk(v: &Value, url: &dyn Fn(&str) -> String, expires_at: &str) -> Value {
        match v {
            Value::Object(map) => {
                let mut out = Map::with_capacity(map.len() + 1);
                let is_file = map.contains_key("file");
                for (k, v) in map {
                    match (k.as_str(), v.as_str()) {
                        ("file", Some(key)) => {
                            out.insert("url".into(), Value::String(url(key)));
                        }
                        ("original_file", Some(key)) => {
                            out.insert("original_url".into(), Value::String(url(key)));
                        }
                        _ => {
                            out.insert(k.clone(), walk(v, url, expires_at));
                        }
                    }
                }
                if is_file {
                    out.insert("expires_at".into(), Value::String(expires_at.to_owned()));
                }
                Value::Object(out)
            }
            Value::Array(items) => Value::Array(items.iter().map(|i| walk(i, url, expires_at)).collect()),
            other => other.clone(),
        }
    }
    walk(stored, &url, &crate::time::rfc3339(expires * 1000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_keys_become_signed_urls_with_an_expiry() {
        let stored = json!({"images": [stored_image("j/0.webp", "j/0.png", 64, 32, 10)], "seed": 7});
        let signer = UrlSigner::new("s");
        let out = public_output(&stored, "http://h", &signer, 1_000_000);
        let img = &out["images"][0];
        let url = img["url"].as_str().unwrap();
        assert!(url.starts_with("http://h/v1/files/j/0.webp?expires=87400&sig="));
        assert!(img["original_url"].as_str().unwrap().contains("/v1/files/j/0.png?"));
        assert!(img.get("file").is_none());
        assert_eq!(img["width"], 64);
        assert_eq!(out["seed"], 7);
        assert!(img["expires_at"].as_str().unwrap().starts_with("1970-01-02T"));
    }
}
