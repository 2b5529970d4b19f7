//! Prompt text → recognised themes.
//!
//! This module owns prompt normalization (Unicode-aware lowercasing and
//! splitting into alphanumeric words), the English keyword table that maps
//! words such as "sunset", "ocean" or "mountains" to [`Themes`], and the
//! stop-word list of filler words that are ignored when turning leftover
//! words into hashed shapes.

/// Most keyword-scanned words; longer prompts still hash in full.
pub const SCAN_WORDS_MAX: usize = 512;

/// Themes recognised from prompt keywords.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Themes {
    /// sunset / dusk / dawn: warm orange-purple sky with a low sun.
    pub sunset: bool,
    /// night / stars / moon: dark sky with stars and a moon.
    pub night: bool,
    /// space / galaxy / cosmos: black sky, dense stars, a planet.
    pub space: bool,
    /// ocean / sea / beach / lake / water: a reflective water band.
    pub water: bool,
    /// forest / trees / jungle: green ground and pine trees.
    pub forest: bool,
    /// snow / winter / ice: whites and pale blues, snow caps.
    pub snow: bool,
    /// fire / lava / volcano: red sky and a glowing lava band.
    pub fire: bool,
    /// desert / sand / dunes: ochre dunes under a pale sky.
    pub desert: bool,
    /// city / neon / street: dark sky, buildings with neon windows.
    pub city: bool,
    /// mountain(s) / peaks / alps: tall layered jagged ridgelines.
    pub mountain: bool,
    /// sun / sunny / day / noon: a high bright sun.
    pub day: bool,
}

/// Sets one theme flag.
type SetTheme = fn(&mut Themes);

/// Keyword table: a trailing `*` means prefix match, otherwise exact match.
const KEYWORDS: &[(&str, SetTheme)] = &[
    ("sunset*", |t| t.sunset = true),
    ("sunrise*", |t| t.sunset = true),
    ("dusk", |t| t.sunset = true),
    ("dawn", |t| t.sunset = true),
    ("twilight", |t| t.sunset = true),
    ("evening", |t| t.sunset = true),
    ("golden", |t| t.sunset = true),
    ("night*", |t| t.night = true),
    ("midnight", |t| t.night = true),
    ("star", |t| t.night = true),
    ("stars", |t| t.night = true),
    ("starry", |t| t.night = true),
    ("starlit", |t| t.night = true),
    ("moon*", |t| t.night = true),
    ("dark", |t| t.night = true),
    ("space", |t| t.space = true),
    ("galax*", |t| t.space = true),
    ("cosmo*", |t| t.space = true),
    ("nebula*", |t| t.space = true),
    ("planet*", |t| t.space = true),
    ("universe", |t| t.space = true),
    ("ocean*", |t| t.water = true),
    ("sea", |t| t.water = true),
    ("seas", |t| t.water = true),
    ("seaside", |t| t.water = true),
    ("beach*", |t| t.water = true),
    ("water*", |t| t.water = true),
    ("lake*", |t| t.water = true),
    ("river*", |t| t.water = true),
    ("coast*", |t| t.water = true),
    ("shore*", |t| t.water = true),
    ("wave", |t| t.water = true),
    ("waves", |t| t.water = true),
    ("bay", |t| t.water = true),
    ("harbor", |t| t.water = true),
    ("harbour", |t| t.water = true),
    ("forest*", |t| t.forest = true),
    ("tree", |t| t.forest = true),
    ("trees", |t| t.forest = true),
    ("jungle*", |t| t.forest = true),
    ("wood", |t| t.forest = true),
    ("woods", |t| t.forest = true),
    ("woodland*", |t| t.forest = true),
    ("pine*", |t| t.forest = true),
    ("green", |t| t.forest = true),
    ("meadow*", |t| t.forest = true),
    ("snow*", |t| t.snow = true),
    ("winter*", |t| t.snow = true),
    ("ice", |t| t.snow = true),
    ("icy", |t| t.snow = true),
    ("frost*", |t| t.snow = true),
    ("frozen", |t| t.snow = true),
    ("glacier*", |t| t.snow = true),
    ("arctic", |t| t.snow = true),
    ("fire", |t| t.fire = true),
    ("fires", |t| t.fire = true),
    ("fiery", |t| t.fire = true),
    ("lava", |t| t.fire = true),
    ("volcan*", |t| t.fire = true),
    ("flame*", |t| t.fire = true),
    ("inferno", |t| t.fire = true),
    ("ember*", |t| t.fire = true),
    ("magma", |t| t.fire = true),
    ("desert*", |t| t.desert = true),
    ("sand", |t| t.desert = true),
    ("sandy", |t| t.desert = true),
    ("dune", |t| t.desert = true),
    ("dunes", |t| t.desert = true),
    ("canyon*", |t| t.desert = true),
    ("sahara", |t| t.desert = true),
    ("city", |t| t.city = true),
    ("cities", |t| t.city = true),
    ("neon", |t| t.city = true),
    ("street*", |t| t.city = true),
    ("urban", |t| t.city = true),
    ("cyber*", |t| t.city = true),
    ("skyline*", |t| t.city = true),
    ("skyscraper*", |t| t.city = true),
    ("downtown", |t| t.city = true),
    ("metropol*", |t| t.city = true),
    ("mountain*", |t| t.mountain = true),
    ("peak", |t| t.mountain = true),
    ("peaks", |t| t.mountain = true),
    ("alps", |t| t.mountain = true),
    ("alpine", |t| t.mountain = true),
    ("summit*", |t| t.mountain = true),
    ("cliff*", |t| t.mountain = true),
    ("himalaya*", |t| t.mountain = true),
    ("sun", |t| t.day = true),
    ("sunny", |t| t.day = true),
    ("sunshine", |t| t.day = true),
    ("day", |t| t.day = true),
    ("daylight", |t| t.day = true),
    ("noon", |t| t.day = true),
    ("morning", |t| t.day = true),
];

/// Filler words that neither set a theme nor spawn a prop.
pub const STOP_WORDS: &[&str] = &[
    "a",
    "an",
    "the",
    "of",
    "and",
    "or",
    "in",
    "on",
    "at",
    "over",
    "under",
    "with",
    "by",
    "to",
    "from",
    "for",
    "into",
    "above",
    "below",
    "near",
    "is",
    "are",
    "very",
    "some",
    "its",
    "it",
    "this",
    "that",
    "beautiful",
    "photo",
    "image",
    "picture",
    "style",
];

/// Lowercases and splits a prompt into alphanumeric words (Unicode-aware).
pub fn normalize(prompt: &str) -> Vec<String> {
    prompt
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// Returns the theme setter for `word`, if it is a known keyword.
pub fn keyword(word: &str) -> Option<SetTheme> {
    KEYWORDS.iter().find_map(|(pat, set)| {
        let hit = match pat.strip_suffix('*') {
            Some(prefix) => word.starts_with(prefix),
            None => word == *pat,
        };
        hit.then_some(*set)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_is_unicode_aware_and_lowercases() {
        assert_eq!(
            normalize("  A Sunset, over MOUNTAINS!! "),
            vec!["a", "sunset", "over", "mountains"]
        );
        assert_eq!(normalize("Über—日本の山"), vec!["über", "日本の山"]);
        assert!(normalize("").is_empty());
        assert!(normalize("!!! ??").is_empty());
    }

    #[test]
    fn keyword_matching_is_exact_or_prefix() {
        let mut t = Themes::default();
        keyword("mountains").unwrap()(&mut t);
        keyword("snowy").unwrap()(&mut t);
        assert!(t.mountain && t.snow);
        assert!(keyword("sea").is_some());
        assert!(keyword("season").is_none());
        assert!(keyword("cat").is_none());
    }
}
