//! Rasterizing a [`Scene`] into RGB8 pixels.
//!
//! This module owns every per-pixel loop: the sky gradient, sun/moon halo,
//! stars, clouds, ridge silhouettes (with snow caps and slope shading),
//! city skylines, trees, hashed props, the water/lava reflection band and
//! the mosaic (pixel-art) post-process. Work is kept cheap for debug builds:
//! colours are precomputed per row or per column, shapes only touch their
//! bounding boxes, and the only per-pixel `sqrt` is inside small halos.

use crate::rng::{hash2, unit_f32, SplitMix64};
use crate::scene::{mix, shade, PropKind, Rgb, Scene};

/// Target number of mosaic cells along the longer side.
pub const MOSAIC_CELLS_LONG_SIDE: u32 = 64;
/// Smallest mosaic cell edge in pixels.
pub const MOSAIC_CELL_PX_MIN: u32 = 4;
/// Smallest cell edge (pixels) that gets a darker grout line.
pub const MOSAIC_GROUT_CELL_PX_MIN: u32 = 6;

/// An RGB8 pixel buffer, row-major, 3 bytes per pixel.
#[derive(Debug, Clone)]
pub struct Canvas {
    /// Width in pixels.
    pub w: usize,
    /// Height in pixels.
    pub h: usize,
    /// `w * h * 3` bytes.
    pub px: Vec<u8>,
}

/// Converts a `[0, 1]` colour to RGB8.
fn to_u8(c: Rgb) -> [u8; 3] {
    [
        (c[0].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
        (c[1].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
        (c[2].clamp(0.0, 1.0) * 255.0 + 0.5) as u8,
    ]
}

/// Converts RGB8 to a `[0, 1]` colour.
fn to_f(c: [u8; 3]) -> Rgb {
    [
        f32::from(c[0]) / 255.0,
        f32::from(c[1]) / 255.0,
        f32::from(c[2]) / 255.0,
    ]
}

impl Canvas {
    /// Creates a black canvas.
    pub fn new(w: usize, h: usize) -> Canvas {
        Canvas {
            w,
            h,
            px: vec![0; w * h * 3],
        }
    }

    /// Reads one pixel (coordinates must be in range).
    fn get(&self, x: usize, y: usize) -> [u8; 3] {
        let i = (y * self.w + x) * 3;
        [self.px[i], self.px[i + 1], self.px[i + 2]]
    }

    /// Alpha-blends `c` over pixel `(x, y)`; out-of-range coordinates are ignored.
    fn blend(&mut self, x: i64, y: i64, c: [u8; 3], alpha: f32) {
        if x < 0 || y < 0 || x >= self.w as i64 || y >= self.h as i64 || alpha <= 0.0 {
            return;
        }
        let i = (y as usize * self.w + x as usize) * 3;
        let a = (alpha.min(1.0) * 256.0) as u32;
        for (d, s) in self.px[i..i + 3].iter_mut().zip(c) {
            *d = ((u32::from(*d) * (256 - a) + u32::from(s) * a) >> 8) as u8;
        }
    }

    /// Clamped pixel bounding box for a box in pixel units.
    fn clip(&self, x0: f32, y0: f32, x1: f32, y1: f32) -> (usize, usize, usize, usize) {
        let cx = |v: f32| v.clamp(0.0, self.w as f32) as usize;
        let cy = |v: f32| v.clamp(0.0, self.h as f32) as usize;
        (cx(x0.floor()), cy(y0.floor()), cx(x1.ceil()), cy(y1.ceil()))
    }
}

/// Scene layers, in painting order; `paint_scene` reports progress after each.
pub const LAYERS: u32 = 7;

/// Paints the whole scene; calls `on_layer(done, LAYERS)` after each layer.
pub fn paint_scene(
    scene: &Scene,
    w: usize,
    h: usize,
    on_layer: &mut dyn FnMut(u32, u32),
) -> Canvas {
    let mut c = Canvas::new(w, h);
    sky(&mut c, scene);
    on_layer(1, LAYERS);
    celestial(&mut c, scene);
    stars(&mut c, scene);
    clouds(&mut c, scene);
    on_layer(2, LAYERS);
    for (i, r) in scene.ridges.iter().enumerate() {
        ridge(&mut c, r);
        // Back city layer sits behind the nearest ridge.
        if i + 2 == scene.ridges.len() {
            if let Some(city) = &scene.city {
                buildings(
                    &mut c,
                    &city.back,
                    city.ground,
                    city.body_back,
                    None,
                    city.salt,
                );
            }
        }
    }
    on_layer(3, LAYERS);
    if let Some(city) = &scene.city {
        if scene.ridges.len() < 2 {
            buildings(
                &mut c,
                &city.back,
                city.ground,
                city.body_back,
                None,
                city.salt,
            );
        }
        buildings(
            &mut c,
            &city.buildings,
            city.ground,
            city.body,
            Some(&city.lights),
            city.salt ^ 1,
        );
        signs(&mut c, scene);
    }
    on_layer(4, LAYERS);
    trees(&mut c, scene);
    on_layer(5, LAYERS);
    props(&mut c, scene);
    on_layer(6, LAYERS);
    water(&mut c, scene);
    on_layer(7, LAYERS);
    c
}

/// Vertical sky gradient, one colour computed per row.
fn sky(c: &mut Canvas, s: &Scene) {
    let h = c.h as f32;
    let w = c.w;
    for (y, row) in c.px.chunks_exact_mut(w * 3).enumerate() {
        let v = (y as f32 + 0.5) / h;
        let mut col = s.sky.first().map(|p| p.1).unwrap_or([0.0; 3]);
        for pair in s.sky.windows(2) {
            let (a, b) = (pair[0], pair[1]);
            if v >= a.0 && v <= b.0 {
                let t = if b.0 > a.0 {
                    (v - a.0) / (b.0 - a.0)
                } else {
                    0.0
                };
                col = mix(a.1, b.1, t);
                break;
            }
            if v > b.0 {
                col = b.1;
            }
        }
        let rgb = to_u8(col);
        for p in row.chunks_exact_mut(3) {
            p.copy_from_slice(&rgb);
        }
    }
}

/// Sun or moon disc with a soft halo, touching only its bounding box.
fn celestial(c: &mut Canvas, s: &Scene) {
    let Some(sun) = &s.celestial else { return };
    let m = c.w.min(c.h) as f32;
    let (cx, cy) = (sun.x * c.w as f32, sun.y * c.h as f32);
    let r = (sun.radius * m).max(1.0);
    let gr = r * sun.glow_scale;
    let (x0, y0, x1, y1) = c.clip(cx - gr, cy - gr, cx + gr, cy + gr);
    let disc = to_u8(sun.color);
    let glow = to_u8(sun.glow);
    for y in y0..y1 {
        let dy = y as f32 + 0.5 - cy;
        for x in x0..x1 {
            let dx = x as f32 + 0.5 - cx;
            let d = (dx * dx + dy * dy).sqrt();
            if d < gr {
                let t = 1.0 - d / gr;
                c.blend(x as i64, y as i64, glow, t * t * 0.75);
            }
            if d < r + 1.0 {
                c.blend(x as i64, y as i64, disc, (r + 1.0 - d).min(1.0));
            }
        }
    }
    if sun.moon {
        let mut rng = SplitMix64::new(s.detail_seed ^ 0x4D00);
        let crater = to_u8(shade(sun.color, 0.82));
        for _ in 0..4 {
            let a = rng.range_f32(0.0, std::f32::consts::TAU);
            let dist = rng.range_f32(0.0, 0.6) * r;
            let (kx, ky) = (cx + a.cos() * dist, cy + a.sin() * dist);
            let kr = rng.range_f32(0.12, 0.28) * r;
            fill_disc(c, kx, ky, kr, crater, 0.6);
        }
    }
}

/// Anti-aliased filled disc in pixel units.
fn fill_disc(c: &mut Canvas, cx: f32, cy: f32, r: f32, col: [u8; 3], alpha: f32) {
    let (x0, y0, x1, y1) = c.clip(cx - r - 1.0, cy - r - 1.0, cx + r + 1.0, cy + r + 1.0);
    for y in y0..y1 {
        let dy = y as f32 + 0.5 - cy;
        for x in x0..x1 {
            let dx = x as f32 + 0.5 - cx;
            let d2 = dx * dx + dy * dy;
            if d2 < (r + 1.0) * (r + 1.0) {
                let cov = (r + 0.5 - d2.sqrt()).clamp(0.0, 1.0);
                c.blend(x as i64, y as i64, col, cov * alpha);
            }
        }
    }
}

/// Scattered stars above the horizon; a few bright ones get a small cross.
fn stars(c: &mut Canvas, s: &Scene) {
    if s.star_density <= 0.0 {
        return;
    }
    let floor = (s.star_floor * c.h as f32) as usize;
    let area = (c.w * floor) as f32;
    let n = (area / 10_000.0 * s.star_density) as u32;
    let mut rng = SplitMix64::new(s.detail_seed ^ 0x57A2);
    for _ in 0..n {
        let x = rng.range_u32(0, c.w as u32 - 1) as i64;
        let y = rng.range_u32(0, floor.max(1) as u32 - 1) as i64;
        let b = rng.next_f32();
        let tint = [
            0.85 + 0.15 * rng.next_f32(),
            0.88,
            0.9 + 0.1 * rng.next_f32(),
        ];
        let col = to_u8(tint);
        // Fade towards the horizon glow.
        let fade = 1.0 - (y as f32 / floor.max(1) as f32) * 0.7;
        c.blend(x, y, col, (0.35 + 0.65 * b) * fade);
        if b > 0.93 {
            for (dx, dy) in [(1, 0), (-1, 0), (0, 1), (0, -1)] {
                c.blend(x + dx, y + dy, col, 0.45 * fade);
            }
        }
    }
}

/// Soft clouds: coverage is the max over elliptical puffs, blended once.
fn clouds(c: &mut Canvas, s: &Scene) {
    let (w, h) = (c.w as f32, c.h as f32);
    for cl in &s.clouds {
        if cl.puffs.is_empty() {
            continue;
        }
        let col = to_u8(cl.color);
        let mut bb = [f32::MAX, f32::MAX, f32::MIN, f32::MIN];
        for p in &cl.puffs {
            bb[0] = bb[0].min((p[0] - p[2]) * w);
            bb[1] = bb[1].min((p[1] - p[3]) * h);
            bb[2] = bb[2].max((p[0] + p[2]) * w);
            bb[3] = bb[3].max((p[1] + p[3]) * h);
        }
        let (x0, y0, x1, y1) = c.clip(bb[0], bb[1], bb[2], bb[3]);
        for y in y0..y1 {
            let v = (y as f32 + 0.5) / h;
            for x in x0..x1 {
                let u = (x as f32 + 0.5) / w;
                let mut cov: f32 = 0.0;
                for p in &cl.puffs {
                    let dx = (u - p[0]) / p[2];
                    let dy = (v - p[1]) / p[3];
                    cov = cov.max(1.0 - (dx * dx + dy * dy));
                }
                if cov > 0.0 {
                    c.blend(x as i64, y as i64, col, (cov * 2.5).min(1.0) * cl.alpha);
                }
            }
        }
    }
}

/// One ridge silhouette with an anti-aliased edge, per-row colour gradient,
/// slope shading near the crest and an optional jagged snow cap.
fn ridge(c: &mut Canvas, r: &crate::scene::Ridge) {
    let (w, h) = (c.w, c.h);
    let hf = h as f32;
    // Per column: ridgeline y in pixels, slope shade, snow-line jitter.
    let line: Vec<f32> = (0..w)
        .map(|x| r.line_y((x as f32 + 0.5) / w as f32) * hf)
        .collect();
    // Slope over a window of ~1/150 of the width, so shading follows the
    // large faces of the ridge instead of striping every small crease.
    let k = (w / 150).max(1);
    let slope: Vec<f32> = (0..w)
        .map(|x| {
            let a = line[x.saturating_sub(k)];
            let b = line[(x + k).min(w - 1)];
            ((b - a) / (2 * k) as f32).clamp(-0.8, 0.8)
        })
        .collect();
    let snow_px: Vec<f32> = match r.snow {
        Some((s, _)) => (0..w)
            .map(|x| {
                (s + 0.03
                    * (crate::scene::value_noise(r.salt ^ 0x5A0, x as f32 / w as f32 * 40.0) - 0.5))
                    * hf
            })
            .collect(),
        None => Vec::new(),
    };
    let top_y = line.iter().cloned().fold(f32::MAX, f32::min).max(0.0) as usize;
    let fade_px = (hf * 0.08).max(2.0);
    let row_cols: Vec<Rgb> = (0..h)
        .map(|y| {
            let t = ((y as f32 / hf) - r.base + r.amp) / (1.0 - r.base + r.amp).max(0.01);
            mix(r.top, r.bottom, t)
        })
        .collect();
    let snow_col = r.snow.map(|(_, s)| s).unwrap_or([1.0; 3]);
    for (y, &base) in row_cols.iter().enumerate().skip(top_y.min(h)) {
        let yf = y as f32;
        let i0 = y * w * 3;
        for x in 0..w {
            let ly = line[x];
            let cov = yf + 1.0 - ly;
            if cov <= 0.0 {
                continue;
            }
            let depth = yf - ly;
            let mut col = base;
            if !snow_px.is_empty() && yf < snow_px[x] {
                col = snow_col;
            }
            if depth < fade_px {
                let k = 1.0 + slope[x] * 0.22 * (1.0 - depth.max(0.0) / fade_px);
                col = shade(col, k);
            }
            let rgb = to_u8(col);
            if cov >= 1.0 {
                let i = i0 + x * 3;
                c.px[i..i + 3].copy_from_slice(&rgb);
            } else {
                c.blend(x as i64, y as i64, rgb, cov);
            }
        }
    }
}

/// Rectangular buildings standing on `ground`; with `lights`, lit windows.
fn buildings(
    c: &mut Canvas,
    list: &[[f32; 3]],
    ground: f32,
    body: Rgb,
    lights: Option<&Vec<Rgb>>,
    salt: u64,
) {
    let (w, h) = (c.w as f32, c.h as f32);
    let body = to_u8(body);
    let m = c.w.min(c.h) as f32;
    let cell = (m / 90.0).max(2.0) as usize;
    let win = (cell / 2).max(1);
    let lights: Vec<[u8; 3]> = lights
        .map(|l| l.iter().map(|c| to_u8(*c)).collect())
        .unwrap_or_default();
    for (bi, b) in list.iter().enumerate() {
        let (x0, y0, x1, y1) = c.clip(b[0] * w, b[2] * h, b[1] * w, ground * h);
        for y in y0..y1 {
            let ry = y - y0;
            for x in x0..x1 {
                let rx = x - x0;
                let mut col = body;
                if !lights.is_empty()
                    && rx >= win
                    && x + win < x1
                    && rx % cell < win
                    && ry % cell < win
                    && ry > win
                {
                    let hsh = hash2(salt ^ bi as u64, (rx / cell) as u64, (ry / cell) as u64);
                    if hsh % 100 < 32 {
                        col = lights[((hsh >> 8) % lights.len() as u64) as usize];
                    }
                }
                let i = (y * c.w + x) * 3;
                c.px[i..i + 3].copy_from_slice(&col);
            }
        }
    }
}

/// Neon sign outlines with a faint inner glow.
fn signs(c: &mut Canvas, s: &Scene) {
    let Some(city) = &s.city else { return };
    let (w, h) = (c.w as f32, c.h as f32);
    let t = (c.w.min(c.h) / 256).max(1);
    for (r, li) in &city.signs {
        let col = to_u8(city.lights[*li % city.lights.len()]);
        let (x0, y0, x1, y1) = c.clip(r[0] * w, r[1] * h, r[2] * w, r[3] * h);
        for y in y0..y1 {
            for x in x0..x1 {
                let edge = x < x0 + t || x + t >= x1 || y < y0 + t || y + t >= y1;
                c.blend(x as i64, y as i64, col, if edge { 1.0 } else { 0.18 });
            }
        }
    }
}

/// Pine trees (stacked triangles) standing on their ridge.
fn trees(c: &mut Canvas, s: &Scene) {
    let Some(t) = &s.trees else { return };
    let Some(r) = s.ridges.get(t.ridge) else {
        return;
    };
    let (w, h) = (c.w as f32, c.h as f32);
    let col = to_u8(t.color);
    for it in &t.items {
        let base = r.line_y(it[0]) * h + 0.02 * h;
        let th = it[1] * h;
        let hw = it[2] * w;
        let cx = it[0] * w;
        let (_, y0, _, y1) = c.clip(cx, base - th, cx, base);
        for y in y0..y1 {
            let f = (y as f32 + 0.5 - (base - th)) / th; // 0 at tip .. 1 at base
                                                         // Three tiers give the pine silhouette its notches.
            let tier = (f * 3.0).fract() * 0.45 + 0.55;
            let half = hw * f * tier;
            let xa = (cx - half).floor() as i64;
            let xb = (cx + half).ceil() as i64;
            for x in xa..=xb {
                c.blend(x, y as i64, col, 1.0);
            }
        }
    }
}

/// Hashed word shapes: orbs, rings, monoliths, bird flocks and diamonds.
fn props(c: &mut Canvas, s: &Scene) {
    let (w, h) = (c.w as f32, c.h as f32);
    let m = c.w.min(c.h) as f32;
    for p in &s.props {
        let col = to_u8(p.color);
        let (cx, cy, r) = (p.x * w, p.y * h, (p.size * m).max(1.0));
        match p.kind {
            PropKind::Orb => {
                fill_disc(c, cx, cy, r, col, 0.9);
                fill_disc(
                    c,
                    cx - r * 0.35,
                    cy - r * 0.35,
                    r * 0.3,
                    to_u8(mix(p.color, [1.0; 3], 0.5)),
                    0.6,
                );
            }
            PropKind::Ring => {
                let th = (r * 0.18).max(1.0);
                let (x0, y0, x1, y1) =
                    c.clip(cx - r - 1.0, cy - r - 1.0, cx + r + 1.0, cy + r + 1.0);
                for y in y0..y1 {
                    for x in x0..x1 {
                        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
                        let d = (dx * dx + dy * dy).sqrt();
                        let cov = (th * 0.5 + 0.5 - (d - (r - th * 0.5)).abs()).clamp(0.0, 1.0);
                        c.blend(x as i64, y as i64, col, cov * 0.9);
                    }
                }
            }
            PropKind::Monolith => {
                let hw = r * 0.22;
                let (x0, y0, x1, y1) = c.clip(cx - hw, cy - r * 2.0, cx + hw, cy);
                let dark = to_u8(shade(p.color, 0.3));
                for y in y0..y1 {
                    for x in x0..x1 {
                        let rim = x < x0 + ((x1 - x0) / 6).max(1);
                        c.blend(x as i64, y as i64, if rim { col } else { dark }, 1.0);
                    }
                }
            }
            PropKind::Flock => {
                let mut rng = SplitMix64::new(p.salt);
                let dark = to_u8(shade(p.color, 0.25));
                for _ in 0..rng.range_u32(3, 7) {
                    let bx = cx + rng.range_f32(-6.0, 6.0) * r;
                    let by = cy + rng.range_f32(-2.0, 2.0) * r;
                    let len = (r * rng.range_f32(0.7, 1.2)).max(2.0) as i64;
                    let thick = (len / 6).max(1);
                    for i in 0..=len {
                        let yy = by as i64 - (i as f32 * 0.5) as i64;
                        for k in 0..thick {
                            c.blend(bx as i64 + i, yy + k, dark, 1.0);
                            c.blend(bx as i64 - i, yy + k, dark, 1.0);
                        }
                    }
                }
            }
            PropKind::Diamond => {
                let (x0, y0, x1, y1) = c.clip(cx - r, cy - r * 1.4, cx + r, cy + r * 1.4);
                for y in y0..y1 {
                    for x in x0..x1 {
                        let d = ((x as f32 + 0.5 - cx) / r).abs()
                            + ((y as f32 + 0.5 - cy) / (r * 1.4)).abs();
                        if d < 1.0 {
                            c.blend(x as i64, y as i64, col, ((1.0 - d) * r).min(1.0) * 0.9);
                        }
                    }
                }
            }
        }
    }
}

/// Water (mirror reflection with per-row ripples and streaks) or lava
/// (glowing, strongly tinted, bright crack rows).
fn water(c: &mut Canvas, s: &Scene) {
    let Some(wt) = &s.water else { return };
    let (w, h) = (c.w, c.h);
    let top = ((wt.top * h as f32) as usize).clamp(1, h);
    if top >= h {
        return;
    }
    let band = (h - top) as f32;
    let tint = wt.tint;
    let (above, below) = c.px.split_at_mut(top * w * 3);
    let amp = (w as f32 / 180.0).max(1.0);
    for (d, row) in below.chunks_exact_mut(w * 3).enumerate() {
        let df = d as f32 / band; // 0 at the shoreline .. 1 at the bottom
                                  // Ripple offset: one sin per row, growing with distance from shore.
        let off = (amp
            * (0.3 + 2.0 * df)
            * ((d as f32) * 0.9 + unit_f32(wt.salt) * std::f32::consts::TAU).sin())
            as i64;
        let src_y = top - 1 - ((d as f32 * 0.8) as usize).min(top - 1);
        let streak = unit_f32(hash2(wt.salt, d as u64 / 2, 7));
        let mut k = wt.tint_strength + 0.45 * df;
        let mut bright = 1.0 - 0.15 * df;
        if wt.lava {
            bright = 1.0 + if streak > 0.85 { 0.5 } else { 0.1 * streak };
        } else if streak > 0.92 {
            k *= 0.5;
            bright = 1.12;
        }
        let src_row = &above[src_y * w * 3..(src_y + 1) * w * 3];
        for (x, p) in row.chunks_exact_mut(3).enumerate() {
            let sx = (x as i64 + off).clamp(0, w as i64 - 1) as usize * 3;
            let src = to_f([src_row[sx], src_row[sx + 1], src_row[sx + 2]]);
            p.copy_from_slice(&to_u8(shade(mix(src, tint, k), bright)));
        }
    }
}

/// Mosaic post-process: quantizes a low-resolution rendering to `palette`
/// with 4×4 ordered dithering and blows it up into square tiles with grout.
pub fn mosaic(low: &Canvas, palette: &[Rgb], w: usize, h: usize, cell: usize) -> Canvas {
    const BAYER: [[f32; 4]; 4] = [
        [0.0, 8.0, 2.0, 10.0],
        [12.0, 4.0, 14.0, 6.0],
        [3.0, 11.0, 1.0, 9.0],
        [15.0, 7.0, 13.0, 5.0],
    ];
    let pal: Vec<Rgb> = if palette.is_empty() {
        vec![[0.0; 3], [1.0; 3]]
    } else {
        palette.to_vec()
    };
    let mut q = vec![[0u8; 3]; low.w * low.h];
    for y in 0..low.h {
        for x in 0..low.w {
            let d = (BAYER[y % 4][x % 4] / 16.0 - 0.47) * 0.12;
            let c = to_f(low.get(x, y));
            let c = [c[0] + d, c[1] + d, c[2] + d];
            let mut best = 0;
            let mut best_d = f32::MAX;
            for (i, p) in pal.iter().enumerate() {
                let (dr, dg, db) = (c[0] - p[0], c[1] - p[1], c[2] - p[2]);
                let dist = 0.3 * dr * dr + 0.59 * dg * dg + 0.11 * db * db;
                if dist < best_d {
                    best_d = dist;
                    best = i;
                }
            }
            q[y * low.w + x] = to_u8(pal[best]);
        }
    }
    let grout = cell >= MOSAIC_GROUT_CELL_PX_MIN as usize;
    let mut out = Canvas::new(w, h);
    for (y, row) in out.px.chunks_exact_mut(w * 3).enumerate() {
        let (cy, iy) = ((y / cell).min(low.h - 1), y % cell);
        let row_q = &q[cy * low.w..(cy + 1) * low.w];
        let edge_y = grout && iy == cell - 1;
        let light_y = grout && iy == 0;
        for (x, p) in row.chunks_exact_mut(3).enumerate() {
            let (cx, ix) = ((x / cell).min(low.w - 1), x % cell);
            let mut col = row_q[cx];
            if edge_y || (grout && ix == cell - 1) {
                col = [col[0] / 4 * 3, col[1] / 4 * 3, col[2] / 4 * 3];
            } else if light_y || (grout && ix == 0) {
                col = [
                    col[0].saturating_add(14),
                    col[1].saturating_add(14),
                    col[2].saturating_add(14),
                ];
            }
            p.copy_from_slice(&col);
        }
    }
    out
}

/// Mosaic cell edge in pixels for a `w`×`h` output.
pub fn mosaic_cell_px(w: u32, h: u32) -> u32 {
    (w.max(h) / MOSAIC_CELLS_LONG_SIDE).max(MOSAIC_CELL_PX_MIN)
}
