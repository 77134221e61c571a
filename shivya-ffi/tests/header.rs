//! `include/shivya.h` must be exactly what cbindgen generates from the current source.
//! Regenerate with `SHIVYA_BLESS=1 cargo test -p shivya-ffi --test header`.

use std::path::PathBuf;

#[test]
fn checked_in_header_matches_cbindgen_output() {
    let crate_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(crate_dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let bindings = cbindgen::Builder::new()
        .with_crate(&crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header");
    let mut generated = Vec::new();
    bindings.write(&mut generated);
    let header = crate_dir.join("../include/shivya.h");
    if std::env::var_os("SHIVYA_BLESS").is_some() {
        std::fs::write(&header, &generated).expect("write include/shivya.h");
        return;
    }
    let checked_in = std::fs::read(&header).unwrap_or_default();
    assert!(
        checked_in == generated,
        "include/shivya.h is stale: run `SHIVYA_BLESS=1 cargo test -p shivya-ffi --test header` and commit it"
    );
}
