//! `capf wire decode`: a readable view of CAPF bytes.

mod elements;
mod hex_input;

use std::io::Read as _;
use std::path::PathBuf;

use bytes::BytesMut;
use capf_wire::{ELEMENT_HEADER_LEN, Frame, FrameCodec, HEADER_LEN};
use clap::{Args, Subcommand};
use serde::Serialize;
use serde_json::Value;

use self::elements::Rendered;
use self::hex_input::{Input, Segment};
use crate::{Failure, Outcome};

/// `capf wire` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum WireCommand {
    /// Decode a hex dump of CAPF frames (one or both directions) into commands and elements.
    #[command(
        after_help = "Input: hex digits, in groups of whole bytes, separated by spaces, \
newlines or `|`. `#` starts a comment. A line may start with a direction, S>C or C>S \
(also S→C, S->C), which holds until the next one; command names such as AUTH_REQUEST are \
skipped, so the transcripts of testdata/vectors/*.txt and hex dumps laid out like them \
decode as they are. Frames of one direction are read as one stream.

Examples:
  capf wire decode 55 0f 00000001 0004 \\| 01 0001 01
  capf wire decode --file testdata/vectors/install-password.txt
  capf wire decode --json --file capture.txt
  xxd -p capture.bin | capf wire decode -
  capf wire decode --show-secrets --file trace.txt        show PASSWORD values

Malformed input fails (exit 1) with the byte offset (counted over all the bytes read) \
and the line."
    )]
    Decode(DecodeArgs),
}

/// Arguments of `capf wire decode`.
#[derive(Debug, Args)]
pub(crate) struct DecodeArgs {
    /// Hex bytes (several arguments are joined); `-`, or nothing, reads standard input.
    #[arg(value_name = "HEX", conflicts_with = "file")]
    hex: Vec<String>,
    /// Read the hex dump from this file.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Show PASSWORD values (redacted by default).
    #[arg(long)]
    show_secrets: bool,
    /// Print a JSON array of frames with their elements.
    #[arg(long)]
    json: bool,
}

/// One decoded frame and where it came from.
struct DecodedFrame {
    direction: Option<&'static str>,
    offset: u64,
    frame: Frame,
}

pub(crate) fn run(command: WireCommand) -> Result<Outcome, Failure> {
    let WireCommand::Decode(args) = command;
    let text = read_input(&args)?;
    let input = hex_input::parse(&text).map_err(Failure::new)?;
    if input.segments.iter().all(|s| s.bytes.is_empty()) {
        return Err(Failure::new("no CAPF bytes in the input"));
    }
    let (frames, error) = decode(&input);
    if args.json {
        if let Some(e) = error {
            return Err(Failure::new(e));
        }
        let all: Vec<FrameJson> = frames
            .iter()
            .enumerate()
            .map(|(i, f)| frame_json(i + 1, f, args.show_secrets))
            .collect();
        crate::output::print_json(&all)?;
    } else {
        for (i, f) in frames.iter().enumerate() {
            print_frame(i + 1, f, args.show_secrets);
        }
        if let Some(e) = error {
            return Err(Failure::new(e));
        }
    }
    Ok(Outcome::Done)
}

fn read_input(args: &DecodeArgs) -> Result<String, Failure> {
    if let Some(path) = &args.file {
        return std::fs::read_to_string(path)
            .map_err(|e| Failure::new(format!("cannot read {}: {e}", path.display())));
    }
    if args.hex.is_empty() || args.hex.iter().any(|h| h == "-") {
        if args.hex.len() > 1 {
            return Err(Failure::usage("`-` (standard input) must be the only HEX"));
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::new(format!("cannot read standard input: {e}")))?;
        return Ok(text);
    }
    Ok(args.hex.join(" "))
}

/// Decodes every segment; stops at the first error, keeping the frames
/// decoded before it.
fn decode(input: &Input) -> (Vec<DecodedFrame>, Option<String>) {
    let mut frames = Vec::new();
    for segment in &input.segments {
        if let Err(e) = decode_segment(segment, &mut frames) {
            let line = e
                .offset()
                .and_then(|o| input.line_of(o))
                .map(|l| format!(" (line {l})"))
                .unwrap_or_default();
            return (frames, Some(format!("malformed CAPF bytes{line}: {e}")));
        }
    }
    (frames, None)
}

fn decode_segment(
    segment: &Segment,
    frames: &mut Vec<DecodedFrame>,
) -> Result<(), capf_wire::WireError> {
    let mut codec = FrameCodec::new();
    let mut buf = BytesMut::from(segment.bytes.as_slice());
    loop {
        let offset = segment.start + codec.position();
        match codec.decode(&mut buf) {
            Ok(Some(frame)) => frames.push(DecodedFrame {
                direction: segment.direction,
                offset,
                frame,
            }),
            Ok(None) => {
                return codec.finish(&buf).map_err(|e| e.shifted(segment.start));
            }
            Err(e) => return Err(e.shifted(segment.start)),
        }
    }
}

/// The elements of a frame, rendered, with their stream offsets.
fn rendered_elements(f: &DecodedFrame, show_secrets: bool) -> Vec<(u64, Rendered)> {
    let mut offset = f.offset + HEADER_LEN as u64;
    f.frame
        .elements
        .iter()
        .map(|element| {
            let at = offset;
            offset += (ELEMENT_HEADER_LEN + element.value.len()) as u64;
            (at, elements::render(element, at, show_secrets))
        })
        .collect()
}

fn print_frame(index: usize, f: &DecodedFrame, show_secrets: bool) {
    let direction = f.direction.map(|d| format!("{d} ")).unwrap_or_default();
    println!(
        "frame {index} at offset {}: {direction}{} ({}), session {}, body {} bytes",
        f.offset,
        f.frame.command,
        f.frame.command.to_u8(),
        f.frame.session_id,
        f.frame.body_len()
    );
    for (_, element) in rendered_elements(f, show_secrets) {
        println!("  {} {}", element.name, element.summary);
        let width = element
            .details
            .iter()
            .map(|(label, _)| label.len())
            .max()
            .unwrap_or(0);
        for (label, value) in &element.details {
            println!("      {label:width$}  {value}");
        }
    }
}

/// One frame of `capf wire decode --json`.
#[derive(Debug, Serialize)]
struct FrameJson {
    /// From 1.
    index: usize,
    /// Where the frame starts in its segment.
    offset: u64,
    /// `phone` or `server` when the transcript says so.
    direction: Option<&'static str>,
    command: String,
    command_code: u8,
    session_id: u32,
    body_length: usize,
    elements: Vec<ElementJson>,
}

/// One element of a frame; some kinds add fields of their own (a
/// certificate's subject, a key's kind...).
#[derive(Debug, Serialize)]
struct ElementJson {
    name: String,
    tag: u8,
    offset: u64,
    length: usize,
    value: String,
    #[serde(flatten)]
    details: serde_json::Map<String, Value>,
}

fn frame_json(index: usize, f: &DecodedFrame, show_secrets: bool) -> FrameJson {
    let elements = rendered_elements(f, show_secrets)
        .into_iter()
        .map(|(offset, e)| ElementJson {
            name: e.name,
            tag: e.tag,
            offset,
            length: e.length,
            value: e.summary,
            details: e
                .fields
                .into_iter()
                .map(|(key, value)| (key.to_owned(), value))
                .collect(),
        })
        .collect();
    FrameJson {
        index,
        offset: f.offset,
        direction: f.direction,
        command: f.frame.command.to_string(),
        command_code: f.frame.command.to_u8(),
        session_id: f.frame.session_id,
        body_length: f.frame.body_len(),
        elements,
    }
}
