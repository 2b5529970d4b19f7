//! Identifiers. Each can only be built from a valid value (`parse`) or freshly generated.

use std::fmt;

use rand::Rng;
use uuid::Uuid;

/// A request (job) id: a UUID, as Clipia hands them out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(Uuid);

impl RequestId {
    /// A new random (v4) id.
    pub fn new() -> Self {
        RequestId(Uuid::new_v4())
    }

    /// Parses the hyphenated UUID form (what the API returns); `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 36 {
            return None;
        }
        Uuid::try_parse(text).ok().map(RequestId)
    }
}

impl Default for RequestId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

const ID_ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
const ID_RANDOM_LEN: usize = 16;

fn random_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..ID_RANDOM_LEN)
        .map(|_| ID_ALPHABET[rng.gen_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

fn valid_prefixed(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix).is_some_and(|rest| {
        !rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

macro_rules! prefixed_id {
    ($name:ident, $prefix:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Self {
                $name(format!("{}{}", $prefix, random_suffix()))
            }

            /// Accepts `<prefix><1..64 ASCII alphanumerics>`.
            pub fn parse(text: &str) -> Option<Self> {
                valid_prefixed(text, $prefix).then(|| $name(text.to_owned()))
            }

            /// The id as stored and shown.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(AccountId, "acct_", "An account id, `acct_…`.");
prefixed_id!(KeyId, "key_", "An API key's public id, `key_…` (never the secret).");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_round_trip_and_reject_garbage() {
        let id = RequestId::new();
        assert_eq!(RequestId::parse(&id.to_string()), Some(id));
        assert_eq!(RequestId::parse("not-a-uuid"), None);
        assert_eq!(RequestId::parse("764cabcfb7454b3eae381200304cf45b"), None);
        assert!(RequestId::parse("764cabcf-b745-4b3e-ae38-1200304cf45b").is_some());
    }

    #[test]
    fn prefixed_ids_parse_only_their_own_kind() {
        let acct = AccountId::generate();
        assert!(AccountId::parse(acct.as_str()).is_some());
        assert!(KeyId::parse(acct.as_str()).is_none());
        assert!(AccountId::parse("acct_").is_none());
        assert!(AccountId::parse("acct_../etc").is_none());
    }
}
