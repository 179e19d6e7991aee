//! Terminal styling: colour only when stdout is a terminal and `NO_COLOR` is
//! unset (https://no-color.org), and bars of proportional segments.

use std::borrow::Cow;
use std::io::IsTerminal;

/// Text from the input (a log line, a file name, a process name, a frame of a
/// snapshot) made safe to print on a terminal: C0 and C1 control characters
/// (escape sequences, backspace, bell, carriage return, the one-character
/// CSI U+009B) are shown as `\xNN` instead of acting on the terminal. Tabs
/// and newlines stay.
pub fn printable(text: &str) -> Cow<'_, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\t' && c != '\n';
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if unsafe_char(c) {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Writes `value` as compact JSON that is safe on a terminal: JSON itself
/// escapes only C0 controls, so DEL and the C1 controls (U+007F..U+009F,
/// among them the one-character CSI U+009B) a log may hold are written as
/// `\u00NN` escapes too. The JSON value is the same.
pub fn write_json<W: std::io::Write, T: serde::Serialize + ?Sized>(
    out: W,
    value: &T,
) -> serde_json::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(out, TerminalSafeJson);
    value.serialize(&mut serializer)
}

/// serde_json's compact output with DEL and C1 controls escaped.
struct TerminalSafeJson;

impl serde_json::ser::Formatter for TerminalSafeJson {
    fn write_string_fragment<W: ?Sized + std::io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> std::io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if ('\u{7f}'..='\u{9f}').contains(&c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Style {
    color: bool,
}

impl Style {
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Style {
            color: !no_color && std::io::stdout().is_terminal(),
        }
    }

    fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }

    pub fn bold(&self, t: &str) -> String {
        self.paint("1", t)
    }
    pub fn dim(&self, t: &str) -> String {
        self.paint("2", t)
    }
    pub fn red(&self, t: &str) -> String {
        self.paint("31", t)
    }
    pub fn yellow(&self, t: &str) -> String {
        self.paint("33", t)
    }
    pub fn green(&self, t: &str) -> String {
        self.paint("32", t)
    }
    pub fn cyan(&self, t: &str) -> String {
        self.paint("36", t)
    }
}

/// Splits `width` cells among `parts` in proportion to their values, each
/// non-zero part getting at least one cell (largest remainders first).
pub fn proportional_cells(parts: &[u64], width: usize) -> Vec<usize> {
    let total: u128 = parts.iter().map(|&p| p as u128).sum();
    if total == 0 || width == 0 {
        return vec![0; parts.len()];
    }
    let mut cells: Vec<usize> = parts
        .iter()
        .map(|&p| ((p as u128 * width as u128) / total) as usize)
        .collect();
    for (c, &p) in cells.iter_mut().zip(parts) {
        if p > 0 && *c == 0 {
            *c = 1;
        }
    }
    let mut used: usize = cells.iter().sum();
    // Hand out or take back cells on the largest parts until the sum is right.
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(parts[i]));
    let mut k = 0;
    while used != width && !order.is_empty() {
        let i = order[k % order.len()];
        if used < width {
            cells[i] += 1;
            used += 1;
        } else if cells[i] > 1 {
            cells[i] -= 1;
            used -= 1;
        }
        k += 1;
        if k > 4 * width + parts.len() {
            break;
        }
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_sum_to_width_and_keep_small_parts_visible() {
        let cells = proportional_cells(&[650, 20, 105, 25], 50);
        assert_eq!(cells.iter().sum::<usize>(), 50);
        assert!(cells.iter().all(|&c| c >= 1));
        assert!(cells[0] > cells[2]);
        assert_eq!(proportional_cells(&[0, 0], 10), vec![0, 0]);
    }

    #[test]
    fn json_escapes_every_control_character_and_keeps_the_value() {
        let text = "a\u{1b}[31mb\u{7}c\u{7f}d\u{9b}31me\u{85}f \u{a0}é";
        let mut out = Vec::new();
        write_json(&mut out, &serde_json::json!({ "message": text })).expect("writes");
        let json = String::from_utf8(out).expect("UTF-8");
        assert!(!json.chars().any(|c| c.is_control()), "{json:?}");
        assert!(json.contains("\\u007f") && json.contains("\\u009b") && json.contains("\\u0085"));
        let back: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
        assert_eq!(back["message"], text);
    }
}

#[cfg(test)]
mod printable_tests {
    use super::printable;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(printable("plain\ttext\n"), "plain\ttext\n");
        assert_eq!(
            printable("a\u{1b}]0;title\u{7}b\u{9b}2J\u{8}c\r"),
            "a\\x1b]0;title\\x07b\\x9b2J\\x08c\\x0d"
        );
    }
}
