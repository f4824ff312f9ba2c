//! Arbitrary bytes as an outbound-message (SOAP) request body: parsed or refused, never a
//! panic. A refusal's text becomes a faultstring, so it is rendered too.
#![no_main]

use ipguard::ingress::outbound::{self, FaultKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match outbound::parse(data) {
        Ok(message) => assert!(message.notifications.len() <= outbound::MAX_NOTIFICATIONS),
        Err(e) => {
            let _ = outbound::fault(FaultKind::Client, &e.to_string());
        }
    }
});
