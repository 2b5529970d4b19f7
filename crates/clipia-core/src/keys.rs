//! API keys: their text form, hashing, display prefixes, modes and scopes.
//!
//! A key is `clipia_live_` or `clipia_test_` followed by base62 characters. Only its SHA-256 hash
//! is ever stored; lookups go by hash and the final comparison is constant-time.

use std::fmt;

use rand::Rng;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Live keys spend credits and run models; test keys run in the sandbox.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    Live,
    Test,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Live => "live",
            Mode::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Mode> {
        match text {
            "live" => Some(Mode::Live),
            "test" => Some(Mode::Test),
            _ => None,
        }
    }

    fn key_prefix(self) -> &'static str {
        match self {
            Mode::Live => "clipia_live_",
            Mode::Test => "clipia_test_",
        }
    }
}

/// Characters after the mode prefix in a generated key.
pub const KEY_RANDOM_LEN: usize = 40;
/// The fewest characters after the prefix that a key may have (SPEC §2).
pub const KEY_RANDOM_LEN_MIN: usize = 32;
/// The longest key accepted, so that hashing cost is bounded.
pub const KEY_LEN_MAX: usize = 128;
/// Random characters kept in the displayed prefix (`clipia_live_AbCd1234…`).
const DISPLAY_RANDOM_LEN: usize = 8;

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A syntactically valid API key secret. Never logged: `Debug` shows only the prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    text: String,
    mode: Mode,
}

impl ApiKey {
    /// A fresh random key for `mode`.
    pub fn generate(mode: Mode) -> ApiKey {
        let mut rng = rand::thread_rng();
        let random: String = (0..KEY_RANDOM_LEN)
            .map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char)
            .collect();
        ApiKey { text: format!("{}{random}", mode.key_prefix()), mode }
    }

    /// Accepts `clipia_(live|test)_` + at least 32 base62 characters.
    pub fn parse(text: &str) -> Option<ApiKey> {
        if text.len() > KEY_LEN_MAX {
            return None;
        }
        let (mode, rest) = if let Some(rest) = text.strip_prefix(Mode::Live.key_prefix()) {
            (Mode::Live, rest)
        } else if let Some(rest) = text.strip_prefix(Mode::Test.key_prefix()) {
            (Mode::Test, rest)
        } else {
            return None;
        };
        let valid = rest.len() >= KEY_RANDOM_LEN_MIN && rest.bytes().all(|b| b.is_ascii_alphanumeric());
        valid.then(|| ApiKey { text: text.to_owned(), mode })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The secret itself: only for showing once at creation.
    pub fn expose(&self) -> &str {
        &self.text
    }

    pub fn hash(&self) -> KeyHash {
        KeyHash(hex::encode(Sha256::digest(self.text.as_bytes())))
    }

    /// What lists show: the mode prefix, a few characters and an ellipsis.
    pub fn display_prefix(&self) -> String {
        let end = self.mode.key_prefix().len() + DISPLAY_RANDOM_LEN;
        format!("{}…", &self.text[..end])
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.display_prefix())
    }
}

/// The stored form of a key: lower-case hex SHA-256.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn from_stored(hex: String) -> KeyHash {
        KeyHash(hex)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Constant-time equality, for the final check after an index lookup.
    pub fn ct_eq(&self, other: &KeyHash) -> bool {
        self.0.as_bytes().ct_eq(other.0.as_bytes()).into()
    }
}

/// What a key may do (SPEC §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Submit and cancel jobs.
    Generate,
    /// Read requests, models, estimates and the account.
    Read,
    /// [ext] Manage keys and webhook secrets.
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Generate => "generate",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "generate" => Some(Scope::Generate),
            "read" => Some(Scope::Read),
            "admin" => Some(Scope::Admin),
            _ => None,
        }
    }
}

/// A set of scopes, kept in a fixed order so that its text form is stable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Scopes {
    generate: bool,
    read: bool,
    admin: bool,
}

impl Scopes {
    /// What a new key gets when none are named: `generate` and `read`.
    pub fn default_for_new_key() -> Scopes {
        Scopes { generate: true, read: true, admin: false }
    }

    pub fn all() -> Scopes {
        Scopes { generate: true, read: true, admin: true }
    }

    pub fn contains(&self, scope: Scope) -> bool {
        match scope {
            Scope::Generate => self.generate,
            Scope::Read => self.read,
            Scope::Admin => self.admin,
        }
    }

    pub fn insert(&mut self, scope: Scope) {
        match scope {
            Scope::Generate => self.generate = true,
            Scope::Read => self.read = true,
            Scope::Admin => self.admin = true,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = Scope> + '_ {
        [Scope::Generate, Scope::Read, Scope::Admin].into_iter().filter(|s| self.contains(*s))
    }

    /// Parses `generate,read` (commas, spaces allowed); an unknown name is an error naming it.
    pub fn parse_list(text: &str) -> Result<Scopes, String> {
        let mut scopes = Scopes::default();
        for name in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let scope = Scope::parse(name)
                .ok_or_else(|| format!("unknown scope {name:?}: expected generate, read or admin"))?;
            scopes.insert(scope);
        }
        if scopes == Scopes::default() {
            return Err("at least one scope is required".into());
        }
        Ok(scopes)
    }

    /// The stored form: `generate,read`.
    pub fn to_list(&self) -> String {
        self.iter().map(Scope::as_str).collect::<Vec<_>>().join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_keep_their_mode() {
        for mode in [Mode::Live, Mode::Test] {
            let key = ApiKey::generate(mode);
            let parsed = ApiKey::parse(key.expose()).expect("generated key parses");
            assert_eq!(parsed.mode(), mode);
            assert_eq!(parsed.hash(), key.hash());
        }
    }

    #[test]
    fn malformed_keys_are_rejected() {
        assert!(ApiKey::parse("clipia_live_short").is_none());
        assert!(ApiKey::parse(&format!("clipia_prod_{}", "a".repeat(40))).is_none());
        assert!(ApiKey::parse(&format!("clipia_live_{}!", "a".repeat(40))).is_none());
        assert!(ApiKey::parse(&format!("clipia_live_{}", "a".repeat(200))).is_none());
        assert!(ApiKey::parse(&format!("clipia_test_{}", "a".repeat(32))).is_some());
    }

    #[test]
    fn debug_and_prefix_never_show_the_secret() {
        let key = ApiKey::generate(Mode::Live);
        let shown = format!("{key:?} {}", key.display_prefix());
        assert!(!shown.contains(key.expose()));
        assert!(key.display_prefix().starts_with("clipia_live_"));
        assert_eq!(key.display_prefix().chars().count(), "clipia_live_".len() + 8 + 1);
    }

    #[test]
    fn scopes_parse_and_print() {
        let s = Scopes::parse_list("read, generate").unwrap();
        assert_eq!(s.to_list(), "generate,read");
        assert!(!s.contains(Scope::Admin));
        assert!(Scopes::parse_list("read,write").unwrap_err().contains("write"));
        assert!(Scopes::parse_list("").is_err());
    }
}

/// A random base62 string, for server secrets.
pub fn random_token(len: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..len).map(|_| BASE62[rng.gen_range(0..BASE62.len())] as char).collect()
}
