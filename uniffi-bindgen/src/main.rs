//! The workspace's `uniffi-bindgen`, pinned to the same UniFFI as shivya-ffi.
fn main() {
    uniffi::uniffi_bindgen_main()
}
