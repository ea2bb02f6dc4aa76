//! Text normalisation shared by the pre-screen and the rules classifier.

use unicode_normalization::UnicodeNormalization;

/// Lowercase, Unicode NFKD with combining marks dropped (`envío` → `envio`),
/// curly quotes made straight, whitespace runs collapsed to one space, trimmed.
pub fn normalize(text: &str) -> String {
    if text.is_ascii() {
        return text
            .split_ascii_whitespace()
            .map(str::to_ascii_lowercase)
            .collect::<Vec<_>>()
            .join(" ");
    }
    let mut out = String::with_capacity(text.len());
    let mut pending_space = false;
    for c in text.nfkd() {
        if unicode_normalization::char::is_combining_mark(c) {
            continue;
        }
        let c = match c {
            '\u{2018}' | '\u{2019}' | '\u{201B}' | '\u{2032}' => '\'',
            '\u{201C}' | '\u{201D}' | '\u{201F}' | '\u{2033}' => '"',
            other => other,
        };
        if c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if pending_space {
            out.push(' ');
            pending_space = false;
        }
        out.extend(c.to_lowercase());
    }
    out
}

/// Number of whitespace-separated words.
pub fn word_count(text: &str) -> usize {
    text.split_whitespace().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation() {
        assert_eq!(
            normalize("  ¿Dónde está\n\n mi ENVÍO? "),
            "¿donde esta mi envio?"
        );
        assert_eq!(normalize("Don’t “quote”"), "don't \"quote\"");
        assert_eq!(normalize("Niño"), "nino");
        assert_eq!(word_count(" a  b\nc "), 3);
    }
}
