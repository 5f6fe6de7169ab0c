#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emotibot::fuzz_targets::jwt(data));
