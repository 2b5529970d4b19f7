//! Prompt → scene description.
//!
//! This module owns the *interpretation* of a prompt: it takes the themes
//! that `keywords` recognises (sunset, night, ocean, forest, snow, fire,
//! desert, city, mountains, …) and turns them into palettes and elements; it hashes the prompt (SHA-256
//! of the normalized text mixed with the seed) into everything else: hues,
//! ridge shapes, positions and one extra "prop" shape per non-keyword word.
//! The result is a resolution-independent [`Scene`] (all positions are
//! fractions of the canvas), which `paint` rasterizes. Nothing here touches
//! pixels.

use sha2::{Digest, Sha256};

use crate::keywords::{keyword, normalize, Themes, STOP_WORDS};
use crate::rng::{unit_f32, SplitMix64};

/// Linear RGB-ish colour with channels in `[0, 1]` (treated as sRGB values).
pub type Rgb = [f32; 3];

/// Most extra prompt words that become their own hashed prop shape.
pub const PROPS_MAX: usize = 6;
/// Most colours in a scene's key palette (used by the mosaic style).
pub const PALETTE_COLORS_MAX: usize = 16;

/// Shape kinds a non-keyword word can turn into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropKind {
    /// A filled disc floating in the sky.
    Orb,
    /// A circle outline.
    Ring,
    /// A tall slab standing on the horizon.
    Monolith,
    /// A few small "v" birds.
    Flock,
    /// A filled diamond.
    Diamond,
}

/// One hashed shape (positions/sizes are fractions of the canvas).
#[derive(Debug, Clone)]
pub struct Prop {
    /// What to draw.
    pub kind: PropKind,
    /// Centre x as a fraction of width.
    pub x: f32,
    /// Centre (or base, for monoliths) y as a fraction of height.
    pub y: f32,
    /// Size as a fraction of the shorter side.
    pub size: f32,
    /// Fill colour.
    pub color: Rgb,
    /// Per-prop salt for any internal variation.
    pub salt: u64,
}

/// Sun or moon.
#[derive(Debug, Clone)]
pub struct Celestial {
    /// Centre x (fraction of width).
    pub x: f32,
    /// Centre y (fraction of height).
    pub y: f32,
    /// Disc radius (fraction of the shorter side).
    pub radius: f32,
    /// Disc colour.
    pub color: Rgb,
    /// Halo colour.
    pub glow: Rgb,
    /// Halo radius as a multiple of the disc radius.
    pub glow_scale: f32,
    /// Moons get a few darker craters.
    pub moon: bool,
}

/// A soft cloud made of overlapping elliptical puffs.
#[derive(Debug, Clone)]
pub struct Cloud {
    /// Puffs as (centre x, centre y, radius x, radius y), fractions of width/height.
    pub puffs: Vec<[f32; 4]>,
    /// Cloud colour.
    pub color: Rgb,
    /// Peak opacity.
    pub alpha: f32,
}

/// One silhouette ridgeline, filled from its line to the bottom.
#[derive(Debug, Clone)]
pub struct Ridge {
    /// Lowest point of the ridgeline (fraction of height).
    pub base: f32,
    /// Peak height above `base` (fraction of height).
    pub amp: f32,
    /// Coarsest noise frequency in features per width.
    pub freq: f32,
    /// Number of noise octaves (more = rougher).
    pub octaves: u32,
    /// `true` for sharp mountain peaks, `false` for rolling hills / dunes.
    pub jagged: bool,
    /// Noise lattice salt.
    pub salt: u64,
    /// Colour at the ridgeline.
    pub top: Rgb,
    /// Colour at the bottom of the canvas.
    pub bottom: Rgb,
    /// Snow line (fraction of height) and snow colour; pixels above are snow.
    pub snow: Option<(f32, Rgb)>,
}

impl Ridge {
    /// Ridgeline height in `[0, 1]` (1 = highest peak) at horizontal position `u` in `[0, 1]`.
    pub fn profile(&self, u: f32) -> f32 {
        let mut sum = 0.0;
        let mut norm = 0.0;
        let mut amp = 1.0;
        let mut f = self.freq;
        for o in 0..self.octaves.max(1) {
            let n = value_noise(self.salt.wrapping_add(u64::from(o)), u * f);
            let n = if self.jagged {
                1.0 - (2.0 * n - 1.0).abs()
            } else {
                n
            };
            sum += n * amp;
            norm += amp;
            amp *= 0.5;
            f *= 2.1;
        }
        sum / norm
    }

    /// Ridgeline y (fraction of height) at horizontal position `u`.
    pub fn line_y(&self, u: f32) -> f32 {
        self.base - self.amp * self.profile(u)
    }
}

/// Smooth 1D value noise in `[0, 1]`.
pub fn value_noise(salt: u64, t: f32) -> f32 {
    let t = t.max(0.0);
    let i = t.floor();
    let f = t - i;
    let i = i as u64;
    let a = unit_f32(crate::rng::hash2(salt, i, 0));
    let b = unit_f32(crate::rng::hash2(salt, i + 1, 0));
    let s = f * f * (3.0 - 2.0 * f);
    a + (b - a) * s
}

/// City skyline.
#[derive(Debug, Clone)]
pub struct City {
    /// Buildings as (left x, right x, top y), fractions; all stand on `ground`.
    pub buildings: Vec<[f32; 3]>,
    /// Back-layer buildings (hazier, drawn first).
    pub back: Vec<[f32; 3]>,
    /// Ground line (fraction of height).
    pub ground: f32,
    /// Facade colour of the front layer.
    pub body: Rgb,
    /// Facade colour of the back layer.
    pub body_back: Rgb,
    /// Lit-window / neon colours.
    pub lights: Vec<Rgb>,
    /// Neon sign outlines as (x0, y0, x1, y1, colour index).
    pub signs: Vec<([f32; 4], usize)>,
    /// Salt for which windows are lit.
    pub salt: u64,
}

/// Pine trees standing on a ridge.
#[derive(Debug, Clone)]
pub struct Trees {
    /// Index into `Scene::ridges` of the ridge the trees stand on.
    pub ridge: usize,
    /// Trees as (x, height, half-width), fractions of width/height/width.
    pub items: Vec<[f32; 3]>,
    /// Foliage colour.
    pub color: Rgb,
}

/// Reflective band at the bottom (water, or glowing lava when `lava`).
#[derive(Debug, Clone)]
pub struct Water {
    /// Top of the band (fraction of height).
    pub top: f32,
    /// Tint colour mixed into the reflection.
    pub tint: Rgb,
    /// Tint strength at the top edge, `[0, 1]`.
    pub tint_strength: f32,
    /// Ripple/streak salt.
    pub salt: u64,
    /// Lava glows instead of reflecting calmly.
    pub lava: bool,
}

/// Everything needed to paint one picture, independent of resolution.
#[derive(Debug, Clone)]
pub struct Scene {
    /// Recognised themes (kept for inspection and tests).
    #[allow(dead_code)]
    pub themes: Themes,
    /// Sky gradient stops as (y fraction, colour), ascending y.
    pub sky: Vec<(f32, Rgb)>,
    /// Sun or moon.
    pub celestial: Option<Celestial>,
    /// Stars per 10 000 px² of sky area.
    pub star_density: f32,
    /// Lowest y (fraction) where stars may appear.
    pub star_floor: f32,
    /// Clouds.
    pub clouds: Vec<Cloud>,
    /// Ridges from farthest to nearest.
    pub ridges: Vec<Ridge>,
    /// Optional city skyline.
    pub city: Option<City>,
    /// Optional trees.
    pub trees: Option<Trees>,
    /// Hashed word shapes.
    pub props: Vec<Prop>,
    /// Optional water / lava band.
    pub water: Option<Water>,
    /// Stream seed for per-pixel details (stars, windows).
    pub detail_seed: u64,
}

/// HSL (hue in degrees, saturation and lightness in `[0, 1]`) to RGB.
pub fn hsl(h: f32, s: f32, l: f32) -> Rgb {
    let h = h.rem_euclid(360.0) / 60.0;
    let s = s.clamp(0.0, 1.0);
    let l = l.clamp(0.0, 1.0);
    let c = (1.0 - (2.0 * l - 1.0).abs()) * s;
    let x = c * (1.0 - (h % 2.0 - 1.0).abs());
    let (r, g, b) = match h as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let m = l - c / 2.0;
    [r + m, g + m, b + m]
}

/// Linear interpolation between two colours.
pub fn mix(a: Rgb, b: Rgb, t: f32) -> Rgb {
    let t = t.clamp(0.0, 1.0);
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

/// Multiplies a colour's channels by `k` (clamped to `[0, 1]`).
pub fn shade(c: Rgb, k: f32) -> Rgb {
    [
        (c[0] * k).clamp(0.0, 1.0),
        (c[1] * k).clamp(0.0, 1.0),
        (c[2] * k).clamp(0.0, 1.0),
    ]
}

/// Takes the first 8 bytes of a digest as a little-endian `u64`.
fn digest_u64(d: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

impl Scene {
    /// Interprets `prompt` under `seed` into a scene.
    ///
    /// The picture-level random stream is seeded from
    /// `SHA-256(normalized prompt ‖ 0x00 ‖ seed as little-endian u64)`, so
    /// any change to the words or the seed changes hues, shapes and layout.
    pub fn from_prompt(prompt: &str, seed: u64) -> Scene {
        let words = normalize(prompt);
        let mut hasher = Sha256::new();
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                hasher.update(b" ");
            }
            hasher.update(w.as_bytes());
        }
        hasher.update([0u8]);
        hasher.update(seed.to_le_bytes());
        let digest = hasher.finalize();
        let mut rng =
            SplitMix64::new(digest_u64(&digest[..8]) ^ digest_u64(&digest[8..16]).rotate_left(17));

        let mut themes = Themes::default();
        let mut extra: Vec<&str> = Vec::new();
        for w in words.iter().take(crate::keywords::SCAN_WORDS_MAX) {
            if let Some(set) = keyword(w) {
                set(&mut themes);
            } else if !STOP_WORDS.contains(&w.as_str()) && !extra.contains(&w.as_str()) {
                extra.push(w);
            }
        }
        build(themes, &extra, seed, &mut rng)
    }

    /// Key colours of the scene, most important first, at most
    /// [`PALETTE_COLORS_MAX`]; the mosaic style quantizes to these.
    pub fn palette(&self) -> Vec<Rgb> {
        let mut out: Vec<Rgb> = Vec::new();
        let mut push = |c: Rgb| {
            let near = out
                .iter()
                .any(|o| (o[0] - c[0]).abs() + (o[1] - c[1]).abs() + (o[2] - c[2]).abs() < 0.06);
            if !near && out.len() < PALETTE_COLORS_MAX {
                out.push(c);
            }
        };
        for (_, c) in &self.sky {
            push(*c);
        }
        // Midpoints keep gradients from banding into too few steps.
        for pair in self.sky.windows(2) {
            push(mix(pair[0].1, pair[1].1, 0.5));
        }
        if let Some(c) = &self.celestial {
            push(c.color);
            push(c.glow);
        }
        for r in self.ridges.iter().rev() {
            push(r.top);
            if let Some((_, s)) = r.snow {
                push(s);
            }
        }
        if let Some(t) = &self.trees {
            push(t.color);
        }
        if let Some(c) = &self.city {
            push(c.body);
            for l in &c.lights {
                push(*l);
            }
        }
        if let Some(w) = &self.water {
            push(w.tint);
        }
        for p in &self.props {
            push(p.color);
        }
        for r in self.ridges.iter().rev() {
            push(r.bottom);
        }
        for c in &self.clouds {
            push(c.color);
        }
        push([1.0, 1.0, 0.95]);
        out
    }
}

/// Builds the scene from recognised themes, the leftover words and the picture stream.
fn build(themes: Themes, extra: &[&str], seed: u64, rng: &mut SplitMix64) -> Scene {
    let t = themes;
    let base_hue = rng.range_f32(0.0, 360.0);
    let jitter = |rng: &mut SplitMix64, d: f32| rng.range_f32(-d, d);
    let dark_sky = t.night || t.space || (t.city && !t.sunset && !t.day);

    // --- sky -------------------------------------------------------------
    let (top, mid, horizon_c) = if t.fire {
        (
            hsl(350.0 + jitter(rng, 8.0), 0.6, 0.10),
            hsl(10.0 + jitter(rng, 8.0), 0.85, 0.30),
            hsl(28.0 + jitter(rng, 6.0), 1.0, 0.55),
        )
    } else if t.sunset {
        (
            hsl(305.0 + jitter(rng, 15.0), 0.45, 0.26),
            hsl(345.0 + jitter(rng, 10.0), 0.70, 0.55),
            hsl(30.0 + jitter(rng, 8.0), 0.95, 0.62),
        )
    } else if t.space {
        (
            hsl(240.0 + jitter(rng, 20.0), 0.5, 0.03),
            hsl(base_hue, 0.55, 0.14),
            hsl(base_hue + 40.0 + jitter(rng, 30.0), 0.5, 0.22),
        )
    } else if dark_sky {
        let h = if t.city { 265.0 } else { 228.0 };
        (
            hsl(h + jitter(rng, 10.0), 0.55, 0.05),
            hsl(h + jitter(rng, 10.0), 0.50, 0.12),
            hsl(
                h + 5.0 + jitter(rng, 10.0),
                0.45,
                if t.city { 0.28 } else { 0.22 },
            ),
        )
    } else if t.snow {
        (
            hsl(205.0 + jitter(rng, 10.0), 0.45, 0.62),
            hsl(200.0 + jitter(rng, 10.0), 0.40, 0.80),
            hsl(195.0 + jitter(rng, 10.0), 0.30, 0.92),
        )
    } else if t.desert {
        (
            hsl(210.0 + jitter(rng, 10.0), 0.55, 0.58),
            hsl(200.0 + jitter(rng, 10.0), 0.40, 0.75),
            hsl(45.0 + jitter(rng, 8.0), 0.55, 0.85),
        )
    } else if t.day || t.forest || t.water || t.mountain {
        (
            hsl(212.0 + jitter(rng, 12.0), 0.65, 0.50),
            hsl(205.0 + jitter(rng, 12.0), 0.60, 0.68),
            hsl(195.0 + jitter(rng, 15.0), 0.45, 0.86),
        )
    } else {
        // No theme at all: the prompt hash picks the whole palette.
        let sat = rng.range_f32(0.35, 0.8);
        (
            hsl(base_hue, sat, rng.range_f32(0.15, 0.45)),
            hsl(base_hue + 30.0, sat, rng.range_f32(0.45, 0.65)),
            hsl(base_hue + 60.0, sat * 0.9, rng.range_f32(0.65, 0.85)),
        )
    };
    let horizon = if t.water {
        rng.range_f32(0.58, 0.68)
    } else {
        rng.range_f32(0.68, 0.80)
    };
    let sky = vec![
        (0.0, top),
        (horizon * 0.55, mid),
        (horizon, horizon_c),
        (1.0, horizon_c),
    ];

    // --- sun / moon ----------------------------------------------------------
    let mut celestial = if t.sunset || (t.fire && rng.chance(0.5)) {
        Some(Celestial {
            x: rng.range_f32(0.2, 0.8),
            y: horizon - rng.range_f32(0.06, 0.16),
            radius: rng.range_f32(0.06, 0.10),
            color: hsl(40.0 + jitter(rng, 10.0), 1.0, 0.78),
            glow: hsl(25.0 + jitter(rng, 10.0), 1.0, 0.6),
            glow_scale: 4.5,
            moon: false,
        })
    } else if t.night || (dark_sky && rng.chance(0.5)) {
        Some(Celestial {
            x: rng.range_f32(0.15, 0.85),
            y: rng.range_f32(0.12, 0.35),
            radius: rng.range_f32(0.035, 0.065),
            color: [0.93, 0.93, 0.86],
            glow: hsl(220.0, 0.4, 0.5),
            glow_scale: 3.0,
            moon: true,
        })
    } else if t.space {
        None
    } else if t.day || t.desert || rng.chance(0.6) {
        Some(Celestial {
            x: rng.range_f32(0.15, 0.85),
            y: rng.range_f32(0.12, 0.3),
            radius: rng.range_f32(0.035, 0.06),
            color: [1.0, 0.98, 0.88],
            glow: mix(mid, [1.0, 0.95, 0.8], 0.6),
            glow_scale: 3.5,
            moon: false,
        })
    } else {
        None
    };

    let star_density = if t.space {
        22.0
    } else if t.night {
        10.0
    } else if dark_sky {
        4.0
    } else {
        0.0
    };

    // --- clouds -----------------------------------------------------------------
    let cloud_color = if t.sunset || t.fire {
        hsl(15.0 + jitter(rng, 15.0), 0.7, 0.72)
    } else if dark_sky {
        hsl(230.0, 0.2, 0.25)
    } else {
        [0.97, 0.97, 1.0]
    };
    let n_clouds = if t.space { 0 } else { rng.range_u32(0, 4) };
    let clouds = (0..n_clouds)
        .map(|_| {
            let cx = rng.range_f32(0.0, 1.0);
            let cy = rng.range_f32(0.08, horizon * 0.6);
            let w = rng.range_f32(0.08, 0.2);
            let n = rng.range_u32(3, 6);
            let puffs = (0..n)
                .map(|_| {
                    [
                        cx + rng.range_f32(-w, w),
                        cy + rng.range_f32(-0.015, 0.01),
                        rng.range_f32(0.04, 0.09),
                        rng.range_f32(0.015, 0.035),
                    ]
                })
                .collect();
            Cloud {
                puffs,
                color: cloud_color,
                alpha: rng.range_f32(0.45, 0.8),
            }
        })
        .collect();

    // --- ground colours -----------------------------------------------------
    let (near, far_haze) = if t.snow {
        (
            hsl(
                215.0 + jitter(rng, 10.0),
                0.25,
                if dark_sky { 0.35 } else { 0.62 },
            ),
            horizon_c,
        )
    } else if t.forest {
        (
            hsl(
                125.0 + jitter(rng, 20.0),
                0.55,
                if dark_sky { 0.08 } else { 0.22 },
            ),
            horizon_c,
        )
    } else if t.desert {
        (
            hsl(
                36.0 + jitter(rng, 6.0),
                0.65,
                if dark_sky { 0.25 } else { 0.50 },
            ),
            horizon_c,
        )
    } else if t.fire {
        (hsl(0.0 + jitter(rng, 10.0), 0.5, 0.06), horizon_c)
    } else if t.sunset {
        (hsl(275.0 + jitter(rng, 15.0), 0.35, 0.12), horizon_c)
    } else if dark_sky {
        (hsl(230.0 + jitter(rng, 10.0), 0.4, 0.05), horizon_c)
    } else if t.water || t.mountain || t.day {
        (hsl(150.0 + jitter(rng, 40.0), 0.3, 0.25), horizon_c)
    } else {
        (
            hsl(base_hue + 180.0 + jitter(rng, 30.0), 0.45, 0.2),
            horizon_c,
        )
    };

    // --- ridges -------------------------------------------------------------------
    let water_top = horizon;
    let no_terrain =
        t.space && !(t.mountain || t.forest || t.snow || t.desert || t.fire || t.water);
    let n_ridges = if no_terrain {
        0
    } else if t.mountain {
        rng.range_u32(4, 5)
    } else if t.city {
        1
    } else {
        rng.range_u32(2, 3)
    };
    let ground_bottom = if t.water { water_top } else { 1.0 };
    let mut ridges = Vec::new();
    for i in 0..n_ridges {
        let depth = if n_ridges > 1 {
            i as f32 / (n_ridges - 1) as f32
        } else {
            1.0
        }; // 0 far .. 1 near
        let (amp, jagged, octaves, freq) = if t.mountain {
            (
                rng.range_f32(0.18, 0.30) * (1.0 - 0.35 * depth),
                true,
                5,
                rng.range_f32(1.5, 3.0),
            )
        } else if t.desert {
            (rng.range_f32(0.05, 0.10), false, 2, rng.range_f32(1.0, 2.0))
        } else {
            (
                rng.range_f32(0.05, 0.12),
                rng.chance(0.3),
                3,
                rng.range_f32(1.5, 3.5),
            )
        };
        let base = if t.water {
            water_top - 0.005 + 0.01 * depth
        } else {
            horizon - 0.06 + (ground_bottom - horizon) * 0.55 * depth
        };
        let haze = (1.0 - depth) * 0.75;
        let top = mix(near, far_haze, haze);
        let bottom = mix(shade(near, 0.6), far_haze, haze * 0.8);
        // Without a snow theme only the farther, sunlit peaks keep a cap.
        let snow =
            if t.snow || (t.mountain && !t.desert && !t.fire && depth < 0.6 && rng.chance(0.5)) {
                let line = if t.snow {
                    base - amp * 0.45
                } else {
                    base - amp * 0.72
                };
                let sc = if dark_sky {
                    hsl(220.0, 0.25, 0.62)
                } else {
                    [0.96, 0.97, 1.0]
                };
                Some((line, mix(sc, far_haze, haze * 0.6)))
            } else {
                None
            };
        ridges.push(Ridge {
            base,
            amp,
            freq,
            octaves,
            jagged,
            salt: rng.next_u64(),
            top,
            bottom,
            snow,
        });
    }

    // A setting sun sits just on the highest silhouette, partly hidden by it.
    if let (Some(sun), true) = (celestial.as_mut(), t.sunset && !ridges.is_empty()) {
        let crest = ridges
            .iter()
            .map(|r| r.line_y(sun.x))
            .fold(f32::MAX, f32::min);
        sun.y = sun.y.min(crest - sun.radius * 0.35);
    }

    // --- city -----------------------------------------------------------------------
    let city = t.city.then(|| {
        let ground = if t.water { water_top } else { horizon + 0.08 };
        let layer = |lo: f32, hi: f32, rng: &mut SplitMix64| {
            let mut v = Vec::new();
            let mut x = rng.range_f32(-0.05, 0.0);
            while x < 1.0 && v.len() < 64 {
                let w = rng.range_f32(0.035, 0.09);
                v.push([x, x + w, ground - rng.range_f32(lo, hi)]);
                x += w + rng.range_f32(0.0, 0.02);
            }
            v
        };
        let back = layer(0.2, 0.45, rng);
        let buildings = layer(0.08, 0.32, rng);
        let lights = vec![
            hsl(320.0 + jitter(rng, 15.0), 1.0, 0.6),
            hsl(185.0 + jitter(rng, 10.0), 1.0, 0.55),
            hsl(45.0 + jitter(rng, 8.0), 0.9, 0.65),
            hsl(275.0 + jitter(rng, 15.0), 0.9, 0.65),
        ];
        let signs = (0..rng.range_u32(2, 5))
            .map(|_| {
                let b = buildings[rng.range_u32(0, buildings.len() as u32 - 1) as usize];
                let y0 = b[2] + rng.range_f32(0.02, 0.06);
                let h = rng.range_f32(0.02, 0.05);
                (
                    [b[0] + 0.006, y0, b[1] - 0.006, (y0 + h).min(ground - 0.01)],
                    rng.range_u32(0, 3) as usize,
                )
            })
            .collect();
        City {
            buildings,
            back,
            ground,
            body: hsl(260.0 + jitter(rng, 20.0), 0.3, 0.07),
            body_back: mix(hsl(260.0, 0.3, 0.12), horizon_c, 0.3),
            lights,
            signs,
            salt: rng.next_u64(),
        }
    });

    // --- trees -------------------------------------------------------------------
    let trees = (t.forest && !ridges.is_empty()).then(|| {
        let ridge = ridges.len() - 1;
        let n = rng.range_u32(18, 45);
        let items = (0..n)
            .map(|_| {
                [
                    rng.range_f32(0.0, 1.0),
                    rng.range_f32(0.06, 0.16),
                    rng.range_f32(0.015, 0.03),
                ]
            })
            .collect();
        Trees {
            ridge,
            items,
            color: shade(near, 0.55),
        }
    });

    // --- props from extra words -------------------------------------------------
    let mut props: Vec<Prop> = Vec::new();
    if t.space {
        // A large planet, hue from the prompt hash.
        props.push(Prop {
            kind: PropKind::Orb,
            x: rng.range_f32(0.2, 0.8),
            y: rng.range_f32(0.25, 0.55),
            size: rng.range_f32(0.12, 0.2),
            color: hsl(base_hue + 180.0, 0.55, 0.5),
            salt: rng.next_u64(),
        });
    }
    props.extend(extra.iter().take(PROPS_MAX).map(|w| {
        // Kind and hue come from the word itself; placement from the word and seed.
        let d = Sha256::digest(w.as_bytes());
        let word_bits = digest_u64(&d[..8]);
        let mut wr =
            SplitMix64::new(word_bits ^ seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ rng.next_u64());
        let kind = match word_bits % 5 {
            0 => PropKind::Orb,
            1 => PropKind::Ring,
            2 => PropKind::Monolith,
            3 => PropKind::Flock,
            _ => PropKind::Diamond,
        };
        let hue = unit_f32(word_bits.rotate_left(23)) * 360.0;
        let light = if dark_sky { 0.6 } else { 0.45 };
        let (y, size) = match kind {
            PropKind::Monolith => (horizon + wr.range_f32(0.0, 0.05), wr.range_f32(0.08, 0.2)),
            PropKind::Flock => (wr.range_f32(0.1, horizon * 0.7), wr.range_f32(0.015, 0.03)),
            _ => (wr.range_f32(0.1, horizon * 0.75), wr.range_f32(0.025, 0.07)),
        };
        Prop {
            kind,
            x: wr.range_f32(0.08, 0.92),
            y,
            size,
            color: hsl(hue, 0.7, light),
            salt: wr.next_u64(),
        }
    }));

    // --- water ----------------------------------------------------------------------
    let water = if t.water {
        Some(Water {
            top: water_top,
            tint: hsl(
                205.0 + jitter(rng, 15.0),
                0.6,
                if dark_sky { 0.08 } else { 0.3 },
            ),
            tint_strength: 0.25,
            salt: rng.next_u64(),
            lava: false,
        })
    } else if t.fire {
        Some(Water {
            top: rng.range_f32(0.82, 0.9),
            tint: hsl(18.0 + jitter(rng, 8.0), 1.0, 0.5),
            tint_strength: 0.6,
            salt: rng.next_u64(),
            lava: true,
        })
    } else {
        None
    };

    Scene {
        themes,
        sky,
        celestial,
        star_density,
        star_floor: horizon,
        clouds,
        ridges,
        city,
        trees,
        props,
        water,
        detail_seed: rng.next_u64(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keywords_map_to_themes() {
        let s = Scene::from_prompt("a snowy night over the sea with a forest", 1);
        assert!(s.themes.snow && s.themes.night && s.themes.water && s.themes.forest);
        assert!(!s.themes.city && !s.themes.fire);
        assert!(s.water.is_some() && s.trees.is_some());
        // "season" must not trigger the exact keyword "sea".
        assert!(!Scene::from_prompt("season", 1).themes.water);
        let m = Scene::from_prompt("mountains", 3);
        assert!(m.themes.mountain && m.ridges.len() >= 4);
    }

    #[test]
    fn extra_words_become_props_up_to_the_limit() {
        let s = Scene::from_prompt("alpha bravo charlie delta echo foxtrot golf hotel", 1);
        assert_eq!(s.props.len(), PROPS_MAX);
        assert!(Scene::from_prompt("the a of", 1).props.is_empty());
    }

    #[test]
    fn palette_is_bounded_and_nonempty() {
        let s = Scene::from_prompt(
            "neon city at night by the ocean with fire and snow mountains forest",
            9,
        );
        let p = s.palette();
        assert!(!p.is_empty() && p.len() <= PALETTE_COLORS_MAX);
    }

    #[test]
    fn hsl_primaries() {
        let r = hsl(0.0, 1.0, 0.5);
        assert!((r[0] - 1.0).abs() < 1e-5 && r[1].abs() < 1e-5 && r[2].abs() < 1e-5);
        let b = hsl(240.0, 1.0, 0.5);
        assert!(b[2] > 0.99 && b[0] < 0.01);
        let g = hsl(-240.0, 1.0, 0.5); // wraps to 120
        assert!(g[1] > 0.99);
    }
}
