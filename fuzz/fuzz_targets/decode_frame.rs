//! Any byte string decodes to a frame or an error; a decoded frame re-encodes to the same
//! bytes (the format is canonical) and decodes back to itself.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shivya_core::p2p::Frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = Frame::decode(data) {
        let bytes = frame.encode().expect("a decoded frame is within every limit");
        assert_eq!(bytes, data, "decoding is canonical");
        assert_eq!(Frame::decode(&bytes).as_ref(), Ok(&frame));
    }
});
