//! Output files: where they are kept (a storage trait; the local filesystem by default) and the
//! signed, expiring URLs that serve them without an Authorization header.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a handed-out file URL stays valid.
pub const FILE_URL_TTL_S: i64 = 24 * 60 * 60;
/// The prefix of files the server ships for the sandbox.
pub const SANDBOX_DIR: &str = "sandbox";

/// Where output files live. Keys are `<dir>/<name>`, both checked by [`valid_key`].
#[async_trait]
pub trait FileStore: Send + Sync + 'static {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> std::io::Result<()>;
    /// `None` when there is no such file.
    async fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>>;
}

/// A file key is two plain path segments, so that no key can leave the store's root.
pub fn valid_key(key: &str) -> bool {
    let mut parts = key.split('/');
    let ok = |s: &str| {
        !s.is_empty() && s.len() <= 64 && !s.starts_with('.') && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
    };
    matches!((parts.next(), parts.next(), parts.next()), (Some(a), Some(b), None) if ok(a) && ok(b))
}

/// Files under a directory (the data directory's `files/`).
pub struct LocalFiles {
    root: PathBuf,
}

impl LocalFiles {
    pub fn new(root: &Path) -> LocalFiles {
        LocalFiles { root: root.to_owned() }
    }
}

#[async_trait]
impl FileStore for LocalFiles {
    async fn put(&self, key: &str, bytes: Vec<u8>) -> std::io::Result<()> {
        if !valid_key(key) {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "bad file key"));
        }
        let path = self.root.join(key);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        // Write then rename, so a crash never leaves a half-written file under the real name.
        let tmp = path.with_extension("part");
        tokio::fs::write(&tmp, bytes).await?;
        tokio::fs::rename(&tmp, &path).await
    }

    async fn get(&self, key: &str) -> std::io::Result<Option<Vec<u8>>> {
        if !valid_key(key) {
            return Ok(None);
        }
        match tokio::fs::read(self.root.join(key)).await {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Signs and checks file URLs: `sig` is HMAC-SHA256 over `"{key}\n{expires}"` with a secret all
/// server nodes share (kept in the store).
#[derive(Clone)]
pub struct UrlSigner {
    secret: Vec<u8>,
}

impl UrlSigner {
    pub fn new(secret: &str) -> UrlSigner {
        UrlSigner { secret: secret.as_bytes().to_vec() }
    }

    fn mac(&self, key: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key length");
        mac.update(key.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    pub fn sign(&self, key: &str, expires: i64) -> String {
        hex::encode(self.mac(key, expires).finalize().into_bytes())
    }

    /// Constant-time check of a signature; `now_s` must be before `expires`.
    pub fn verify(&self, key: &str, expires: i64, sig: &str, now_s: i64) -> bool {
        if now_s >= expires {
            return false;
        }
        match hex::decode(sig) {
            Ok(bytes) => self.mac(key, expires).verify_slice(&bytes).is_ok(),
            Err(_) => false,
        }
    }
}

/// The content type a file is served with, from its extension.
pub fn content_type(key: &str) -> &'static str {
    match key.rsplit('.').next() {
        Some("png") => "image/png",
        Some("webp") => "image/webp",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("mp4") => "video/mp4",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_cannot_escape_the_root() {
        assert!(valid_key("764cabcf-b745-4b3e-ae38-1200304cf45b/0.png"));
        assert!(!valid_key("../etc/passwd"));
        assert!(!valid_key("a/../../b"));
        assert!(!valid_key("a/.hidden"));
        assert!(!valid_key("a"));
        assert!(!valid_key("a/b/c"));
    }

    #[test]
    fn signatures_bind_key_and_expiry() {
        let s = UrlSigner::new("secret");
        let sig = s.sign("a/0.png", 2_000);
        assert!(s.verify("a/0.png", 2_000, &sig, 1_000));
        assert!(!s.verify("a/0.png", 2_000, &sig, 2_000), "expired");
        assert!(!s.verify("a/1.png", 2_000, &sig, 1_000), "other file");
        assert!(!s.verify("a/0.png", 3_000, &sig, 1_000), "other expiry");
        assert!(!UrlSigner::new("other").verify("a/0.png", 2_000, &sig, 1_000));
    }
}
