//! Text people read on authgate's pages that someone else chose (client names).

/// Checks a client name people will read on the consent page: no control characters, no
/// bidirectional overrides or isolates (U+202E can make `evil.exe` read `exe.live`), no
/// zero-width or other invisible characters that let one name pass for another.
pub fn check_display_name(name: &str) -> Result<(), String> {
    if name.trim().is_empty() {
        return Err("must not be empty".into());
    }
    match name.chars().find(|&c| is_hidden(c)) {
        Some(c) => Err(format!(
            "contains the invisible or control character U+{:04X}",
            c as u32
        )),
        None => Ok(()),
    }
}

/// Control characters (Cc), format characters (Cf: bidi controls, zero-width joiners, soft
/// hyphen, tags…), line and paragraph separators, and the blank fillers that render as
/// nothing.
fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(c as u32,
            0x00AD | 0x034F | 0x061C | 0x115F | 0x1160 | 0x17B4 | 0x17B5 | 0x180E
            | 0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890 | 0x0891 | 0x08E2
            | 0x200B..=0x200F | 0x2028..=0x202E | 0x2060..=0x206F
            | 0x2800 | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF | 0xFFA0 | 0xFFF9..=0xFFFB
            | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_refuse_invisible_characters() {
        assert!(check_display_name("Claude Code").is_ok());
        assert!(check_display_name("Überwachung 日本 🙂").is_ok());
        for bad in [
            "evil\u{202E}exe.txt",
            "a\u{200B}b",
            "x\u{2066}y\u{2069}",
            "tab\there",
            "line\nbreak",
            "\u{FEFF}bom",
            "   ",
            "tag\u{E0041}",
            "fill\u{3164}er",
        ] {
            assert!(check_display_name(bad).is_err(), "{bad:?}");
        }
    }
}
