//! Drawing laid-out [`Page`]s into a PDF with krilla: text in the report's
//! font (embedded as a subset: only the glyphs used), rules, header shading
//! and QR codes as filled squares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use krilla::color::luma;
use krilla::geom::{PathBuilder, Point, Rect, Size};
use krilla::metadata::Metadata;
use krilla::page::PageSettings;
use krilla::paint::{Fill, Stroke};
use krilla::surface::Surface;
use krilla::text::{Font, TextDirection};
use krilla::Document;
use qrcodegen::{QrCode, QrCodeEcc};
use skrifa::instance::{LocationRef, Size as FontSize};
use skrifa::{FontRef, MetadataProvider as _};

use crate::layout::{Face, Item, Measure, Page, PAGE_H, PAGE_W};
use crate::ReportError;

/// The report's font: a TrueType font or collection holding CJK glyphs.
/// Collection index 0 is the proportional face; index 1, when the
/// collection has one, the monospaced face (WenQuanYi Micro Hei's `.ttc`
/// holds both).
#[derive(Clone)]
pub struct ReportFont {
    data: Arc<Vec<u8>>,
    sans: Font,
    mono: Font,
    mono_index: u32,
    /// Advances measured so far (each character is measured once).
    advances: Arc<Mutex<HashMap<(Face, char), f32>>>,
}

impl std::fmt::Debug for ReportFont {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReportFont")
            .field("bytes", &self.data.len())
            .field("mono_index", &self.mono_index)
            .finish()
    }
}

impl ReportFont {
    /// Read a font file's bytes (the caller reads the file).
    pub fn new(data: Vec<u8>) -> Result<Self, ReportError> {
        let data = Arc::new(data);
        let sans = Font::new(krilla::Data::from(data.clone()), 0).ok_or(ReportError::Font)?;
        let (mono, mono_index) = match Font::new(krilla::Data::from(data.clone()), 1) {
            Some(f) => (f, 1),
            None => (sans.clone(), 0),
        };
        FontRef::from_index(&data, 0).map_err(|_| ReportError::Font)?;
        Ok(ReportFont {
            data,
            sans,
            mono,
            mono_index,
            advances: Arc::default(),
        })
    }

    fn font(&self, face: Face) -> &Font {
        match face {
            Face::Sans => &self.sans,
            Face::Mono => &self.mono,
        }
    }

    fn measure(&self, face: Face, c: char) -> f32 {
        let index = match face {
            Face::Sans => 0,
            Face::Mono => self.mono_index,
        };
        let Ok(font) = FontRef::from_index(&self.data, index) else {
            return 0.5;
        };
        let upem = font.head().map(|h| h.units_per_em()).unwrap_or(1000).max(1) as f32;
        let gid = font.charmap().map(c).unwrap_or_default();
        font.glyph_metrics(FontSize::unscaled(), LocationRef::default())
            .advance_width(gid)
            .unwrap_or(upem / 2.0)
            / upem
    }
}

use skrifa::raw::TableProvider as _;

impl Measure for ReportFont {
    fn advance(&self, face: Face, c: char) -> f32 {
        // A poisoned cache only holds correct advances: use it anyway.
        let mut cache = self.advances.lock().unwrap_or_else(|e| e.into_inner());
        *cache
            .entry((face, c))
            .or_insert_with(|| self.measure(face, c))
    }
}

fn line(surface: &mut Surface<'_>, x1: f32, y1: f32, x2: f32, y2: f32) {
    let mut pb = PathBuilder::new();
    pb.move_to(x1, y1);
    pb.line_to(x2, y2);
    if let Some(path) = pb.finish() {
        surface.set_fill(None);
        surface.set_stroke(Some(Stroke {
            width: 0.4,
            paint: luma::Color::new(90).into(),
            ..Stroke::default()
        }));
        surface.draw_path(&path);
        surface.set_stroke(None);
    }
}

fn fill_rects(surface: &mut Surface<'_>, rects: &[(f32, f32, f32, f32)], grey: u8) {
    let mut pb = PathBuilder::new();
    for &(x, y, w, h) in rects {
        if let Some(r) = Rect::from_xywh(x, y, w, h) {
            pb.push_rect(r);
        }
    }
    if let Some(path) = pb.finish() {
        surface.set_stroke(None);
        surface.set_fill(Some(Fill {
            paint: luma::Color::new(grey).into(),
            ..Fill::default()
        }));
        surface.draw_path(&path);
    }
}

/// The dark modules of `payload`'s QR code as squares inside a `size`
/// square at (x, y), with the standard four-module quiet zone.
fn qr_squares(
    x: f32,
    y: f32,
    size: f32,
    payload: &str,
) -> Result<Vec<(f32, f32, f32, f32)>, ReportError> {
    let qr = QrCode::encode_text(payload, QrCodeEcc::Medium).map_err(|_| ReportError::QrTooLong)?;
    let n = qr.size();
    let module = size / (n + 8) as f32;
    let mut squares = Vec::new();
    for row in 0..n {
        for col in 0..n {
            if qr.get_module(col, row) {
                squares.push((
                    x + (col + 4) as f32 * module,
                    y + (row + 4) as f32 * module,
                    module,
                    module,
                ));
            }
        }
    }
    Ok(squares)
}

/// Draw `pages` into a PDF document titled `title`.
pub fn render(pages: &[Page], font: &ReportFont, title: &str) -> Result<Vec<u8>, ReportError> {
    let mut doc = Document::new();
    doc.set_metadata(
        Metadata::new()
            .title(title.to_owned())
            .language("zh-CN".to_owned())
            .creator("Custos".to_owned()),
    );
    let size = Size::from_wh(PAGE_W, PAGE_H).ok_or(ReportError::Pdf("page size".into()))?;
    for page in pages {
        let mut p = doc.start_page_with(PageSettings::new(size));
        let mut surface = p.surface();
        for item in &page.items {
            if let Item::Shade { x, y, w, h } = item {
                fill_rects(&mut surface, &[(*x, *y, *w, *h)], 225);
            }
        }
        for item in &page.items {
            match item {
                Item::Text {
                    x,
                    y,
                    size,
                    face,
                    text,
                } => {
                    surface.set_stroke(None);
                    surface.set_fill(Some(Fill::default()));
                    surface.draw_text(
                        Point::from_xy(*x, *y),
                        font.font(*face).clone(),
                        *size,
                        text,
                        false,
                        TextDirection::Auto,
                    );
                }
                Item::Line { x1, y1, x2, y2 } => line(&mut surface, *x1, *y1, *x2, *y2),
                Item::Shade { .. } => {}
                Item::Qr {
                    x,
                    y,
                    size,
                    payload,
                } => fill_rects(&mut surface, &qr_squares(*x, *y, *size, payload)?, 0),
            }
        }
        surface.finish();
        p.finish();
    }
    doc.finish().map_err(|e| ReportError::Pdf(format!("{e:?}")))
}
