//! Thumb sizes as file fields list them and `?thumb=` asks for them: `WxH` (crop to the
//! centre), `WxHt` (crop from the top), `WxHb` (crop from the bottom), `WxHf` (fit inside,
//! no crop), `0xH` and `Wx0` (resize keeping the aspect ratio).

use crate::error::FieldError;

/// How a thumb fills its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThumbMode {
    /// Fill the box, cropping what overflows around the centre.
    Center,
    /// Fill the box, keeping the top of the image.
    Top,
    /// Fill the box, keeping the bottom of the image.
    Bottom,
    /// Fit inside the box without cropping or enlarging.
    Fit,
    /// One side is 0: scale to the other side, keeping the aspect ratio.
    KeepAspect,
}

/// A parsed thumb size; at most one of `width` and `height` is 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThumbSize {
    pub width: u32,
    pub height: u32,
    pub mode: ThumbMode,
}

impl ThumbSize {
    /// Parses `WxH`, `WxHt`, `WxHb`, `WxHf`, `0xH` or `Wx0`; `None` for anything else
    /// (including `0x0` and sides beyond `u32`).
    pub fn parse(spec: &str) -> Option<ThumbSize> {
        let (w, rest) = spec.split_once('x')?;
        let (h, suffix) = match rest.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            Some((i, _)) => rest.split_at(i),
            None => (rest, ""),
        };
        if !is_digits(w) || !is_digits(h) {
            return None;
        }
        let (width, height): (u32, u32) = (w.parse().ok()?, h.parse().ok()?);
        let mode = match suffix {
            "" => ThumbMode::Center,
            "t" => ThumbMode::Top,
            "b" => ThumbMode::Bottom,
            "f" => ThumbMode::Fit,
            _ => return None,
        };
        match (width, height) {
            (0, 0) => None,
            (0, _) | (_, 0) => Some(ThumbSize {
                width,
                height,
                mode: ThumbMode::KeepAspect,
            }),
            _ => Some(ThumbSize {
                width,
                height,
                mode,
            }),
        }
    }
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Checks one entry of a file field's `thumbs` option with PocketBase's codes: a wrong
/// shape is `validation_match_invalid`, a zero size `validation_not_in_invalid`.
pub fn check_thumb_option(spec: &str) -> Result<(), FieldError> {
    if matches!(spec, "0x0" | "0x0t" | "0x0b" | "0x0f") {
        return Err(FieldError::new(
            "validation_not_in_invalid",
            "Must not be in list.",
        ));
    }
    let shaped = spec.split_once('x').is_some_and(|(w, rest)| {
        let h = rest.strip_suffix(['t', 'b', 'f']).unwrap_or(rest);
        is_digits(w) && is_digits(h)
    });
    if shaped {
        Ok(())
    } else {
        Err(FieldError::new(
            "validation_match_invalid",
            "Must be in a valid format.",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_pocketbase_form() {
        let size = |width, height, mode| {
            Some(ThumbSize {
                width,
                height,
                mode,
            })
        };
        let cases = [
            ("100x100", size(100, 100, ThumbMode::Center)),
            ("100x50t", size(100, 50, ThumbMode::Top)),
            ("100x50b", size(100, 50, ThumbMode::Bottom)),
            ("100x50f", size(100, 50, ThumbMode::Fit)),
            ("0x50", size(0, 50, ThumbMode::KeepAspect)),
            ("80x0", size(80, 0, ThumbMode::KeepAspect)),
            ("0x50t", size(0, 50, ThumbMode::KeepAspect)),
            ("00x10", size(0, 10, ThumbMode::KeepAspect)),
            ("0x0", None),
            ("0x0f", None),
            ("100X100", None),
            ("100x", None),
            ("x100", None),
            ("-1x5", None),
            ("1x1tb", None),
            ("10x10z", None),
            (" 1x1", None),
            ("1x1 ", None),
            ("99999999999x1", None),
            ("+1x1", None),
            ("", None),
        ];
        for (spec, want) in cases {
            assert_eq!(ThumbSize::parse(spec), want, "{spec:?}");
        }
    }

    /// Codes PocketBase 0.40 answered for these `thumbs` entries (probed).
    #[test]
    fn option_checks_match_pocketbase() {
        let cases = [
            ("100x100", None),
            ("0x50t", None),
            ("10x10f", None),
            ("00x10", None),
            ("99999999999x1", None),
            ("abc", Some("validation_match_invalid")),
            ("10x10z", Some("validation_match_invalid")),
            ("-1x5", Some("validation_match_invalid")),
            ("100X100", Some("validation_match_invalid")),
            ("100x100 ", Some("validation_match_invalid")),
            ("1x1tb", Some("validation_match_invalid")),
            ("0x0", Some("validation_not_in_invalid")),
            ("0x0t", Some("validation_not_in_invalid")),
            ("0x0b", Some("validation_not_in_invalid")),
            ("0x0f", Some("validation_not_in_invalid")),
        ];
        for (spec, want) in cases {
            let got = check_thumb_option(spec).err().map(|e| e.code);
            assert_eq!(got.as_deref(), want, "{spec:?}");
        }
    }
}
