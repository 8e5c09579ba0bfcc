// Loads the WASM app that `cargo xtask ui` builds with wasm-bindgen (--target web).
import init from "./ui.js";
init();
