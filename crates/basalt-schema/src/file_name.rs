//! Stored file names: what an uploaded file is called in storage, derived from the name the
//! client sent the way PocketBase derives it, so that no client name can reach storage as
//! a path.
//!
//! The result is `{base}_{random}{ext}`: `base` is the client's name without directories
//! or extension, snake-cased to `[a-z0-9_]` (cut to 100 bytes; padded with 10 random
//! characters when shorter than 3), `random` is 10 characters of `[a-z0-9]`, and `ext` is
//! the client's extension (up to two parts, as `.tar.gz`) with only `[A-Za-z0-9_.*+=#-]`
//! kept and case preserved, cut to its last 20 characters; when nothing of it survives, the
//! extension detected from the content is used. A stored name therefore never contains
//! `/`, `\`, NUL, `..` as a segment or a reserved device name on its own.

use crate::id::random_id;

/// A new stored name for a file the client called `original` (already decoded; non-UTF-8
/// bytes converted lossily by the caller). `detected_ext` (`".png"`, or `""` when unknown)
/// stands in when the client's name has no usable extension.
pub fn stored_file_name(original: &str, detected_ext: &str) -> String {
    // Only the last path segment counts, as multipart parsers take a part's file name.
    let base = original
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    let original_ext = extension(base);
    let mut ext = clean_extension(original_ext);
    if ext.is_empty() {
        ext = clean_extension(detected_ext);
    }
    if ext.len() > 20 {
        // All ASCII after cleaning, so any byte index is a char boundary.
        ext = format!(".{}", &ext[ext.len() - 20..]);
    }
    let mut name = snake_case(&base[..base.len() - original_ext.len()]);
    if name.len() < 3 {
        name.push_str(&random_id(10));
    } else {
        name.truncate(100);
    }
    format!("{name}_{}{ext}", random_id(10))
}

/// The extension with its leading dot, including a second part (`x.tar.gz` -> `.tar.gz`).
fn extension(name: &str) -> &str {
    let Some(last) = name.rfind('.') else {
        return "";
    };
    match name[..last].rfind('.') {
        Some(second) => &name[second..],
        None => &name[last..],
    }
}

/// `.` + the allowed characters of `ext` without leading or trailing dots, or `""`.
fn clean_extension(ext: &str) -> String {
    let kept: String = ext
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.*-+=#".contains(*c))
        .collect();
    let core = kept.trim_matches('.');
    if core.is_empty() {
        String::new()
    } else {
        format!(".{core}")
    }
}

/// Words of ASCII letters and digits joined by `_`, lower-cased, with a `_` before an
/// upper-case letter that follows a non-upper-case one (`fooBar` -> `foo_bar`).
fn snake_case(s: &str) -> String {
    let mut out = String::new();
    for word in s
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
    {
        if !out.is_empty() {
            out.push('_');
        }
        let mut prev_upper = true;
        for c in word.chars() {
            if c.is_ascii_uppercase() && !prev_upper {
                out.push('_');
            }
            prev_upper = c.is_ascii_uppercase();
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Splits a stored name into (base, random, ext), checking the random part's shape.
    fn parts(stored: &str) -> (String, String) {
        let (stem, ext) = match stored.find('.') {
            Some(i) => (&stored[..i], &stored[i..]),
            None => (stored, ""),
        };
        let (base, random) = stem.rsplit_once('_').expect("a random suffix");
        assert_eq!(random.len(), 10, "{stored}");
        assert!(
            random
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        (base.to_string(), ext.to_string())
    }

    /// Names PocketBase 0.40 produced for these uploads (probed), without the random parts.
    #[test]
    fn names_match_pocketbase() {
        let cases: &[(&str, &str, &str, &str)] = &[
            // (client name, detected ext, base, ext)
            ("../../etc/pass wd.TXT", ".txt", "pass_wd", ".TXT"),
            ("/abs/path.txt", ".txt", "path", ".txt"),
            ("CON.txt", ".txt", "con", ".txt"),
            ("héllo wörld.TXT", ".txt", "h_llo_w_rld", ".TXT"),
            ("a.b.c.tar.GZ", "", "a_b_c", ".tar.GZ"),
            ("x y-z_w.TxT", "", "x_y_z_w", ".TxT"),
            ("a%00b.txt", "", "a_00b", ".txt"),
            ("aux", ".txt", "aux", ".txt"),
            ("file.t x t", ".txt", "file", ".txt"),
            ("C:\\win\\path.txt", "", "c_win_path", ".txt"),
            ("abc.", ".txt", "abc", ".txt"),
            ("abc..", ".txt", "abc", ".txt"),
            ("abcd.tar.gz.", "", "abcd_tar", ".gz"),
            ("abcd.x.", "", "abcd", ".x"),
            ("abc.é", ".txt", "abc", ".txt"),
            ("abc.a.b.c", "", "abc_a", ".b.c"),
            ("abcCamelCase.txt", "", "abc_camel_case", ".txt"),
            ("ABCDef.txt", "", "abcdef", ".txt"),
            ("a1B2c3.TXT", "", "a1_b2c3", ".TXT"),
            ("abc.+=#*-", "", "abc", ".+=#*-"),
            ("abc.x.+=#*-", "", "abc", ".x.+=#*-"),
            ("abc_", ".txt", "abc", ".txt"),
            ("__a__b__.txt", "", "a_b", ".txt"),
            ("abc.tx_t", "", "abc", ".tx_t"),
            ("abc", ".png", "abc", ".png"),
        ];
        for (client, detected, base, ext) in cases {
            let stored = stored_file_name(client, detected);
            assert_eq!(
                parts(&stored),
                (base.to_string(), ext.to_string()),
                "{client:?}"
            );
        }
    }

    #[test]
    fn short_or_empty_bases_get_a_random_part() {
        for (client, keep) in [
            (".hidden", ""),
            ("....", ""),
            ("日本語.txt", ""),
            ("ab", "ab"),
            ("x.é.txt", "x"),
            ("a.txt.", "a"),
            ("", ""),
        ] {
            let stored = stored_file_name(client, ".txt");
            let (base, _) = parts(&stored);
            assert_eq!(base.len(), keep.len() + 10, "{client:?} -> {stored}");
            assert!(base.starts_with(keep), "{client:?} -> {stored}");
        }
        assert!(stored_file_name(".hidden", "").ends_with(".hidden"));
    }

    #[test]
    fn long_names_and_extensions_are_cut() {
        let stored = stored_file_name(&format!("{}.txt", "a".repeat(300)), "");
        assert_eq!(parts(&stored), ("a".repeat(100), ".txt".into()));
        let stored = stored_file_name("a.VeryLongExtensionName123", "");
        assert!(stored.ends_with(".LongExtensionName123"), "{stored}");
        let huge = format!("{}.{}", "é".repeat(5000), "x".repeat(5000));
        assert!(stored_file_name(&huge, "").len() <= 100 + 1 + 10 + 21);
    }

    #[test]
    fn attack_names_never_reach_storage_as_paths() {
        let nul = "evil\0.txt\0.exe";
        let non_utf8 = String::from_utf8_lossy(b"\xff\xfe\x00../x\xc3.png").into_owned();
        for client in [
            "../../../../etc/passwd",
            "..",
            ".",
            "/",
            "//",
            "/etc/shadow",
            "..\\..\\windows\\system32\\config",
            nul,
            "CON",
            "NUL.txt",
            "com1.",
            "LPT9.tar.gz",
            "a/../../b.txt",
            "x.p\\h/p",
            non_utf8.as_str(),
            "%2e%2e%2fetc",
            "name\r\nContent-Type: text/html",
        ] {
            let stored = stored_file_name(client, "");
            assert!(
                !stored.contains('/') && !stored.contains('\\') && !stored.contains('\0'),
                "{client:?} -> {stored}"
            );
            assert!(!stored.starts_with('.'), "{client:?} -> {stored}");
            assert!(!stored.contains(".."), "{client:?} -> {stored}");
            assert!(
                stored
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.*-+=#".contains(c)),
                "{client:?} -> {stored}"
            );
            let (base, _) = parts(&stored);
            assert!(base.len() >= 3, "{client:?} -> {stored}");
        }
        assert_ne!(stored_file_name("a.txt", ""), stored_file_name("a.txt", ""));
    }
}
