//! Behavioural tests of the public API (determinism, variety, formats,
//! validation, colour semantics).

use super::*;

fn spec(prompt: &str, seed: u64, w: u32, h: u32, style: Style) -> ImageSpec<'_> {
    ImageSpec {
        prompt,
        seed,
        width: w,
        height: h,
        style,
    }
}

fn rgb(bytes: &[u8]) -> image::RgbImage {
    image::load_from_memory(bytes).expect("decodes").to_rgb8()
}

/// Mean absolute per-channel difference, in 0..=255 units.
fn mean_abs_diff(a: &image::RgbImage, b: &image::RgbImage) -> f64 {
    assert_eq!(a.dimensions(), b.dimensions());
    let sum: u64 = a
        .as_raw()
        .iter()
        .zip(b.as_raw())
        .map(|(x, y)| u64::from(x.abs_diff(*y)))
        .sum();
    sum as f64 / a.as_raw().len() as f64
}

/// Mean (R, G, B) over the upper half.
fn upper_half_mean(img: &image::RgbImage) -> [f64; 3] {
    let mut s = [0f64; 3];
    let mut n = 0f64;
    for y in 0..img.height() / 2 {
        for x in 0..img.width() {
            let p = img.get_pixel(x, y).0;
            for k in 0..3 {
                s[k] += f64::from(p[k]);
            }
            n += 1.0;
        }
    }
    s.map(|v| v / n)
}

#[test]
fn same_inputs_give_identical_bytes() {
    for style in [Style::Landscape, Style::Mosaic] {
        let s = spec("a sunset over mountains, cinematic", 42, 160, 120, style);
        let a = render_image(&s).unwrap();
        let b = render_image(&s).unwrap();
        assert_eq!(a.png, b.png);
        assert_eq!(a.webp, b.webp);
        assert!(!a.png.is_empty() && !a.webp.is_empty());
    }
}

#[test]
fn outputs_decode_as_png_and_webp_of_requested_size() {
    for (w, h, style) in [
        (64, 64, Style::Landscape),
        (200, 96, Style::Mosaic),
        (97, 131, Style::Landscape),
    ] {
        let r = render_image(&spec("neon city by the ocean at night", 7, w, h, style)).unwrap();
        assert_eq!((r.width, r.height), (w, h));
        assert_eq!(
            image::guess_format(&r.png).unwrap(),
            image::ImageFormat::Png
        );
        assert_eq!(
            image::guess_format(&r.webp).unwrap(),
            image::ImageFormat::WebP
        );
        let png = rgb(&r.png);
        let webp = rgb(&r.webp);
        assert_eq!(png.dimensions(), (w, h));
        assert_eq!(webp.dimensions(), (w, h));
        // Both encodings are lossless: identical pixels.
        assert_eq!(png.as_raw(), webp.as_raw());
    }
}

#[test]
fn different_prompts_differ_substantially() {
    let prompts = [
        "a sunset over mountains",
        "a snowy night sky",
        "a tropical beach with ocean waves",
        "dense green forest",
        "neon city street",
        "volcano with lava",
        "desert dunes",
        "outer space galaxy",
        "a cat wearing a hat",
        "quantum teapot symphony",
    ];
    let imgs: Vec<_> = prompts
        .iter()
        .map(|p| {
            rgb(&render_image(&spec(p, 1, 128, 128, Style::Landscape))
                .unwrap()
                .png)
        })
        .collect();
    for i in 0..imgs.len() {
        for j in i + 1..imgs.len() {
            let d = mean_abs_diff(&imgs[i], &imgs[j]);
            assert!(
                d > 12.0,
                "{:?} vs {:?}: mean abs diff {d:.1}",
                prompts[i],
                prompts[j]
            );
        }
    }
}

#[test]
fn different_seeds_differ() {
    for style in [Style::Landscape, Style::Mosaic] {
        let a = rgb(
            &render_image(&spec("mountains by a lake", 1, 128, 128, style))
                .unwrap()
                .png,
        );
        let b = rgb(
            &render_image(&spec("mountains by a lake", 2, 128, 128, style))
                .unwrap()
                .png,
        );
        let d = mean_abs_diff(&a, &b);
        assert!(d > 3.0, "{style:?}: seeds differ only by {d:.2}");
    }
}

#[test]
fn styles_differ_and_mosaic_uses_few_colours() {
    let p = "a sunset over the ocean";
    let land = rgb(&render_image(&spec(p, 5, 256, 256, Style::Landscape))
        .unwrap()
        .png);
    let mosaic = rgb(&render_image(&spec(p, 5, 256, 256, Style::Mosaic))
        .unwrap()
        .png);
    assert!(mean_abs_diff(&land, &mosaic) > 1.0);
    let count = |img: &image::RgbImage| {
        let mut v: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
        v.sort_unstable();
        v.dedup();
        v.len()
    };
    // Palette colours, each also as a darker grout and a lighter bevel shade.
    assert!(
        count(&mosaic) <= scene::PALETTE_COLORS_MAX * 3,
        "mosaic has {} colours",
        count(&mosaic)
    );
    assert!(count(&land) > count(&mosaic));
    // Mosaic tiles are 4×4-pixel-aligned blocks: inside a tile all pixels match.
    let cell = paint::mosaic_cell_px(256, 256);
    assert_eq!(cell, 4);
    for ty in 0..256 / cell {
        for tx in 0..256 / cell {
            let p = mosaic.get_pixel(tx * cell + 1, ty * cell + 1);
            assert_eq!(p, mosaic.get_pixel(tx * cell + 2, ty * cell + 2));
        }
    }
}

#[test]
fn invalid_sizes_are_errors() {
    for (w, h) in [
        (0, 0),
        (63, 512),
        (512, 63),
        (2049, 512),
        (512, 2049),
        (u32::MAX, u32::MAX),
    ] {
        let mut calls = 0;
        let err =
            render_image_with_progress(&spec("x", 0, w, h, Style::Landscape), &mut |_| calls += 1)
                .unwrap_err();
        match err {
            EngineError::InvalidSize { width, height } => assert_eq!((width, height), (w, h)),
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(calls, 0);
        assert!(err_text(w, h).contains("invalid image size"));
    }
    // Both limits themselves are accepted.
    assert!(render_image(&spec("x", 0, SIDE_PX_MIN, SIDE_PX_MIN, Style::Mosaic)).is_ok());
    assert!(render_image(&spec("x", 0, SIDE_PX_MAX, SIDE_PX_MIN, Style::Landscape)).is_ok());
}

fn err_text(w: u32, h: u32) -> String {
    render_image(&spec("x", 0, w, h, Style::Landscape))
        .unwrap_err()
        .to_string()
}

#[test]
fn unicode_empty_and_huge_prompts_render() {
    let huge = "mountain ocean ✨ 日本 ".repeat(20_000);
    for p in [
        "",
        "   ",
        "🌅🏔️",
        "富士山の夕焼け",
        "Ünïcödé ñ",
        "\0\u{202e}",
        huge.as_str(),
    ] {
        for style in [Style::Landscape, Style::Mosaic] {
            let r = render_image(&spec(p, u64::MAX, 96, 64, style)).unwrap();
            assert_eq!(rgb(&r.png).dimensions(), (96, 64));
        }
    }
    // Distinct unicode prompts still give distinct pictures.
    let a = rgb(
        &render_image(&spec("富士山", 3, 128, 128, Style::Landscape))
            .unwrap()
            .png,
    );
    let b = rgb(
        &render_image(&spec("東京タワー", 3, 128, 128, Style::Landscape))
            .unwrap()
            .png,
    );
    assert!(mean_abs_diff(&a, &b) > 5.0);
}

#[test]
fn sunset_is_warmer_than_snowy_night() {
    for seed in [0, 1, 42, 999] {
        for style in [Style::Landscape, Style::Mosaic] {
            let warm = upper_half_mean(&rgb(&render_image(&spec(
                "a sunset over mountains",
                seed,
                128,
                128,
                style,
            ))
            .unwrap()
            .png));
            let cold = upper_half_mean(&rgb(&render_image(&spec(
                "a snowy night sky",
                seed,
                128,
                128,
                style,
            ))
            .unwrap()
            .png));
            assert!(warm[0] > warm[2] + 20.0, "sunset upper half {warm:?}");
            assert!(cold[2] > cold[0], "snowy night upper half {cold:?}");
            assert!(warm[0] - warm[2] > cold[0] - cold[2] + 30.0);
            // The night sky is also much darker overall.
            assert!(warm.iter().sum::<f64>() > cold.iter().sum::<f64>() + 60.0);
        }
    }
}

#[test]
fn progress_is_monotonic_and_complete() {
    let mut seen = Vec::new();
    render_image_with_progress(&spec("forest lake", 3, 128, 96, Style::Mosaic), &mut |p| {
        seen.push(p)
    })
    .unwrap();
    assert!(seen.len() >= 5, "{seen:?}");
    assert_eq!(seen.first(), Some(&0));
    assert_eq!(seen.last(), Some(&100));
    assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{seen:?}");
}

#[test]
fn engine_names_parse() {
    assert_eq!(Style::from_engine_name("landscape"), Some(Style::Landscape));
    assert_eq!(Style::from_engine_name("mosaic"), Some(Style::Mosaic));
    assert_eq!(Style::from_engine_name("Mosaic"), None);
    assert_eq!(Style::from_engine_name(""), None);
}
