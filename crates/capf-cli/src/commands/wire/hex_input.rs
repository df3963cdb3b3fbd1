//! Reading a hex dump: bytes, direction labels, comments and command names
//! (the transcript format of testdata/vectors).

use capf_wire::Command;

/// Consecutive bytes of one direction, read as one stream.
pub(super) struct Segment {
    /// `S>C`, `C>S`, or `None` when the input does not say.
    pub(super) direction: Option<&'static str>,
    /// Offset of the first byte among all the bytes read.
    pub(super) start: u64,
    pub(super) bytes: Vec<u8>,
}

/// The parsed input.
pub(super) struct Input {
    pub(super) segments: Vec<Segment>,
    /// (offset of the line's first byte, 1-based line number), in order.
    lines: Vec<(u64, usize)>,
}

impl Input {
    /// The input line holding the byte at `offset` (or the last line, for
    /// an offset at the end).
    pub(super) fn line_of(&self, offset: u64) -> Option<usize> {
        self.lines
            .iter()
            .take_while(|(start, _)| *start <= offset)
            .last()
            .map(|(_, line)| *line)
    }
}

fn direction_label(token: &str) -> Option<&'static str> {
    match token.trim_end_matches(':') {
        "S>C" | "S→C" | "S->C" => Some("S>C"),
        "C>S" | "C→S" | "C->S" => Some("C>S"),
        _ => None,
    }
}

/// Parses the text; errors name the line and column.
pub(super) fn parse(text: &str) -> Result<Input, String> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut lines = Vec::new();
    let mut direction: Option<&'static str> = None;
    let mut total: u64 = 0;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let content = raw.split('#').next().unwrap_or("");
        let mut line_bytes = Vec::new();
        for (column, token) in tokens(content) {
            if let Some(label) = direction_label(token) {
                if !line_bytes.is_empty() {
                    return Err(format!(
                        "line {line_no}, column {column}: direction {token} after bytes; \
                         put it at the start of the line"
                    ));
                }
                direction = Some(label);
                continue;
            }
            if Command::from_wire_name(token).is_some() {
                continue;
            }
            let digits = token
                .strip_prefix("0x")
                .or_else(|| token.strip_prefix("0X"))
                .unwrap_or(token);
            if let Some(bad) = digits.chars().find(|c| !c.is_ascii_hexdigit()) {
                return Err(format!(
                    "line {line_no}, column {column}: `{token}` is not hex (found {bad:?})"
                ));
            }
            if digits.len() % 2 != 0 {
                return Err(format!(
                    "line {line_no}, column {column}: `{token}` has an odd number of hex digits \
                     (write whole bytes, e.g. 0f not f)"
                ));
            }
            line_bytes.extend(digits.as_bytes().chunks(2).filter_map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|p| u8::from_str_radix(p, 16).ok())
            }));
        }
        if line_bytes.is_empty() {
            continue;
        }
        lines.push((total, line_no));
        match segments.last_mut() {
            Some(last) if last.direction == direction => last.bytes.extend(&line_bytes),
            _ => segments.push(Segment {
                direction,
                start: total,
                bytes: line_bytes.clone(),
            }),
        }
        total += line_bytes.len() as u64;
    }
    Ok(Input { segments, lines })
}

/// The tokens of a line with their 1-based columns (in characters):
/// separated by whitespace, `|` and `,`.
fn tokens(line: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start: Option<(usize, usize)> = None;
    for (column, (byte, c)) in line.char_indices().enumerate() {
        let separator = c.is_whitespace() || c == '|' || c == ',';
        match (separator, start) {
            (true, Some((s, col))) => {
                out.push((col + 1, &line[s..byte]));
                start = None;
            }
            (false, None) => start = Some((byte, column)),
            _ => {}
        }
    }
    if let Some((s, col)) = start {
        out.push((col + 1, &line[s..]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn labels_names_and_separators() {
        let input = parse(
            "# comment\nS>C AUTH_REQUEST 5501 00000001 0008 | 07000103 08000100\n\
             C→S 55 11 00000001 0000\nC>S 55\n",
        )
        .unwrap();
        assert_eq!(input.segments.len(), 2);
        assert_eq!(input.segments[0].direction, Some("S>C"));
        assert_eq!(input.segments[0].bytes.len(), 16);
        assert_eq!(input.segments[1].start, 16);
        assert_eq!(input.segments[1].bytes.len(), 9);
        assert_eq!(input.line_of(0), Some(2));
        assert_eq!(input.line_of(24), Some(4));
    }

    #[test]
    fn garbage_names_line_and_column() {
        let e = parse("55 0g").err().unwrap();
        assert!(e.contains("line 1, column 4"), "{e}");
        let e = parse("55\n 551").err().unwrap();
        assert!(e.contains("line 2, column 2") && e.contains("odd"), "{e}");
    }
}
