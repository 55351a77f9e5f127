//! Feeds arbitrary bytes, split into lines, through `LineParser`: it must
//! never panic, and every event it emits must come from a recognised line.
#![no_main]

use hikeshi_core::parse::{LineParser, LineVerdict, Origin, ParseOptions};
use hikeshi_core::Mode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mode = Mode::ALL[usize::from(data.first().copied().unwrap_or(0)) % 4];
    let mut opts = ParseOptions::new(
        mode,
        jiff::tz::TimeZone::UTC,
        jiff::Timestamp::from_second(1_780_000_000).unwrap(),
    );
    // Small limits so that eviction and long-line paths are reached.
    opts.max_connections = 4;
    opts.max_line_len = 512;
    let mut parser = LineParser::new(opts);
    let mut out = Vec::new();
    let mut recognised = 0u64;
    for (i, line) in data.split(|&b| b == b'\n').enumerate() {
        let origin = Origin { line: i as u64 + 1, offset: 0 };
        if let LineVerdict::Recognised(_) = parser.push_line(line, origin, &mut out) {
            recognised += 1;
        }
    }
    parser.finish(&mut out);
    assert_eq!(out.len() as u64, recognised, "one event per recognised line");
    assert_eq!(parser.stats().recognised_total(), recognised);
});
