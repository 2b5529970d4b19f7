//! Renders one picture and reports timings: handy for eyeballing prompts.
//!
//! Usage: `cargo run -p clipia-engine --example render -- <out.png> <landscape|mosaic> <seed> <width> <height> <prompt…>`

use std::time::Instant;

use clipia_engine::{render_image_with_progress, ImageSpec, Style};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        return Err(
            "usage: render <out.png> <landscape|mosaic> <seed> <width> <height> <prompt…>".into(),
        );
    }
    let style = Style::from_engine_name(&args[1]).ok_or("style must be landscape or mosaic")?;
    let prompt = args[5..].join(" ");
    let spec = ImageSpec {
        prompt: &prompt,
        seed: args[2].parse()?,
        width: args[3].parse()?,
        height: args[4].parse()?,
        style,
    };
    let start = Instant::now();
    let mut marks = Vec::new();
    let img = render_image_with_progress(&spec, &mut |p| marks.push((p, start.elapsed())))?;
    for (p, t) in &marks {
        println!("{p:>3}% at {t:?}");
    }
    std::fs::write(&args[0], &img.png)?;
    println!("png {} bytes, webp {} bytes", img.png.len(), img.webp.len());
    Ok(())
}
