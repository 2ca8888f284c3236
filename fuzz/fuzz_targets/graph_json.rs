#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| graphbridge_fuzz::graph_json(data));
