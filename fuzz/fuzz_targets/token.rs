#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trustcaptcha_server::testing::fuzz::token(data);
});
