//! Clipia's builtin CPU image engine.
//!
//! An honest *procedural* renderer — not a neural model — for development,
//! demos, load tests and air-gapped installs. It turns a prompt, a seed, a
//! size and a [`Style`] into a real picture, deterministically: the same
//! inputs always give byte-identical PNG and WebP files, while different
//! prompts or seeds give visibly different pictures.
//!
//! Module ownership:
//! - `lib.rs` (this file): the public API — [`Style`], [`ImageSpec`],
//!   [`RenderedImage`], [`EngineError`], size limits, validation, progress
//!   reporting and PNG/WebP encoding.
//! - `keywords`: prompt normalization and the English keyword → theme table.
//! - `scene`: prompt → resolution-independent scene description (keyword
//!   themes plus SHA-256-derived hues, shapes and positions).
//! - `paint`: scene → RGB8 pixels, and the mosaic (pixel-art) post-process.
//! - `rng`: the tiny deterministic SplitMix64 generator and integer hash.

mod keywords;
mod paint;
mod rng;
mod scene;

use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::webp::WebPEncoder;
use image::{ExtendedColorType, ImageEncoder};

/// Smallest accepted width or height, in pixels.
pub const SIDE_PX_MIN: u32 = 64;
/// Largest accepted width or height, in pixels.
pub const SIDE_PX_MAX: u32 = 2048;

/// Share of the progress range (percent) spent on painting; encoding gets the rest.
const PAINT_PERCENT_MAX: u32 = 70;
/// Progress reported once the PNG is encoded, in percent.
const PNG_DONE_PERCENT: u8 = 85;

/// Rendering style of the builtin engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Style {
    /// Smooth scene: gradient sky, sun or moon, layered ridge silhouettes,
    /// optional water reflection and hashed shapes.
    Landscape,
    /// The same scene as coarse pixel art: a low-resolution grid of square
    /// tiles quantized to a small palette with ordered dithering.
    Mosaic,
}

impl Style {
    /// Parses an engine name: `"landscape"` or `"mosaic"` (exact, lowercase);
    /// anything else is `None`.
    pub fn from_engine_name(name: &str) -> Option<Style> {
        match name {
            "landscape" => Some(Style::Landscape),
            "mosaic" => Some(Style::Mosaic),
            _ => None,
        }
    }
}

/// What to render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageSpec<'a> {
    /// Free-form prompt; any UTF-8 text (empty included) is accepted.
    pub prompt: &'a str,
    /// Seed; together with the prompt it fixes every random choice.
    pub seed: u64,
    /// Width in pixels, within [`SIDE_PX_MIN`]..=[`SIDE_PX_MAX`].
    pub width: u32,
    /// Height in pixels, within [`SIDE_PX_MIN`]..=[`SIDE_PX_MAX`].
    pub height: u32,
    /// Rendering style.
    pub style: Style,
}

/// A rendered picture, encoded twice (both RGB8, no alpha).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderedImage {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// PNG file bytes.
    pub png: Vec<u8>,
    /// Lossless WebP file bytes.
    pub webp: Vec<u8>,
}

/// Why a render failed.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Width or height outside [`SIDE_PX_MIN`]..=[`SIDE_PX_MAX`].
    #[error("invalid image size {width}x{height}: each side must be between {SIDE_PX_MIN} and {SIDE_PX_MAX} pixels")]
    InvalidSize {
        /// Requested width in pixels.
        width: u32,
        /// Requested height in pixels.
        height: u32,
    },
    /// The PNG or WebP encoder failed.
    #[error("image encoding failed: {0}")]
    Encode(String),
}

/// Renders `spec` to PNG and WebP.
///
/// Errors with [`EngineError::InvalidSize`] when a side is out of range.
pub fn render_image(spec: &ImageSpec) -> Result<RenderedImage, EngineError> {
    render_image_with_progress(spec, &mut |_| {})
}

/// Progress-reporting variant of [`render_image`]: calls
/// `on_progress(percent)` with non-decreasing values in `0..=100` — once at
/// the start (0), after each scene layer (up to 70), after the PNG encode
/// (85) and after the WebP encode (100) — so a long render can show progress.
/// Nothing is reported for an invalid size.
pub fn render_image_with_progress(
    spec: &ImageSpec,
    on_progress: &mut dyn FnMut(u8),
) -> Result<RenderedImage, EngineError> {
    let (w, h) = (spec.width, spec.height);
    let valid = SIDE_PX_MIN..=SIDE_PX_MAX;
    if !valid.contains(&w) || !valid.contains(&h) {
        return Err(EngineError::InvalidSize {
            width: w,
            height: h,
        });
    }
    on_progress(0);
    let scene = scene::Scene::from_prompt(spec.prompt, spec.seed);
    let mut on_layer = |done: u32, total: u32| {
        on_progress((done * PAINT_PERCENT_MAX / total.max(1)).min(PAINT_PERCENT_MAX) as u8);
    };
    let canvas = match spec.style {
        Style::Landscape => paint::paint_scene(&scene, w as usize, h as usize, &mut on_layer),
        Style::Mosaic => {
            let cell = paint::mosaic_cell_px(w, h);
            let (lw, lh) = (w.div_ceil(cell), h.div_ceil(cell));
            let low = paint::paint_scene(&scene, lw as usize, lh as usize, &mut on_layer);
            paint::mosaic(
                &low,
                &scene.palette(),
                w as usize,
                h as usize,
                cell as usize,
            )
        }
    };

    let mut png = Vec::new();
    PngEncoder::new_with_quality(&mut png, CompressionType::Fast, FilterType::Adaptive)
        .write_image(&canvas.px, w, h, ExtendedColorType::Rgb8)
        .map_err(|e| EngineError::Encode(format!("png: {e}")))?;
    on_progress(PNG_DONE_PERCENT);

    let mut webp = Vec::new();
    WebPEncoder::new_lossless(&mut webp)
        .encode(&canvas.px, w, h, ExtendedColorType::Rgb8)
        .map_err(|e| EngineError::Encode(format!("webp: {e}")))?;
    on_progress(100);

    Ok(RenderedImage {
        width: w,
        height: h,
        png,
        webp,
    })
}

#[cfg(test)]
mod tests;
