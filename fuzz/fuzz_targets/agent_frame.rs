//! The runner's decoder for agent frames (`rookery_proto::frame`, used by the transport's
//! read loop). A frame that decodes must survive re-encoding unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rookery_proto::frame::decode_agent_frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_agent_frame(data) {
        let again = serde_json::to_vec(&frame).expect("a decoded frame encodes");
        let back = decode_agent_frame(&again).expect("an encoded frame decodes");
        assert_eq!(
            serde_json::to_value(&frame).ok(),
            serde_json::to_value(&back).ok()
        );
    }
});
