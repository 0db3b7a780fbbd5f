//! plotters' bitmap backend with text set in the embedded DejaVu Sans by ab_glyph.
//!
//! Shapes go straight to `BitMapBackend`. Text does not go through plotters' font layer: its
//! `ttf` feature needs system fonts, and its `ab_glyph` feature (0.3.7) places each glyph without
//! its left side bearing, so letters sit unevenly ("fail ed", "U TC"). Here each glyph is placed at
//! its pen position with kerning, as a text renderer should.

use ab_glyph::{point, Font, FontRef, Glyph, PxScale, ScaleFont};
use plotters::prelude::BitMapBackend;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingBackend, DrawingErrorKind,
    FontStyle,
};

type BitMapError = <BitMapBackend<'static> as DrawingBackend>::ErrorType;

/// The two faces the chart uses.
pub struct Fonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
}

impl Fonts {
    pub fn load() -> Result<Fonts, String> {
        let face = |bytes: &'static [u8], name: &str| {
            FontRef::try_from_slice(bytes)
                .map_err(|_| format!("the embedded font {name} could not be read"))
        };
        Ok(Fonts {
            regular: face(dejavu::sans::regular(), "DejaVu Sans")?,
            bold: face(dejavu::sans::bold(), "DejaVu Sans Bold")?,
        })
    }

    /// Bold for bold text, regular for everything else; the family a style names is ignored, so
    /// no text can ask for a font that is not there.
    fn face(&self, style: FontStyle) -> &FontRef<'static> {
        match style {
            FontStyle::Bold => &self.bold,
            _ => &self.regular,
        }
    }
}

/// A line of text laid out from its top-left corner.
struct Layout {
    glyphs: Vec<Glyph>,
    width: i32,
    height: i32,
}

fn layout(font: &FontRef<'static>, size: f64, text: &str) -> Layout {
    let scale = PxScale::from(size as f32);
    let scaled = font.as_scaled(scale);
    let mut glyphs = Vec::with_capacity(text.len());
    let mut x = 0.0f32;
    let mut previous = None;
    for c in text.chars().filter(|c| !c.is_control()) {
        let id = scaled.glyph_id(c);
        if let Some(previous) = previous {
            x += scaled.kern(previous, id);
        }
        glyphs.push(id.with_scale_and_position(scale, point(x, scaled.ascent())));
        x += scaled.h_advance(id);
        previous = Some(id);
    }
    Layout {
        glyphs,
        width: x.ceil() as i32,
        height: scaled.height().ceil() as i32,
    }
}

pub struct Canvas<'a> {
    inner: BitMapBackend<'a>,
    fonts: &'a Fonts,
}

impl<'a> Canvas<'a> {
    /// Draws on `rgb`, a `width` x `height` RGB buffer.
    pub fn new(rgb: &'a mut [u8], (width, height): (u32, u32), fonts: &'a Fonts) -> Canvas<'a> {
        Canvas {
            inner: BitMapBackend::with_buffer(rgb, (width, height)),
            fonts,
        }
    }
}

impl DrawingBackend for Canvas<'_> {
    type ErrorType = BitMapError;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn draw_text<S: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &S,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<BitMapError>> {
        let color = style.color();
        if color.alpha == 0.0 {
            return Ok(());
        }
        let font = self.fonts.face(style.style());
        let line = layout(font, style.size(), text);
        let anchor = style.anchor();
        let dx = match anchor.h_pos {
            HPos::Left => 0,
            HPos::Center => -line.width / 2,
            HPos::Right => -line.width,
        };
        let dy = match anchor.v_pos {
            VPos::Top => 0,
            VPos::Center => -line.height / 2,
            VPos::Bottom => -line.height,
        };
        let rotation = style.transform();
        for glyph in line.glyphs {
            let Some(outline) = font.outline_glyph(glyph) else {
                continue; // a space
            };
            let bounds = outline.px_bounds();
            let (left, top) = (bounds.min.x as i32 + dx, bounds.min.y as i32 + dy);
            let mut drawn = Ok(());
            outline.draw(|x, y, coverage| {
                if drawn.is_err() || coverage <= 0.0 {
                    return;
                }
                let (x, y) = rotation.transform(left + x as i32, top + y as i32);
                let ink = BackendColor {
                    alpha: color.alpha * f64::from(coverage.min(1.0)),
                    rgb: color.rgb,
                };
                // Pixels off the canvas are dropped by the bitmap backend.
                drawn = self.inner.draw_pixel((pos.0 + x, pos.1 + y), ink);
            });
            drawn?;
        }
        Ok(())
    }

    fn estimate_text_size<S: BackendTextStyle>(
        &self,
        text: &str,
        style: &S,
    ) -> Result<(u32, u32), DrawingErrorKind<BitMapError>> {
        let line = layout(self.fonts.face(style.style()), style.size(), text);
        Ok((line.width.max(0) as u32, line.height.max(0) as u32))
    }
}
