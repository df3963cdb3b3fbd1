//! Codec throughput: decode and encode a whole install exchange (the
//! install-password transcript, 8 frames). Target: above 500 MB/s decode on
//! one core.

use bytes::BytesMut;
use capf_wire::{Frame, FrameCodec, Message};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

fn install_exchange() -> Vec<u8> {
    include_str!("../../testdata/vectors/install-password.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().nth(2))
        .flat_map(|h| hex::decode(h).unwrap_or_default())
        .collect()
}

fn decode_frames(bytes: &[u8]) -> Vec<Frame> {
    let mut buf = BytesMut::from(bytes);
    let mut codec = FrameCodec::new();
    let mut frames = Vec::with_capacity(8);
    while let Ok(Some(frame)) = codec.decode(&mut buf) {
        frames.push(frame);
    }
    frames
}

fn codec(c: &mut Criterion) {
    let bytes = install_exchange();
    let frames = decode_frames(&bytes);
    assert_eq!(frames.len(), 8, "transcript decodes");
    let messages: Vec<Message> = frames
        .iter()
        .filter_map(|f| Message::from_frame(f).ok())
        .collect();

    let mut g = c.benchmark_group("install_exchange");
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("decode_frames", |b| {
        b.iter(|| decode_frames(black_box(&bytes)))
    });
    g.bench_function("decode_typed", |b| {
        b.iter(|| {
            decode_frames(black_box(&bytes))
                .iter()
                .filter_map(|f| Message::from_frame(f).ok())
                .count()
        })
    });
    let mut out = BytesMut::with_capacity(bytes.len());
    g.bench_function("encode_frames", |b| {
        b.iter(|| {
            out.clear();
            for f in black_box(&frames) {
                let _ = f.encode(&mut out);
            }
            out.len()
        })
    });
    g.bench_function("encode_typed", |b| {
        b.iter(|| {
            out.clear();
            for m in black_box(&messages) {
                let _ = m.encode(1, &mut out);
            }
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
