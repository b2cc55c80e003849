//! Tells the browser's build whether its bundle will be split (`cargo leptos build --split`).
//!
//! The sign-in, sign-up and settings pages are lazy routes, which only work once the bundle
//! has been split: without `--split`, the WASM would import its lazy pieces from a module that
//! does not exist, and the page would never come alive. cargo-leptos says nothing of the split
//! to the code itself, but it links a bundle to be split with `--emit-relocs`; so a WASM build
//! without that flag gets `--cfg parley_unsplit`, and those pages are then ordinary routes in
//! the one bundle. The server's build is the same either way.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(parley_unsplit)");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|arch| arch == "wasm32");
    let split = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .unwrap_or_default()
        .split('\x1f')
        .any(|flag| flag.contains("--emit-relocs"));
    if wasm && !split {
        println!("cargo::rustc-cfg=parley_unsplit");
    }
}
