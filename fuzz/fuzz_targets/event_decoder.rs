//! Any bytes from the log: the decoder returns an event or an error, never panics; whatever
//! decodes (any version) re-encodes at the current version to bytes that decode to the same event.
#![no_main]

use libfuzzer_sys::fuzz_target;
use titok_events::Envelope;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = Envelope::decode(data) {
        let again = Envelope::decode(&event.encode()).expect("a re-encoded event decodes");
        assert_eq!(again, event, "the round trip keeps the event");
    }
});
