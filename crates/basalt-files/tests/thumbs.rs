//! Thumbs of generated images in every PocketBase form and format, and image bombs refused
//! cleanly.

use basalt_files::thumbs::{ThumbError, ThumbFormat, ThumbLimits, generate};
use basalt_schema::thumb::ThumbSize;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// A `w`x`h` image: the top half red, the bottom half blue, a green band at the left.
fn picture(w: u32, h: u32) -> DynamicImage {
    DynamicImage::ImageRgb8(RgbImage::from_fn(w, h, |x, y| {
        if x < w / 10 {
            Rgb([0, 255, 0])
        } else if y < h / 2 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    }))
}

fn encode(img: &DynamicImage, format: ImageFormat) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

fn thumb(src: &[u8], spec: &str) -> Result<(DynamicImage, ThumbFormat), ThumbError> {
    let size = ThumbSize::parse(spec).expect("valid spec");
    let t = generate(src, size, &ThumbLimits::default())?;
    let img = image::load_from_memory(&t.bytes).expect("thumb decodes");
    assert_eq!((img.width(), img.height()), (t.width, t.height));
    Ok((img, t.format))
}

fn is_red(p: Rgb<u8>) -> bool {
    p[0] > 200 && p[1] < 60 && p[2] < 60
}

fn is_blue(p: Rgb<u8>) -> bool {
    p[2] > 200 && p[0] < 60 && p[1] < 60
}

#[test]
fn every_form_has_pocketbases_geometry() {
    let src = encode(&picture(400, 200), ImageFormat::Png);
    let dims = |spec: &str| {
        let (img, _) = thumb(&src, spec).expect(spec);
        (img.width(), img.height())
    };
    assert_eq!(dims("100x100"), (100, 100));
    assert_eq!(dims("50x80t"), (50, 80));
    assert_eq!(dims("50x80b"), (50, 80));
    // Fit keeps the 2:1 ratio inside the box, and never enlarges.
    assert_eq!(dims("100x100f"), (100, 50));
    assert_eq!(dims("1000x1000f"), (400, 200));
    // One side 0: scale by the other, keeping the ratio (enlarging if asked).
    assert_eq!(dims("0x50"), (100, 50));
    assert_eq!(dims("100x0"), (100, 50));
    assert_eq!(dims("800x0"), (800, 400));
}

#[test]
fn crops_keep_the_anchored_part() {
    // A tall source: 100x400, red on top, blue below.
    let src = encode(&picture(100, 400), ImageFormat::Png);
    let centre = |img: &DynamicImage| {
        img.to_rgb8()
            .get_pixel(img.width() / 2, img.height() / 2)
            .to_owned()
    };
    let (top, _) = thumb(&src, "100x100t").expect("top");
    assert!(is_red(centre(&top)), "top crop keeps the red top");
    let (bottom, _) = thumb(&src, "100x100b").expect("bottom");
    assert!(
        is_blue(centre(&bottom)),
        "bottom crop keeps the blue bottom"
    );
    // The centre crop straddles both halves.
    let (mid, _) = thumb(&src, "100x100").expect("centre");
    let rgb = mid.to_rgb8();
    assert!(is_red(*rgb.get_pixel(50, 5)) && is_blue(*rgb.get_pixel(50, 95)));
}

#[test]
fn thumbs_keep_the_source_format() {
    let img = picture(64, 48);
    let gif_src = {
        let rgba =
            DynamicImage::ImageRgba8(RgbaImage::from_pixel(64, 48, Rgba([10, 200, 10, 255])));
        encode(&rgba, ImageFormat::Gif)
    };
    for (src, want) in [
        (encode(&img, ImageFormat::Jpeg), ThumbFormat::Jpeg),
        (encode(&img, ImageFormat::Png), ThumbFormat::Png),
        (encode(&img, ImageFormat::WebP), ThumbFormat::WebP),
        (gif_src, ThumbFormat::Gif),
    ] {
        let size = ThumbSize::parse("16x16").expect("spec");
        let t = generate(&src, size, &ThumbLimits::default()).expect("thumb");
        assert_eq!(t.format, want);
        assert_eq!(ThumbFormat::detect(&t.bytes), Some(want));
        assert_eq!((t.width, t.height), (16, 16));
    }
    assert_eq!(ThumbFormat::Png.content_type(), "image/png");
}

#[test]
fn non_images_and_broken_images_are_refused() {
    let size = ThumbSize::parse("10x10").expect("spec");
    let limits = ThumbLimits::default();
    assert!(matches!(
        generate(b"just text", size, &limits),
        Err(ThumbError::UnsupportedFormat)
    ));
    let bmp = encode(&picture(8, 8), ImageFormat::Bmp);
    assert!(matches!(
        generate(&bmp, size, &limits),
        Err(ThumbError::UnsupportedFormat)
    ));
    let png = encode(&picture(64, 64), ImageFormat::Png);
    let cut = &png[..png.len() / 2];
    assert!(matches!(
        generate(cut, size, &limits),
        Err(ThumbError::Decode(_))
    ));
}

/// A PNG whose header declares `w`x`h` RGB pixels, followed by a tiny IDAT and IEND.
fn png_declaring(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc_input = kind.to_vec();
        crc_input.extend_from_slice(data);
        out.extend_from_slice(&crc_input);
        out.extend_from_slice(&crc32(&crc_input).to_be_bytes());
    }
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    chunk(&mut out, b"IHDR", &ihdr);
    // zlib stream of a few zero bytes: a real bomb would go on for gigabytes.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x63, 0x00, 0x00, 0x00, 0x01, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn image_bombs_are_refused_before_decoding() {
    let size = ThumbSize::parse("100x100").expect("spec");
    let limits = ThumbLimits::default();
    // Past the side limits (the decoder refuses at the header).
    let e = generate(&png_declaring(100_000, 100_000), size, &limits).expect_err("bomb");
    assert!(matches!(e, ThumbError::TooLarge { .. }), "{e:?}");
    // Within the side limits but past the pixel count.
    let e = generate(&png_declaring(10_000, 10_000), size, &limits).expect_err("bomb");
    assert!(
        matches!(
            e,
            ThumbError::TooLarge {
                width: 10_000,
                height: 10_000
            }
        ),
        "{e:?}"
    );
    // A thumb size past the limits is refused too, whatever the source.
    let src = encode(&picture(10, 10), ImageFormat::Png);
    let huge = ThumbSize::parse("100000x100000").expect("spec");
    assert!(matches!(
        generate(&src, huge, &limits),
        Err(ThumbError::TooLarge { .. })
    ));
    let wide = ThumbSize::parse("0x20000").expect("spec");
    assert!(matches!(
        generate(&src, wide, &limits),
        Err(ThumbError::TooLarge { .. })
    ));
}

#[test]
fn the_allocation_limit_applies() {
    let src = encode(&picture(1000, 1000), ImageFormat::Png);
    let tight = ThumbLimits {
        max_alloc: 64 * 1024,
        ..ThumbLimits::default()
    };
    let size = ThumbSize::parse("10x10").expect("spec");
    let e = generate(&src, size, &tight).expect_err("over the allocation limit");
    assert!(matches!(e, ThumbError::TooLarge { .. }), "{e:?}");
}
