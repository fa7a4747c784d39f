//! The agent's decoder for runner frames (`rookery_proto::frame`, used by the agent's server
//! loop). A frame that decodes must survive re-encoding unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rookery_proto::frame::decode_runner_frame;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = decode_runner_frame(data) {
        let again = serde_json::to_vec(&frame).expect("a decoded frame encodes");
        let back = decode_runner_frame(&again).expect("an encoded frame decodes");
        assert_eq!(
            serde_json::to_value(&frame).ok(),
            serde_json::to_value(&back).ok()
        );
    }
});
