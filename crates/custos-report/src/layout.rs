//! Pages as positioned items: the report's [`Contents`] broken into lines,
//! table rows and A4 pages, with every page's footer ("page N of M" and the
//! checkpoint). Pure: text widths come from a [`Measure`] (the font's glyph
//! advances in the PDF, a fixed width in tests), and the result is a list
//! of [`Page`]s that the PDF writer only draws.
//!
//! Coordinates are PDF points from the page's top-left corner, `y` down;
//! a text item's `y` is its baseline.

use crate::model::Contents;
use crate::text;

/// A4 width in points.
pub const PAGE_W: f32 = 595.28;
/// A4 height in points.
pub const PAGE_H: f32 = 841.89;
/// Margin on every side.
pub const MARGIN: f32 = 36.0;
/// Height kept for the footer above the bottom margin.
pub const FOOTER_H: f32 = 26.0;
/// Width between the margins.
pub const CONTENT_W: f32 = PAGE_W - 2.0 * MARGIN;
/// Most lines one table cell shows (a cell longer than a page is cut, with
/// an ellipsis, so a row always fits on one page).
pub const MAX_CELL_LINES: usize = 40;
/// Padding inside a table cell.
const PAD: f32 = 2.0;
/// Line height as a multiple of the font size.
const LEADING: f32 = 1.3;

/// Which of the two faces a text uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Face {
    /// Proportional, Chinese and Latin.
    Sans,
    /// Monospaced, for hashes and ids.
    Mono,
}

/// Glyph advances, for line breaking.
pub trait Measure {
    /// The advance of `c` in `face`, in ems (multiply by the font size).
    fn advance(&self, face: Face, c: char) -> f32;

    /// The width of `text` at `size` points.
    fn width(&self, face: Face, size: f32, text: &str) -> f32 {
        text.chars().map(|c| self.advance(face, c)).sum::<f32>() * size
    }
}

/// One thing drawn on a page.
#[derive(Debug, Clone, PartialEq)]
pub enum Item {
    /// A line of text; `y` is its baseline.
    Text {
        /// Left edge.
        x: f32,
        /// Baseline.
        y: f32,
        /// Font size in points.
        size: f32,
        /// Which face.
        face: Face,
        /// The text (one line).
        text: String,
    },
    /// A straight line.
    Line {
        /// Start x.
        x1: f32,
        /// Start y.
        y1: f32,
        /// End x.
        x2: f32,
        /// End y.
        y2: f32,
    },
    /// A filled grey rectangle (a table header's background).
    Shade {
        /// Left.
        x: f32,
        /// Top.
        y: f32,
        /// Width.
        w: f32,
        /// Height.
        h: f32,
    },
    /// A QR code of `payload`, `size` points square, top-left at (x, y).
    Qr {
        /// Left.
        x: f32,
        /// Top.
        y: f32,
        /// Side.
        size: f32,
        /// What it encodes.
        payload: String,
    },
}

/// One A4 page.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Page {
    /// What is drawn on it, in drawing order.
    pub items: Vec<Item>,
}

impl Page {
    /// Every text item's text, in drawing order (for tests).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.items.iter().filter_map(|i| match i {
            Item::Text { text, .. } => Some(text.as_str()),
            _ => None,
        })
    }
}

fn is_wide(c: char) -> bool {
    c >= '\u{2E80}'
}

/// Break `text` into lines no wider than `width` at `size` points: at its
/// newlines, after spaces and some punctuation, around CJK characters, and
/// inside a word (a hash) only when nothing else fits.
pub fn wrap(m: &dyn Measure, face: Face, size: f32, text: &str, width: f32) -> Vec<String> {
    let mut out = Vec::new();
    for para in text.split('\n') {
        let mut line = String::new();
        let mut w = 0.0f32;
        // Where the next line may start (byte index in `line`) and the
        // width before it.
        let mut brk: Option<(usize, f32)> = None;
        for c in para.chars() {
            let cw = m.advance(face, c) * size;
            while w + cw > width && !line.is_empty() {
                match brk.take() {
                    Some((i, wi)) if i < line.len() => {
                        let rest = line.split_off(i);
                        out.push(line.trim_end().to_owned());
                        line = rest;
                        w -= wi;
                    }
                    _ => {
                        out.push(std::mem::take(&mut line).trim_end().to_owned());
                        w = 0.0;
                    }
                }
            }
            if c == ' ' && line.is_empty() && !out.is_empty() {
                continue;
            }
            if is_wide(c) && !line.is_empty() {
                brk = Some((line.len(), w));
            }
            line.push(c);
            w += cw;
            if matches!(c, ' ' | '/' | ',' | '-' | '_' | '，' | '。' | '：') || is_wide(c) {
                brk = Some((line.len(), w));
            }
        }
        out.push(line);
    }
    out
}

/// A table column: its title, its share of the content width, its face.
#[derive(Debug, Clone, Copy)]
pub struct Column<'a> {
    /// The header text (may hold newlines).
    pub title: &'a str,
    /// Its share of [`CONTENT_W`] (the shares of a table add up to 1).
    pub share: f32,
    /// The face of its cells.
    pub face: Face,
}

/// Lays out pages top to bottom.
struct Cursor<'a> {
    m: &'a dyn Measure,
    pages: Vec<Page>,
    y: f32,
}

impl<'a> Cursor<'a> {
    fn new(m: &'a dyn Measure) -> Self {
        Cursor {
            m,
            pages: vec![Page::default()],
            y: MARGIN,
        }
    }

    fn bottom() -> f32 {
        PAGE_H - MARGIN - FOOTER_H
    }

    fn new_page(&mut self) {
        self.pages.push(Page::default());
        self.y = MARGIN;
    }

    /// Start a new page unless `h` points fit below the cursor (or the
    /// page is still empty).
    fn ensure(&mut self, h: f32) {
        if self.y + h > Self::bottom() && self.y > MARGIN {
            self.new_page();
        }
    }

    fn push(&mut self, item: Item) {
        // INVARIANT: pages is never empty (new() pushes one).
        if let Some(page) = self.pages.last_mut() {
            page.items.push(item);
        }
    }

    fn gap(&mut self, h: f32) {
        self.y += h;
    }

    fn paragraph(&mut self, text: &str, size: f32, face: Face, x: f32, width: f32) {
        let lh = size * LEADING;
        for line in wrap(self.m, face, size, text, width) {
            self.ensure(lh);
            self.y += lh;
            self.push(Item::Text {
                x,
                y: self.y - size * 0.3,
                size,
                face,
                text: line,
            });
        }
    }

    fn heading(&mut self, text: &str, size: f32) {
        self.ensure(size * LEADING * 3.0);
        self.gap(size * 0.6);
        self.paragraph(text, size, Face::Sans, MARGIN, CONTENT_W);
        self.gap(size * 0.4);
    }

    fn cell_lines(&self, text: &str, size: f32, face: Face, width: f32) -> Vec<String> {
        let mut lines = wrap(self.m, face, size, text, width - 2.0 * PAD);
        if lines.len() > MAX_CELL_LINES {
            lines.truncate(MAX_CELL_LINES);
            if let Some(last) = lines.last_mut() {
                last.push('…');
            }
        }
        lines
    }

    /// One row: every cell's lines side by side, a rule above and below,
    /// rules between the columns; `shade` for a header.
    fn row(&mut self, cols: &[Column<'_>], cells: &[Vec<String>], size: f32, shade: bool) {
        let lh = size * LEADING;
        let lines = cells.iter().map(Vec::len).max().unwrap_or(1).max(1);
        let h = lines as f32 * lh + 2.0 * PAD;
        let top = self.y;
        if shade {
            self.push(Item::Shade {
                x: MARGIN,
                y: top,
                w: CONTENT_W,
                h,
            });
        }
        let mut x = MARGIN;
        for (col, cell) in cols.iter().zip(cells) {
            let w = col.share * CONTENT_W;
            let face = if shade { Face::Sans } else { col.face };
            for (i, line) in cell.iter().enumerate() {
                self.push(Item::Text {
                    x: x + PAD,
                    y: top + PAD + (i as f32 + 1.0) * lh - size * 0.3,
                    size,
                    face,
                    text: line.clone(),
                });
            }
            self.push(Item::Line {
                x1: x,
                y1: top,
                x2: x,
                y2: top + h,
            });
            x += w;
        }
        self.push(Item::Line {
            x1: MARGIN + CONTENT_W,
            y1: top,
            x2: MARGIN + CONTENT_W,
            y2: top + h,
        });
        for y in [top, top + h] {
            self.push(Item::Line {
                x1: MARGIN,
                y1: y,
                x2: MARGIN + CONTENT_W,
                y2: y,
            });
        }
        self.y = top + h;
    }

    /// A table whose header is repeated on every page it runs onto.
    fn table(&mut self, cols: &[Column<'_>], rows: &[Vec<String>], size: f32) {
        let lh = size * LEADING;
        let header: Vec<Vec<String>> = cols
            .iter()
            .map(|c| self.cell_lines(c.title, size, Face::Sans, c.share * CONTENT_W))
            .collect();
        let header_h = header.iter().map(Vec::len).max().unwrap_or(1) as f32 * lh + 2.0 * PAD;
        let mut need_header = true;
        for row in rows {
            let cells: Vec<Vec<String>> = cols
                .iter()
                .zip(row)
                .map(|(c, text)| self.cell_lines(text, size, c.face, c.share * CONTENT_W))
                .collect();
            let h = cells.iter().map(Vec::len).max().unwrap_or(1) as f32 * lh + 2.0 * PAD;
            if self.y + h + if need_header { header_h } else { 0.0 } > Self::bottom() {
                self.new_page();
                need_header = true;
            }
            if need_header {
                self.row(cols, &header, size, true);
                need_header = false;
            }
            self.row(cols, &cells, size, false);
        }
    }
}

fn list_columns() -> Vec<Column<'static>> {
    let shares = [0.045, 0.17, 0.12, 0.16, 0.085, 0.105, 0.215, 0.10];
    text::LIST_COLUMNS
        .iter()
        .zip(shares)
        .enumerate()
        .map(|(i, (title, share))| Column {
            title,
            share,
            face: if i == 6 { Face::Mono } else { Face::Sans },
        })
        .collect()
}

fn timeline_columns() -> Vec<Column<'static>> {
    let shares = [0.055, 0.15, 0.14, 0.12, 0.285, 0.25];
    text::TIMELINE_COLUMNS
        .iter()
        .zip(shares)
        .enumerate()
        .map(|(i, (title, share))| Column {
            title,
            share,
            face: if i == 5 { Face::Mono } else { Face::Sans },
        })
        .collect()
}

fn plain_columns<'a>(titles: &'a [&'a str], shares: &[f32]) -> Vec<Column<'a>> {
    titles
        .iter()
        .zip(shares)
        .map(|(title, &share)| Column {
            title,
            share,
            face: Face::Sans,
        })
        .collect()
}

/// Side of a segment's QR code, in points.
pub const SEGMENT_QR: f32 = 64.0;
/// Side of the checkpoint's QR code, in points.
pub const CHECKPOINT_QR: f32 = 96.0;

/// Lay out the whole report: cover, list, one part per segment, then
/// every page's footer. `standalone` is a report made outside an export.
pub fn layout(m: &dyn Measure, c: &Contents, standalone: bool) -> Vec<Page> {
    let mut cur = Cursor::new(m);

    // 1. Cover.
    cur.paragraph(text::TITLE, 18.0, Face::Sans, MARGIN, CONTENT_W);
    cur.gap(4.0);
    cur.paragraph(text::TITLE_EN, 12.0, Face::Sans, MARGIN, CONTENT_W);
    cur.gap(10.0);
    let kv = plain_columns(&["项目 Item", "内容 Value"], &[0.26, 0.74]);
    let rows: Vec<Vec<String>> = c
        .cover
        .iter()
        .map(|(k, v)| vec![k.clone(), v.clone()])
        .collect();
    cur.table(&kv, &rows, 8.0);
    cur.heading(text::APPROVALS, 11.0);
    if c.approvals.is_empty() {
        cur.paragraph(text::NO_APPROVALS, 8.0, Face::Sans, MARGIN, CONTENT_W);
    } else {
        let cols = plain_columns(
            &text::APPROVAL_COLUMNS,
            &[0.17, 0.16, 0.22, 0.15, 0.15, 0.15],
        );
        let rows: Vec<Vec<String>> = c
            .approvals
            .iter()
            .map(|a| {
                vec![
                    format!("{}\n{}", a.request_id, a.status),
                    a.requester.clone(),
                    a.reason.clone(),
                    a.covers.clone(),
                    a.decided_by.clone().unwrap_or_else(|| "—".into()),
                    a.valid_until
                        .map(crate::model::time_text)
                        .unwrap_or_else(|| "—".into()),
                ]
            })
            .collect();
        cur.table(&cols, &rows, 7.5);
    }
    cur.gap(10.0);
    cur.ensure(CHECKPOINT_QR + 12.0);
    let top = cur.y;
    cur.push(Item::Qr {
        x: MARGIN,
        y: top,
        size: CHECKPOINT_QR,
        payload: c.checkpoint_qr.clone(),
    });
    let text_x = MARGIN + CHECKPOINT_QR + 10.0;
    let text_w = CONTENT_W - CHECKPOINT_QR - 10.0;
    cur.paragraph(text::CHECKPOINT_QR, 9.0, Face::Sans, text_x, text_w);
    for line in c.checkpoint_qr.lines() {
        cur.paragraph(line, 7.5, Face::Mono, text_x, text_w);
    }
    cur.y = cur.y.max(top + CHECKPOINT_QR);
    cur.gap(10.0);
    let (zh, en) = if standalone {
        (text::STANDALONE_ZH, text::STANDALONE_EN)
    } else {
        (text::HOW_TO_VERIFY_ZH, text::HOW_TO_VERIFY_EN)
    };
    cur.paragraph(zh, 8.5, Face::Sans, MARGIN, CONTENT_W);
    cur.gap(4.0);
    cur.paragraph(en, 8.5, Face::Sans, MARGIN, CONTENT_W);

    // 2. The list of electronic data.
    cur.new_page();
    cur.heading(text::LIST, 12.0);
    let rows: Vec<Vec<String>> = c
        .files
        .iter()
        .map(|f| {
            vec![
                f.number.to_string(),
                format!("{}\n{}", f.bundle_path, f.original_name),
                format!("{}\n民警 officer {}", f.recorder, f.officer),
                f.recorded.clone(),
                format!("{}\n{}", f.duration, f.size),
                f.format.clone(),
                f.digests.clone(),
                f.flags.clone(),
            ]
        })
        .collect();
    cur.table(&list_columns(), &rows, 6.5);
    cur.heading(text::COVERAGE, 11.0);
    cur.paragraph(text::COVERAGE_NOTE, 7.5, Face::Sans, MARGIN, CONTENT_W);
    cur.gap(3.0);
    if c.coverage.is_empty() {
        cur.paragraph(text::NO_COVERAGE, 7.5, Face::Sans, MARGIN, CONTENT_W);
    } else {
        let cols = plain_columns(&text::COVERAGE_COLUMNS, &[0.13, 0.09, 0.2, 0.3, 0.28]);
        let rows: Vec<Vec<String>> = c.coverage.iter().map(|r| r.to_vec()).collect();
        cur.table(&cols, &rows, 7.0);
    }

    // 3. Per segment, its QR code and custody timeline.
    for seg in &c.segments {
        cur.ensure(SEGMENT_QR + 60.0);
        cur.heading(&format!("片段 Segment {}", seg.segment_id), 11.0);
        let top = cur.y;
        cur.push(Item::Qr {
            x: MARGIN + CONTENT_W - SEGMENT_QR,
            y: top,
            size: SEGMENT_QR,
            payload: seg.qr.clone(),
        });
        for line in &seg.caption {
            cur.paragraph(line, 7.0, Face::Mono, MARGIN, CONTENT_W - SEGMENT_QR - 8.0);
        }
        cur.y = cur.y.max(top + SEGMENT_QR);
        cur.heading(text::TIMELINE, 9.5);
        let rows: Vec<Vec<String>> = seg
            .timeline
            .iter()
            .map(|r| {
                vec![
                    r.seq.to_string(),
                    r.time.clone(),
                    r.actor.clone(),
                    r.action.clone(),
                    r.details.clone(),
                    r.leaf.clone(),
                ]
            })
            .collect();
        cur.table(&timeline_columns(), &rows, 6.0);
        cur.heading(text::ACCESS, 9.5);
        if seg.access.is_empty() {
            cur.paragraph(text::NO_ACCESS, 7.0, Face::Sans, MARGIN, CONTENT_W);
        } else {
            let cols = plain_columns(&text::ACCESS_COLUMNS, &[0.07, 0.18, 0.2, 0.2, 0.35]);
            let rows: Vec<Vec<String>> = seg
                .access
                .iter()
                .map(|a| {
                    vec![
                        a.seq.to_string(),
                        a.time.clone(),
                        a.who.clone(),
                        a.what.clone(),
                        a.approval.clone(),
                    ]
                })
                .collect();
            cur.table(&cols, &rows, 6.5);
        }
    }

    // 4. Footers, now that the page count is known.
    let mut pages = cur.pages;
    let total = pages.len();
    let rule_y = PAGE_H - MARGIN - FOOTER_H + 6.0;
    for (i, page) in pages.iter_mut().enumerate() {
        page.items.push(Item::Line {
            x1: MARGIN,
            y1: rule_y,
            x2: MARGIN + CONTENT_W,
            y2: rule_y,
        });
        page.items.push(Item::Text {
            x: MARGIN,
            y: rule_y + 9.0,
            size: 7.0,
            face: Face::Sans,
            text: text::page_of(i + 1, total),
        });
        for (j, line) in wrap(m, Face::Sans, 6.5, &c.footer, CONTENT_W)
            .into_iter()
            .take(2)
            .enumerate()
        {
            page.items.push(Item::Text {
                x: MARGIN,
                y: rule_y + 18.0 + j as f32 * 8.0,
                size: 6.5,
                face: Face::Sans,
                text: line,
            });
        }
    }
    pages
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Latin half an em, CJK a whole one.
    struct Fixed;
    impl Measure for Fixed {
        fn advance(&self, _: Face, c: char) -> f32 {
            if is_wide(c) {
                1.0
            } else {
                0.5
            }
        }
    }

    fn check(text: &str, width: f32, expect: &[&str]) {
        assert_eq!(wrap(&Fixed, Face::Sans, 10.0, text, width), expect);
    }

    #[test]
    fn wraps_at_spaces_cjk_and_inside_hashes() {
        check("ab cd ef", 30.0, &["ab cd", "ef"]);
        check("0123456789abcdef", 40.0, &["01234567", "89abcdef"]);
        check("电子数据清单", 30.0, &["电子数", "据清单"]);
        check("a\nb", 100.0, &["a", "b"]);
        check("", 100.0, &[""]);
    }

    #[test]
    fn no_wrapped_line_is_wider_than_asked() {
        let text = "SHA-256 e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855 电子数据提取固定清单 list";
        for width in [20.0, 37.0, 55.0, 120.0] {
            for line in wrap(&Fixed, Face::Sans, 10.0, text, width) {
                assert!(
                    Fixed.width(Face::Sans, 10.0, &line) <= width,
                    "{line:?} at {width}"
                );
            }
        }
    }
}
