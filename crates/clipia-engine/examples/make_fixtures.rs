//! Writes the sandbox fixture images used by the server's test-mode API keys.
//!
//! Usage: `cargo run -p clipia-engine --example make_fixtures -- <out dir>`
//!
//! Produces `sandbox-image.png` and `sandbox-image.webp`: 1024×1024,
//! prompt "a sunset over mountains, cinematic", seed 42, `Style::Landscape`.
//! Also prints how long the render + both encodes took.

use std::path::PathBuf;
use std::time::Instant;

use clipia_engine::{render_image, ImageSpec, Style};

/// Fixture prompt.
const PROMPT: &str = "a sunset over mountains, cinematic";
/// Fixture seed.
const SEED: u64 = 42;
/// Fixture side length in pixels.
const SIDE_PX: u32 = 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .ok_or("usage: make_fixtures <out dir>")?;
    std::fs::create_dir_all(&dir)?;
    let spec = ImageSpec {
        prompt: PROMPT,
        seed: SEED,
        width: SIDE_PX,
        height: SIDE_PX,
        style: Style::Landscape,
    };
    let start = Instant::now();
    let img = render_image(&spec)?;
    let took = start.elapsed();
    std::fs::write(dir.join("sandbox-image.png"), &img.png)?;
    std::fs::write(dir.join("sandbox-image.webp"), &img.webp)?;
    println!(
        "wrote {}x{} sandbox-image.png ({} bytes) and sandbox-image.webp ({} bytes) in {:?}",
        img.width,
        img.height,
        img.png.len(),
        img.webp.len(),
        took
    );
    Ok(())
}
