#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    trustcaptcha_server::fuzz::client_hello(data);
});
