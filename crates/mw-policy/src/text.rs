//! Text normalisation shared by the pre-screen and the rules classifier.

use unicode_normalization::UnicodeNormalization;

/// Invisible formatting characters (Unicode category Cf: zero-width spaces and
/// joiners, soft hyphens, word joiners, bidirectional controls, byte-order marks).
/// They change nothing a reader sees, so they must not split a keyword either.
fn invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF9}'..='\u{FFFB}'
            | '\u{E0000}'..='\u{E007F}'
    )
}

/// Cyrillic and Greek letters that look like Latin ones, as their Latin twin:
/// `frаud` with a Cyrillic `а` reads, and must match, as `fraud`. Capitals are
/// folded before lowercasing (Greek `Ν` looks like `N`, its lowercase `ν` like `v`).
/// English and Spanish text never needs these letters as themselves.
fn latin_twin(c: char) -> char {
    match c {
        'А' | 'Α' => 'A',
        'В' | 'Β' => 'B',
        'С' | 'Ϲ' => 'C',
        'Е' | 'Ε' => 'E',
        'Н' | 'Η' => 'H',
        'І' | 'Ι' => 'I',
        'Ј' => 'J',
        'К' | 'Κ' => 'K',
        'М' | 'Μ' => 'M',
        'Ν' => 'N',
        'О' | 'Ο' => 'O',
        'Р' | 'Ρ' => 'P',
        'Ѕ' => 'S',
        'Т' | 'Τ' => 'T',
        'Х' | 'Χ' => 'X',
        'У' | 'Υ' | 'Ү' => 'Y',
        'Ζ' => 'Z',
        'а' | 'α' => 'a',
        'с' | 'ϲ' => 'c',
        'ԁ' => 'd',
        'е' | 'ё' | 'є' | 'ε' => 'e',
        'һ' => 'h',
        'і' | 'ї' | 'ι' => 'i',
        'ј' => 'j',
        'κ' => 'k',
        'п' | 'η' => 'n',
        'о' | 'ο' | 'σ' => 'o',
        'р' | 'ρ' => 'p',
        'ԛ' => 'q',
        'ѕ' => 's',
        'υ' | 'ս' => 'u',
        'ν' | 'ѵ' => 'v',
        'ԝ' | 'ω' => 'w',
        'х' | 'χ' => 'x',
        'у' | 'γ' => 'y',
        other => other,
    }
}

/// Lowercase, Unicode NFKD with combining marks dropped (`envío` → `envio`),
/// invisible formatting characters dropped, Cyrillic/Greek look-alikes of Latin
/// letters folded to Latin, curly quotes made straight, whitespace runs collapsed
/// to one space, trimmed.
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
        if unicode_normalization::char::is_combining_mark(c) || invisible(c) {
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
        out.extend(latin_twin(c).to_lowercase().map(latin_twin));
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

    #[test]
    fn invisible_characters_and_look_alike_letters_do_not_hide_words() {
        assert_eq!(normalize("charge\u{200B}back"), "chargeback");
        assert_eq!(normalize("law\u{00AD}yer\u{FEFF}"), "lawyer");
        assert_eq!(normalize("dis\u{202E}pute"), "dispute");
        assert_eq!(normalize("fr\u{0430}ud"), "fraud");
        assert_eq!(normalize("ΑΤΤΟRΝΕΥ"), "attorney");
        assert_eq!(normalize("СНАRGЕВАСК"), "chargeback");
        assert_eq!(normalize("ａｂｏｇａｄｏ"), "abogado");
    }
}
