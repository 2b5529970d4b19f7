//! Pixel sizes for the catalog's `aspect_ratio` and `resolution` values, so that every engine
//! and adapter turns "16:9" + "1K" into the same width and height.

/// Largest term accepted in an `W:H` ratio; real ratios are small ("21:9"), and this keeps the
/// arithmetic far from overflow.
pub const RATIO_TERM_MAX: u32 = 1000;

/// Sides are multiples of this many pixels (what image and video codecs want).
const SIDE_MULTIPLE_PX: u32 = 8;

/// The pixel size `(width, height)` for an aspect ratio (`"16:9"`) and a resolution.
///
/// Image resolutions fix the long side: `"512"` → 512, `"1K"`/`"1024"` → 1024,
/// `"2K"`/`"2048"` → 2048, `"4K"`/`"4096"` → 4096. Video resolutions fix the short side:
/// `"480p"`, `"720p"`, `"1080p"`. The other side follows the ratio, rounded to the nearest
/// multiple of 8 (at least 8). `None` for anything else.
pub fn image_dimensions(aspect_ratio: &str, resolution: &str) -> Option<(u32, u32)> {
    let (w, h) = parse_ratio(aspect_ratio)?;
    enum Fixed {
        Long(u32),
        Short(u32),
    }
    let fixed = match resolution {
        "512" => Fixed::Long(512),
        "1K" | "1k" | "1024" => Fixed::Long(1024),
        "2K" | "2k" | "2048" => Fixed::Long(2048),
        "4K" | "4k" | "4096" => Fixed::Long(4096),
        "480p" => Fixed::Short(480),
        "720p" => Fixed::Short(720),
        "1080p" => Fixed::Short(1080),
        _ => return None,
    };
    let (long_term, short_term) = (w.max(h), w.min(h));
    let (long, short) = match fixed {
        Fixed::Long(long) => (long, scale(long, short_term, long_term)),
        Fixed::Short(short) => (scale(short, long_term, short_term), short),
    };
    Some(if w >= h { (long, short) } else { (short, long) })
}

/// `side × num / den`, rounded to the nearest multiple of 8, at least 8.
fn scale(side: u32, num: u32, den: u32) -> u32 {
    let exact = u64::from(side) * u64::from(num);
    let step = u64::from(SIDE_MULTIPLE_PX) * u64::from(den);
    let rounded = (exact + step / 2) / step * u64::from(SIDE_MULTIPLE_PX);
    u32::try_from(rounded)
        .unwrap_or(u32::MAX)
        .max(SIDE_MULTIPLE_PX)
}

fn parse_ratio(text: &str) -> Option<(u32, u32)> {
    let (w, h) = text.split_once(':')?;
    let w: u32 = w.trim().parse().ok()?;
    let h: u32 = h.trim().parse().ok()?;
    if w == 0 || h == 0 || w > RATIO_TERM_MAX || h > RATIO_TERM_MAX {
        return None;
    }
    Some((w, h))
}
