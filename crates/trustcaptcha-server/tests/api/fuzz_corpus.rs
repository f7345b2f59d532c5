//! The fuzz targets' corpus and crashers (`fuzz/corpus/<target>/`, `fuzz/artifacts/<target>/`)
//! replayed through the same entry points on stable, so that every input ever found stays fixed.

use std::path::Path;

use trustcaptcha_server::fuzz;

#[test]
fn the_fuzz_corpus_replays_cleanly() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz");
    let targets: [(&str, fn(&[u8])); 5] = [
        ("token", fuzz::token),
        ("create", fuzz::create),
        ("submit", fuzz::submit),
        ("config", fuzz::config),
        ("client_hello", fuzz::client_hello),
    ];
    let mut replayed = 0;
    for (target, run) in targets {
        for folder in ["corpus", "artifacts"] {
            let Ok(entries) = std::fs::read_dir(root.join(folder).join(target)) else {
                continue;
            };
            for entry in entries {
                let path = entry.expect("entry").path();
                run(&std::fs::read(&path).expect("readable"));
                replayed += 1;
            }
        }
    }
    assert!(replayed >= 12, "the corpus is there: {replayed} inputs");
}
