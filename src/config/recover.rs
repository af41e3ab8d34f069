//! Keeps reading past a bad key, so `check` reports every error of a file in one run. serde
//! stops at the first unknown key or wrong type; after recording it, the entry that holds it
//! (a `key = value` with its value's lines, or a whole table when its header is the problem)
//! is blanked out with spaces and the text is read again. Byte offsets never move, so every
//! error keeps its true line and column.

use toml::de::{DeTable, DeValue};
use toml::Spanned;

/// Blanks the entry containing byte `offset`; false when no entry contains it (nothing to
/// skip, so reading cannot go further).
pub fn blank_entry(text: &mut String, offset: usize) -> bool {
    let Ok(doc) = DeTable::parse(text) else {
        return false;
    };
    let Some(range) = find(doc.get_ref(), text, offset) else {
        return false;
    };
    let start = text[..range.start].rfind('\n').map_or(0, |i| i + 1);
    let end = text[range.end..]
        .find('\n')
        .map_or(text.len(), |i| range.end + i);
    // Replace every byte with a space, newlines kept: the result is valid UTF-8 of the same
    // length, so offsets and line numbers stay those of the file.
    let blanked: String = text[start..end]
        .bytes()
        .map(|b| if b == b'\n' { '\n' } else { ' ' })
        .collect();
    text.replace_range(start..end, &blanked);
    true
}

/// The span to blank for `offset`: the innermost leaf entry (key through value), else the
/// standard table whose header holds it (header through its last entry).
fn find(table: &DeTable, text: &str, offset: usize) -> Option<std::ops::Range<usize>> {
    for (key, value) in table.iter() {
        let kspan = key.span();
        let vspan = value.span();
        match value.get_ref() {
            DeValue::Table(t) if is_header(text, &vspan) => {
                if let Some(r) = find(t, text, offset) {
                    return Some(r);
                }
                if vspan.contains(&offset) {
                    return Some(vspan.start..table_end(t, &vspan));
                }
            }
            DeValue::Array(items) if is_array_of_tables(text, &vspan, items) => {
                for item in items.iter() {
                    let DeValue::Table(t) = item.get_ref() else {
                        continue;
                    };
                    let ispan = item.span();
                    if let Some(r) = find(t, text, offset) {
                        return Some(r);
                    }
                    if ispan.contains(&offset) {
                        return Some(ispan.start..table_end(t, &ispan));
                    }
                }
            }
            _ => {
                let entry = kspan.start.min(vspan.start)..kspan.end.max(vspan.end);
                if entry.contains(&offset) {
                    return Some(entry);
                }
            }
        }
    }
    None
}

/// A table written as `[name]` (its span is the header), not an inline `{ … }`.
fn is_header(text: &str, span: &std::ops::Range<usize>) -> bool {
    text.get(span.clone())
        .is_some_and(|t| t.starts_with('[') && !t.starts_with("[["))
}

fn is_array_of_tables(
    text: &str,
    span: &std::ops::Range<usize>,
    items: &[Spanned<DeValue>],
) -> bool {
    text.get(span.clone()).is_some_and(|t| t.starts_with("[["))
        && items
            .iter()
            .all(|i| matches!(i.get_ref(), DeValue::Table(_)))
}

/// The end of a standard table's last entry (its header's end when it has none).
fn table_end(table: &DeTable, header: &std::ops::Range<usize>) -> usize {
    table
        .iter()
        .map(|(_, v)| v.span().end)
        .fold(header.end, usize::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blank(text: &str, needle: &str) -> String {
        let mut t = text.to_string();
        assert!(blank_entry(&mut t, text.find(needle).unwrap()));
        assert_eq!(t.len(), text.len());
        assert_eq!(t.matches('\n').count(), text.matches('\n').count());
        t
    }

    #[test]
    fn blanks_the_entry_a_problem_is_in() {
        let text = "[server]\na = 1\nlist = [\n  \"a\",\n  5,\n]\n\n[[upstream]]\nname = \"x\"\nt = { q = 1 }\n[srever]\nx = 1\ny = 2\n[last]\nz = 3\n";
        let t = blank(text, "5,");
        assert!(!t.contains("list") && t.contains("a = 1"), "{t}");
        let t = blank(text, "q = 1");
        assert!(!t.contains("t = {") && t.contains("name = \"x\""), "{t}");
        let t = blank(text, "srever");
        assert!(
            !t.contains("srever") && !t.contains("y = 2") && t.contains("z = 3"),
            "{t}"
        );
        assert!(DeTable::parse(&t).is_ok());
    }
}
