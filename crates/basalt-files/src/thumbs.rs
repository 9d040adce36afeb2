//! Thumbnails of images in PocketBase's forms (see [`basalt_schema::thumb`]): `WxH` crops
//! to the centre, `WxHt` keeps the top, `WxHb` the bottom, `WxHf` fits inside without
//! cropping or enlarging, `0xH`/`Wx0` scale keeping the aspect ratio. Only the formats
//! PocketBase thumbs are read (JPEG, PNG, GIF's first frame, WebP) and the thumb is written
//! in the source's format.
//!
//! Decoding is bounded by [`ThumbLimits`]: the declared dimensions are checked before any
//! pixel is decoded, and every allocation of the decoder is capped, so an image bomb is a
//! clean [`ThumbError::TooLarge`]. Generation is CPU-bound: call it off the async runtime.

use std::io::Cursor;

use basalt_schema::thumb::{ThumbMode, ThumbSize};
use image::{DynamicImage, ImageFormat, ImageReader, Limits};

/// Bounds on the images a thumb is made from and on the thumbs made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbLimits {
    /// Widest source or thumb, in pixels.
    pub max_width: u32,
    /// Tallest source or thumb, in pixels.
    pub max_height: u32,
    /// Most pixels in a source or a thumb.
    pub max_pixels: u64,
    /// Most bytes the decoder may allocate.
    pub max_alloc: u64,
}

impl Default for ThumbLimits {
    /// Up to 50 megapixels (a large camera photo) and 16384 pixels a side.
    fn default() -> Self {
        ThumbLimits {
            max_width: 16_384,
            max_height: 16_384,
            max_pixels: 50_000_000,
            max_alloc: 256 << 20,
        }
    }
}

/// An image format thumbs are made for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbFormat {
    Jpeg,
    Png,
    Gif,
    WebP,
}

impl ThumbFormat {
    /// The format of `bytes` from its signature, when it is one thumbs are made for.
    pub fn detect(bytes: &[u8]) -> Option<ThumbFormat> {
        match image::guess_format(bytes).ok()? {
            ImageFormat::Jpeg => Some(ThumbFormat::Jpeg),
            ImageFormat::Png => Some(ThumbFormat::Png),
            ImageFormat::Gif => Some(ThumbFormat::Gif),
            ImageFormat::WebP => Some(ThumbFormat::WebP),
            _ => None,
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            ThumbFormat::Jpeg => "image/jpeg",
            ThumbFormat::Png => "image/png",
            ThumbFormat::Gif => "image/gif",
            ThumbFormat::WebP => "image/webp",
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            ThumbFormat::Jpeg => ImageFormat::Jpeg,
            ThumbFormat::Png => ImageFormat::Png,
            ThumbFormat::Gif => ImageFormat::Gif,
            ThumbFormat::WebP => ImageFormat::WebP,
        }
    }
}

/// A generated thumb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thumb {
    pub bytes: Vec<u8>,
    pub format: ThumbFormat,
    pub width: u32,
    pub height: u32,
}

/// Why no thumb was made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbError {
    #[error("not an image thumbs are made for (jpeg, png, gif, webp)")]
    UnsupportedFormat,
    /// The source or the thumb is past [`ThumbLimits`]: `width`x`height` is the size
    /// refused, 0x0 when the decoder refused on its own (header or allocation limit).
    #[error("the image or its thumb exceeds the size limits")]
    TooLarge { width: u64, height: u64 },
    #[error("the image cannot be decoded: {0}")]
    Decode(String),
    #[error("the thumb cannot be encoded: {0}")]
    Encode(String),
}

/// A thumb of `source` at `size`, in the source's format.
pub fn generate(source: &[u8], size: ThumbSize, limits: &ThumbLimits) -> Result<Thumb, ThumbError> {
    let format = ThumbFormat::detect(source).ok_or(ThumbError::UnsupportedFormat)?;
    let reader = || {
        let mut r = ImageReader::with_format(Cursor::new(source), format.image_format());
        let mut l = Limits::default();
        l.max_image_width = Some(limits.max_width);
        l.max_image_height = Some(limits.max_height);
        l.max_alloc = Some(limits.max_alloc);
        r.limits(l);
        r
    };
    let (w0, h0) = reader().into_dimensions().map_err(decode_err)?;
    check(u64::from(w0), u64::from(h0), limits)?;
    let img = reader().decode().map_err(decode_err)?;
    let (w0, h0) = (img.width(), img.height());
    if w0 == 0 || h0 == 0 {
        return Err(ThumbError::Decode("the image is empty".into()));
    }
    let img = resize(img, size, limits)?;
    let (width, height) = (img.width(), img.height());
    // JPEG has no alpha channel; the other formats keep what the source had.
    let img = match format {
        ThumbFormat::Jpeg => DynamicImage::ImageRgb8(img.into_rgb8()),
        _ => img,
    };
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format.image_format())
        .map_err(|e| ThumbError::Encode(e.to_string()))?;
    Ok(Thumb {
        bytes: out.into_inner(),
        format,
        width,
        height,
    })
}

fn decode_err(e: image::ImageError) -> ThumbError {
    match e {
        image::ImageError::Limits(_) => ThumbError::TooLarge {
            width: 0,
            height: 0,
        },
        other => ThumbError::Decode(other.to_string()),
    }
}

fn check(width: u64, height: u64, limits: &ThumbLimits) -> Result<(), ThumbError> {
    if width > u64::from(limits.max_width)
        || height > u64::from(limits.max_height)
        || width * height > limits.max_pixels
    {
        return Err(ThumbError::TooLarge { width, height });
    }
    Ok(())
}

/// `a * b / c` rounded, at least 1.
fn scale(a: u32, b: u32, c: u32) -> u64 {
    let (a, b, c) = (u64::from(a), u64::from(b), u64::from(c));
    ((a * b + c / 2) / c).max(1)
}

fn to_u32(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `img`, or the `crop` (x, y, width, height) of it, scaled to `w`x`h` with a Lanczos3
/// filter by `fast_image_resize` (SIMD convolution on 8-bit samples; alpha premultiplied
/// while filtering, so transparent pixels do not bleed their colour). Pixel layouts it
/// has no kernel for are converted to RGBA8 first.
fn scaled(
    img: &DynamicImage,
    crop: Option<(u32, u32, u32, u32)>,
    w: u32,
    h: u32,
) -> Result<DynamicImage, ThumbError> {
    use fast_image_resize::{FilterType, IntoImageView, ResizeAlg, ResizeOptions, Resizer};
    let converted;
    let src = if img.pixel_type().is_some() {
        img
    } else {
        converted = DynamicImage::ImageRgba8(img.to_rgba8());
        &converted
    };
    let mut options = ResizeOptions::new().resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3));
    if let Some((x, y, cw, ch)) = crop {
        options = options.crop(f64::from(x), f64::from(y), f64::from(cw), f64::from(ch));
    }
    let mut dst = DynamicImage::new(w, h, src.color());
    Resizer::new()
        .resize(src, &mut dst, &options)
        .map_err(|e| ThumbError::Encode(e.to_string()))?;
    Ok(dst)
}

fn resize(
    img: DynamicImage,
    size: ThumbSize,
    limits: &ThumbLimits,
) -> Result<DynamicImage, ThumbError> {
    let (w0, h0) = (img.width(), img.height());
    let (w, h) = (size.width, size.height);
    match size.mode {
        ThumbMode::KeepAspect => {
            let (nw, nh) = if w == 0 {
                (scale(w0, h, h0), u64::from(h))
            } else {
                (u64::from(w), scale(h0, w, w0))
            };
            check(nw, nh, limits)?;
            scaled(&img, None, to_u32(nw), to_u32(nh))
        }
        ThumbMode::Fit => {
            if w0 <= w && h0 <= h {
                return Ok(img);
            }
            // The side that must shrink most decides the scale.
            let (nw, nh) = if u64::from(w0) * u64::from(h) > u64::from(h0) * u64::from(w) {
                (u64::from(w), scale(h0, w, w0))
            } else {
                (scale(w0, h, h0), u64::from(h))
            };
            check(nw, nh, limits)?;
            scaled(&img, None, to_u32(nw), to_u32(nh))
        }
        ThumbMode::Center | ThumbMode::Top | ThumbMode::Bottom => {
            check(u64::from(w), u64::from(h), limits)?;
            // Crop the source to the thumb's aspect ratio first, then scale.
            let wider = u64::from(w0) * u64::from(h) > u64::from(h0) * u64::from(w);
            let (x, y, cw, ch) = if wider {
                let cw = to_u32(scale(h0, w, h)).min(w0);
                ((w0 - cw) / 2, 0, cw, h0)
            } else {
                let ch = to_u32(scale(w0, h, w)).min(h0);
                let y = match size.mode {
                    ThumbMode::Top => 0,
                    ThumbMode::Bottom => h0 - ch,
                    _ => (h0 - ch) / 2,
                };
                (0, y, w0, ch)
            };
            scaled(&img, Some((x, y, cw, ch)), w, h)
        }
    }
}
