//! Arbitrary bytes as a platform-event callout body: parsed or refused, never a panic.
#![no_main]

use ipguard::ingress::events::{MAX_EVENTS, parse_events};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match parse_events(data) {
        Ok(events) => assert!(!events.is_empty() && events.len() <= MAX_EVENTS),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
